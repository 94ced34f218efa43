package interceptor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/testing/testpb"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

// TestStreamRetriedBeforeCommit: a server stream that fails before its first message is
// retried, and the caller sees each message once, as if nothing had happened.
func TestStreamRetriedBeforeCommit(t *testing.T) {
	all := []string{"line 0\n", "line 1\n", "line 2\n"}
	for _, tc := range []struct {
		name        string
		script      func(*sandboxtest.Server)
		callHeader  bool // call Header() first: a trailers-only failure must not commit
		wantCalls   int
		wantWait    time.Duration
		wantHeaders []string
	}{
		{
			name: "handler fails before the first entry",
			script: func(s *sandboxtest.Server) {
				s.ScriptStreamLogs(sandboxtest.StreamLogsScript{Err: unavailable()}, sandboxtest.StreamLogsScript{Entries: 3})
			},
			wantCalls: 2, wantWait: time.Second, wantHeaders: []string{"", "1"},
		},
		{
			name: "Header() before Recv",
			script: func(s *sandboxtest.Server) {
				s.ScriptStreamLogs(sandboxtest.StreamLogsScript{Err: unavailable()}, sandboxtest.StreamLogsScript{Entries: 3})
			},
			callHeader: true, wantCalls: 2, wantWait: time.Second, wantHeaders: []string{"", "1"},
		},
		{
			name:      "stream refused twice at admission",
			script:    func(s *sandboxtest.Server) { s.FailNext(streamLogs, 2, unavailable()) },
			wantCalls: 3, wantWait: 3 * time.Second, wantHeaders: []string{"", "1", "2"},
		},
		{
			name: "server hint honoured",
			script: func(s *sandboxtest.Server) {
				s.ScriptStreamLogs(sandboxtest.StreamLogsScript{Err: withHint(10 * time.Second)}, sandboxtest.StreamLogsScript{Entries: 3})
			},
			wantCalls: 2, wantWait: 10 * time.Second, wantHeaders: []string{"", "1"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))))
				tc.script(e.srv)
				start := time.Now()
				st, err := e.sb.StreamLogs(context.Background(), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
				if err != nil {
					t.Fatalf("StreamLogs = %v", err)
				}
				if tc.callHeader {
					if md, err := st.Header(); err != nil {
						t.Fatalf("Header() = %v, %v", md, err)
					}
				}
				got, err := recvLogs(st)
				if err != nil || fmt.Sprint(got) != fmt.Sprint(all) {
					t.Errorf("received %q, %v; want %q, nil", got, err, all)
				}
				if elapsed := time.Since(start); elapsed != tc.wantWait {
					t.Errorf("elapsed = %v, want %v", elapsed, tc.wantWait)
				}
				if n := e.srv.Calls(streamLogs); n != tc.wantCalls {
					t.Errorf("server calls = %d, want %d", n, tc.wantCalls)
				}
				if h := headerValues(t, e.srv.Metadata(streamLogs), attemptHeader); fmt.Sprint(h) != fmt.Sprint(tc.wantHeaders) {
					t.Errorf("%s per attempt = %q, want %q", attemptHeader, h, tc.wantHeaders)
				}
			})
		})
	}
}

// TestStreamGivesUp: a stream that never commits gives up like a unary call, with a
// *retry.Error from Recv.
func TestStreamGivesUp(t *testing.T) {
	for _, tc := range []struct {
		name      string
		st        *status.Status
		wantCalls int
		wantCause retry.StopReason
		wantKind  errs.Kind
	}{
		{name: "exhausted", st: unavailable(), wantCalls: 5, wantCause: retry.StopExhausted, wantKind: errs.ErrSandboxUnavailable},
		{name: "not retryable", st: faultlinetest.Status(codes.PermissionDenied, "no"), wantCalls: 1,
			wantCause: retry.StopNotRetryable, wantKind: errs.ErrCWSandboxAuthentication},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))))
				e.srv.FailAlways(streamLogs, tc.st)
				st, err := e.sb.StreamLogs(context.Background(), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
				if err != nil {
					t.Fatalf("StreamLogs = %v", err)
				}
				got, err := recvLogs(st)
				var re *retry.Error
				if len(got) != 0 || !errors.As(err, &re) || re.Attempts() != tc.wantCalls || re.StopReason() != tc.wantCause {
					t.Fatalf("received %q, %v; want nothing and a *retry.Error of %d attempts, %v", got, err, tc.wantCalls, tc.wantCause)
				}
				var ee *errs.Error
				if !errors.As(err, &ee) || ee.Kind() != tc.wantKind || ee.Resource().SandboxID != "sb-1" || ee.Resource().Operation != "StreamLogs" {
					t.Errorf("classified = %v, want %v about StreamLogs of sb-1", ee, tc.wantKind)
				}
				if s, _ := status.FromError(err); s.Code() != tc.st.Code() || s.Message() != tc.st.Message() {
					t.Errorf("status = %v, want the server's %v", s, tc.st)
				}
				if n := e.srv.Calls(streamLogs); n != tc.wantCalls {
					t.Errorf("server calls = %d, want %d", n, tc.wantCalls)
				}
			})
		})
	}
}

// TestStreamNotRetriedAfterMessages: once a message reached the caller the stream is
// committed: a failure after two entries is returned, classified, and the stream is not
// replayed (the caller sees line 0, line 1, then the error; never line 0 again); the final
// error says it could not go on (stop reason "not resumable"). StreamLogs' resumer is turned
// off here: see resume_test.go for resumed streams.
func TestStreamNotRetriedAfterMessages(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil))),
			interceptor.WithResumer(streamLogs, nil)))
		e.srv.ScriptStreamLogs(sandboxtest.StreamLogsScript{Entries: 2, Err: unavailable()}, sandboxtest.StreamLogsScript{Entries: 3})
		st, err := e.sb.StreamLogs(context.Background(), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
		if err != nil {
			t.Fatalf("StreamLogs = %v", err)
		}
		got, err := recvLogs(st)
		if want := []string{"line 0\n", "line 1\n"}; fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("received %q, want %q", got, want)
		}
		if !errors.Is(err, errs.ErrSandboxUnavailable) || status.Code(err) != codes.Unavailable {
			t.Fatalf("Recv error = %v, want SandboxUnavailableError", err)
		}
		var ee *errs.Error
		if !errors.As(err, &ee) {
			t.Fatalf("Recv error is %T, want it to hold an *errs.Error", err)
		}
		if cause, n := stopOf(err); cause != retry.StopNotResumable || n != 1 {
			t.Errorf("stop = %v after %d attempts, want %v after 1 (committed streams are not retried)", cause, n, retry.StopNotResumable)
		}
		if ee.Resource().SandboxID != "sb-1" || ee.Resource().Operation != "StreamLogs" {
			t.Errorf("call context = %q, %q; want StreamLogs, sb-1", ee.Resource().Operation, ee.Resource().SandboxID)
		}
		if n := e.srv.Calls(streamLogs); n != 1 {
			t.Errorf("server calls = %d, want 1", n)
		}
	})
}

// TestStreamHeaderCommits: a response header that reaches the caller through Header()
// commits the stream; one the caller never asked for does not, but it still stops the
// retries of a method of unknown idempotency (gRFC A6: response headers commit a call; the
// server's handler ran), while an idempotent method is retried.
func TestStreamHeaderCommits(t *testing.T) {
	for _, tc := range []struct {
		name      string
		header    bool
		level     retry.Idempotency
		wantCalls int
		wantStop  retry.StopReason // 0: the retried stream completes
	}{
		{name: "Header() read: committed", header: true, level: retry.Idempotent, wantCalls: 1, wantStop: retry.StopNotResumable},
		{name: "Header() not read, idempotent: retried", level: retry.Idempotent, wantCalls: 2},
		{name: "Header() not read, unknown idempotency: not repeated", level: retry.IdempotencyUnknown, wantCalls: 1, wantStop: retry.StopUnsafe},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := &pingServer{failFirst: 1}
				c := newPing(t, p, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil))),
					interceptor.WithIdempotency(pingList, tc.level))...)
				st, err := c.PingList(context.Background(), &testpb.PingListRequest{Value: "v"})
				if err != nil {
					t.Fatalf("PingList = %v", err)
				}
				if tc.header {
					md, err := st.Header()
					if err != nil || len(md.Get("served-by")) != 1 {
						t.Fatalf("Header() = %v, %v; want the failing attempt's header", md, err)
					}
				}
				n := 0
				for {
					_, err = st.Recv()
					if err != nil {
						break
					}
					n++
				}
				if tc.wantStop != 0 {
					var ee *errs.Error
					if cause, _ := stopOf(err); !errors.As(err, &ee) || status.Code(err) != codes.Unavailable || n != 0 || cause != tc.wantStop {
						t.Errorf("after %d messages Recv = %v (%T), want an UNAVAILABLE, stopped as %v", n, err, err, tc.wantStop)
					}
				} else if err != io.EOF || n != 3 {
					t.Errorf("after %d messages Recv = %v, want 3 messages then io.EOF", n, err)
				}
				if _, hs := p.Received(); len(hs) != tc.wantCalls {
					t.Errorf("server attempts = %d, want %d", len(hs), tc.wantCalls)
				}
			})
		})
	}
}

// TestStreamReplay: messages the caller sent before a retry are sent again, in order, on
// the new attempt, and CloseSend too; past the replay limit the stream commits.
func TestStreamReplay(t *testing.T) {
	t.Run("client streaming", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := &pingServer{failFirst: 2}
			c := newPing(t, p, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil))))...)
			st, err := c.PingClientStream(context.Background())
			if err != nil {
				t.Fatalf("PingClientStream = %v", err)
			}
			for _, v := range []string{"a", "b", "c"} {
				if err := st.Send(&testpb.PingClientStreamRequest{Value: v}); err != nil {
					t.Fatalf("Send(%s) = %v", v, err)
				}
			}
			res, err := st.CloseAndRecv()
			if err != nil || res.GetCounter() != 3 {
				t.Fatalf("CloseAndRecv = %v, %v; want counter 3", res, err)
			}
			got, hs := p.Received()
			if want := "[[a b c] [a b c] [a b c]]"; fmt.Sprint(got) != want {
				t.Errorf("server received %v, want %v", got, want)
			}
			if want := `["" "1" "2"]`; fmt.Sprintf("%q", hs) != want {
				t.Errorf("%s per attempt = %q, want %s", attemptHeader, hs, want)
			}
		})
	})
	t.Run("bidi", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := &pingServer{failFirst: 1, failAfter: 2}
			c := newPing(t, p, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil))))...)
			st, err := c.PingStream(context.Background())
			if err != nil {
				t.Fatalf("PingStream = %v", err)
			}
			send := func(v string) {
				t.Helper()
				if err := st.Send(&testpb.PingStreamRequest{Value: v}); err != nil {
					t.Fatalf("Send(%s) = %v", v, err)
				}
			}
			var echoed []string
			recv := func() {
				t.Helper()
				m, err := st.Recv()
				if err != nil {
					t.Fatalf("Recv after %q = %v", echoed, err)
				}
				echoed = append(echoed, m.GetValue())
			}
			send("a")
			send("b")
			recv() // the first attempt fails here; the retry replays a, b
			recv()
			send("c")
			recv()
			if err := st.CloseSend(); err != nil {
				t.Fatalf("CloseSend = %v", err)
			}
			if _, err := st.Recv(); err != io.EOF {
				t.Fatalf("last Recv = %v, want io.EOF", err)
			}
			if want := "[a b c]"; fmt.Sprint(echoed) != want {
				t.Errorf("echoed %v, want %v", echoed, want)
			}
			got, hs := p.Received()
			if want := "[[a b] [a b c]]"; fmt.Sprint(got) != want {
				t.Errorf("server received %v, want %v", got, want)
			}
			if want := `["" "1"]`; fmt.Sprintf("%q", hs) != want {
				t.Errorf("%s per attempt = %q, want %s", attemptHeader, hs, want)
			}
		})
	})
	t.Run("past the replay limit", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := &pingServer{failFirst: 1, failAfter: 2}
			// A PingStreamRequest of a 4-byte value is 6 bytes: the first fits in 10, the second does not.
			c := newPing(t, p, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil))),
				interceptor.WithReplayLimit(10))...)
			st, err := c.PingStream(context.Background())
			if err != nil {
				t.Fatalf("PingStream = %v", err)
			}
			for _, v := range []string{"aaaa", "bbbb"} {
				if err := st.Send(&testpb.PingStreamRequest{Value: v}); err != nil {
					t.Fatalf("Send(%s) = %v", v, err)
				}
			}
			_, err = st.Recv()
			if cause, _ := stopOf(err); !errors.Is(err, errs.ErrCWSandbox) || status.Code(err) != codes.Unavailable || cause != retry.StopNotResumable {
				t.Fatalf("Recv = %v (%T), want the attempt's UNAVAILABLE, not retried (not resumable)", err, err)
			}
			if got, _ := p.Received(); fmt.Sprint(got) != "[[aaaa bbbb]]" {
				t.Errorf("server received %v, want one attempt of [aaaa bbbb]", got)
			}
		})
	})
}

// TestStreamSendDuringWait: a message sent while a retry waits is not sent to the attempt
// that failed, nor lost: SendMsg waits for the retry (as grpc-go's own retrying streams
// do), and the message goes to the new attempt, once, in order; a send past the replay
// limit then commits the stream on the new attempt.
func TestStreamSendDuringWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &pingServer{failFirst: 1, failAfter: 0}
		opened := 0 // streams the interceptor opens, whether or not they reach the server
		count := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
			streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
			opened++
			return streamer(ctx, desc, cc, method, opts...)
		}
		c := newPing(t, p, append(interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil))),
			interceptor.WithReplayLimit(10)), grpc.WithChainStreamInterceptor(count))...)
		st, err := c.PingStream(context.Background())
		if err != nil {
			t.Fatalf("PingStream = %v", err)
		}
		type recv struct {
			m   *testpb.PingStreamResponse
			err error
		}
		recvc := make(chan recv, 1)
		go func() {
			m, err := st.Recv()
			recvc <- recv{m, err}
		}()
		synctest.Wait() // the first attempt failed; Recv waits 1s to retry
		start := time.Now()
		for _, v := range []string{"aaaa", "bbbb"} {
			if err := st.Send(&testpb.PingStreamRequest{Value: v}); err != nil { // the second one commits
				t.Fatalf("Send(%s) = %v", v, err)
			}
		}
		if waited := time.Since(start); waited != time.Second {
			t.Errorf("Send during the retry's wait returned after %v, want 1s (when the retry was made)", waited)
		}
		_ = st.CloseSend()
		r := <-recvc
		if r.err != nil || r.m.GetValue() != "aaaa" {
			t.Errorf("Recv = %v, %v; want the new attempt's echo of aaaa", r.m, r.err)
		}
		synctest.Wait() // the server has read what was sent
		if got, _ := p.Received(); fmt.Sprint(got) != "[[] [aaaa bbbb]]" || opened != 2 {
			t.Errorf("server attempts = %v, streams opened = %d; want [[] [aaaa bbbb]] and 2", got, opened)
		}
	})
}

// TestStreamExecNeverRetried: StreamExec runs a command, so a stream whose init message may
// have reached the server is never retried, whatever the policy says, and its error is
// classified; one that sent nothing before it failed ran nothing, and is retried (not sent
// means not run).
func TestStreamExecNeverRetried(t *testing.T) {
	initReq := &sandboxpb.ExecStreamRequest{Request: &sandboxpb.ExecStreamRequest_Init{
		Init: &sandboxpb.ExecStreamInit{SandboxId: "sb-1", Command: []string{"true"}}}}
	// readThenFail fails the first StreamExec after reading its first message.
	readThenFail := func() grpc.ServerOption {
		var once sync.Once
		return grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			fail := false
			if info.FullMethod == streamExec {
				once.Do(func() { fail = true })
			}
			if !fail {
				return h(srv, ss)
			}
			if err := ss.RecvMsg(new(sandboxpb.ExecStreamRequest)); err != nil {
				return err
			}
			return unavailable().Err()
		})
	}
	for _, tc := range []struct {
		name     string
		opts     []interceptor.Option
		callOpts []grpc.CallOption
	}{
		{name: "default"},
		{name: "method policy", opts: []interceptor.Option{interceptor.WithMethodPolicy(streamExec, secondsPolicy())}},
		{name: "call policy", callOpts: []grpc.CallOption{interceptor.WithCallPolicy(secondsPolicy())}},
	} {
		t.Run("sent/"+tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				opts := append([]interceptor.Option{interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))}, tc.opts...)
				e := newEnv(t, interceptor.DialOptions(opts...), readThenFail())
				st, err := e.sb.StreamExec(context.Background(), tc.callOpts...)
				if err != nil {
					t.Fatalf("StreamExec = %v", err)
				}
				if err := st.Send(initReq); err != nil {
					t.Fatalf("Send(init) = %v", err)
				}
				_, err = st.Recv()
				var ee *errs.Error
				if !errors.As(err, &ee) || ee.Kind() != errs.ErrSandboxUnavailable || ee.Resource().SandboxID != "sb-1" || ee.Resource().Operation != "StreamExec" {
					t.Errorf("Recv = %v (%T), want a SandboxUnavailableError about StreamExec of sb-1", err, err)
				}
				if cause, _ := stopOf(err); cause != retry.StopUnsafe {
					t.Errorf("stop = %v, want %v", cause, retry.StopUnsafe)
				}
				if n := e.srv.Calls(streamExec); n != 1 {
					t.Errorf("server calls = %d, want 1", n)
				}
			})
		})
	}
	t.Run("never sent", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))))
			e.srv.Script(streamExec, sandboxtest.Fail(unavailable()))
			st, err := e.sb.StreamExec(context.Background())
			if err != nil {
				t.Fatalf("StreamExec = %v", err)
			}
			synctest.Wait() // the server failed the stream before the client sent anything
			if err := st.Send(initReq); err != nil {
				t.Fatalf("Send(init) = %v, want nil: retried, and replayed on the new attempt", err)
			}
			if err := st.CloseSend(); err != nil {
				t.Fatal(err)
			}
			m, err := st.Recv()
			if err != nil || m.GetReady() == nil {
				t.Fatalf("Recv = %v, %v; want ready from the second attempt", m, err)
			}
			if n := e.srv.Calls(streamExec); n != 2 {
				t.Errorf("server calls = %d, want 2", n)
			}
		})
	})
	t.Run("works", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))))
			st, err := e.sb.StreamExec(context.Background())
			if err != nil {
				t.Fatalf("StreamExec = %v", err)
			}
			for _, req := range []*sandboxpb.ExecStreamRequest{
				{Request: &sandboxpb.ExecStreamRequest_Init{Init: &sandboxpb.ExecStreamInit{SandboxId: "sb-1", Command: []string{"cat"}}}},
				{Request: &sandboxpb.ExecStreamRequest_Stdin{Stdin: []byte("hi")}},
				{Request: &sandboxpb.ExecStreamRequest_Close{Close: &sandboxpb.ExecStreamClose{}}},
			} {
				if err := st.Send(req); err != nil {
					t.Fatalf("Send = %v", err)
				}
			}
			var out []string
			for {
				m, err := st.Recv()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("Recv = %v", err)
				}
				switch r := m.GetResponse().(type) {
				case *sandboxpb.ExecStreamResponse_Ready:
					out = append(out, "ready")
				case *sandboxpb.ExecStreamResponse_Output:
					out = append(out, string(r.Output.GetData()))
				case *sandboxpb.ExecStreamResponse_Exit:
					out = append(out, fmt.Sprint("exit ", r.Exit.GetExitCode()))
				}
			}
			if want := "[ready hi exit 0]"; fmt.Sprint(out) != want {
				t.Errorf("StreamExec responses = %v, want %v", out, want)
			}
		})
	})
}

// TestStreamEstablishmentRetried: a failure to open the stream (from the chain after the
// interceptor, as grpc-go reports a connection that is not ready) is retried, each retry
// opening exactly one new stream.
func TestStreamEstablishmentRetried(t *testing.T) {
	for _, tc := range []struct {
		name         string
		failures     int32
		wantOpens    int32
		wantCalls    int
		wantAttempts int // of the *retry.Error from the stream's creation; 0: no error
	}{
		{name: "fails twice", failures: 2, wantOpens: 3, wantCalls: 1},
		{name: "fails always", failures: 99, wantOpens: 5, wantCalls: 0, wantAttempts: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var opens atomic.Int32
				refuse := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
					streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
					if opens.Add(1) <= tc.failures {
						return nil, status.Error(codes.Unavailable, "connection not ready")
					}
					return streamer(ctx, desc, cc, method, opts...)
				}
				s, err := interceptor.New(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil))))
				if err != nil {
					t.Fatal(err)
				}
				e := newEnv(t, []grpc.DialOption{grpc.WithChainStreamInterceptor(s.Stream(), refuse)})
				st, err := e.sb.StreamLogs(context.Background(), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
				if tc.wantAttempts > 0 {
					var re *retry.Error
					if !errors.As(err, &re) || re.Attempts() != tc.wantAttempts || !errors.Is(err, errs.ErrSandboxUnavailable) {
						t.Fatalf("StreamLogs = %v, want a *retry.Error of %d attempts", err, tc.wantAttempts)
					}
				} else {
					if err != nil {
						t.Fatalf("StreamLogs = %v", err)
					}
					if got, err := recvLogs(st); err != nil || len(got) != 3 {
						t.Errorf("received %q, %v; want 3 entries", got, err)
					}
					if h := headerValues(t, e.srv.Metadata(streamLogs), attemptHeader); fmt.Sprint(h) != "[2]" {
						t.Errorf("%s of the call that reached the server = %q, want [2]", attemptHeader, h)
					}
				}
				if n := opens.Load(); n != tc.wantOpens {
					t.Errorf("streams opened = %d, want %d", n, tc.wantOpens)
				}
				if n := e.srv.Calls(streamLogs); n != tc.wantCalls {
					t.Errorf("server calls = %d, want %d", n, tc.wantCalls)
				}
			})
		})
	}
}

// TestStreamNoLeak: streams that were retried, gave up, were abandoned by a cancelled
// caller, or ended normally leave no goroutine behind while the connection stays open.
func TestStreamNoLeak(t *testing.T) {
	e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(millisecondPolicy(), retry.WithBudget(nil)))))
	p := &pingServer{failFirst: 2, failAfter: 1}
	ping := newPing(t, p, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(millisecondPolicy(), retry.WithBudget(nil))))...)
	ctx := context.Background()
	// Warm up both connections, so that their own goroutines exist before the snapshot.
	if _, err := e.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ping.PingEmpty(ctx, &testpb.PingEmptyRequest{}); err != nil {
		t.Fatal(err)
	}
	before := goleak.IgnoreCurrent()

	// Retried, then read to the end.
	e.srv.ScriptStreamLogs(sandboxtest.StreamLogsScript{Err: unavailable()}, sandboxtest.StreamLogsScript{Err: unavailable()})
	st, err := e.sb.StreamLogs(ctx, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := recvLogs(st); err != nil || len(got) != 3 {
		t.Fatalf("received %q, %v", got, err)
	}
	// Gave up.
	e.srv.FailAlways(streamLogs, unavailable())
	st, err = e.sb.StreamLogs(ctx, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := recvLogs(st); status.Code(err) != codes.Unavailable {
		t.Fatalf("Recv = %v, want UNAVAILABLE", err)
	}
	e.srv.FailAlways(streamLogs, nil)
	// Retried twice, committed, then abandoned by the caller's cancel.
	cctx, cancel := context.WithCancel(ctx)
	bidi, err := ping.PingStream(cctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := bidi.Send(&testpb.PingStreamRequest{Value: "a"}); err != nil {
		t.Fatal(err)
	}
	if m, err := bidi.Recv(); err != nil || m.GetValue() != "a" {
		t.Fatalf("Recv = %v, %v", m, err)
	}
	cancel()
	if _, err := bidi.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("Recv after cancel = %v, want CANCELED", err)
	}
	// Client streaming, retried once (p's budget of failures is spent: failFirst 2 was
	// used by the bidi stream), closed by CloseAndRecv.
	cs, err := ping.PingClientStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.Send(&testpb.PingClientStreamRequest{Value: "x"}); err != nil {
		t.Fatal(err)
	}
	if res, err := cs.CloseAndRecv(); err != nil || res.GetCounter() != 1 {
		t.Fatalf("CloseAndRecv = %v, %v", res, err)
	}
	// The one goroutine per connection that follows its state for waiting retries lives as
	// long as the connection, like grpc-go's own: not a leak of a stream or of a wait.
	goleak.VerifyNone(t, before, goleak.IgnoreAnyFunction("github.com/faultline-go/faultline/interceptor.(*watcher).run"))
}

// TestStreamReleasesAttempts: once a stream is over, the context of every attempt it made
// is released (cancelled), whether it ended with io.EOF, with its one response (client
// streaming), or with an error; the caller's context is not.
func TestStreamReleasesAttempts(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, ping testpb.TestServiceClient, ctx context.Context)
	}{
		{name: "client streaming, CloseAndRecv", run: func(t *testing.T, ping testpb.TestServiceClient, ctx context.Context) {
			st, err := ping.PingClientStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Send(&testpb.PingClientStreamRequest{Value: "a"}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.CloseAndRecv(); err != nil {
				t.Fatalf("CloseAndRecv = %v", err)
			}
		}},
		{name: "server streaming, read to io.EOF", run: func(t *testing.T, ping testpb.TestServiceClient, ctx context.Context) {
			st, err := ping.PingList(ctx, &testpb.PingListRequest{Value: "a"})
			if err != nil {
				t.Fatal(err)
			}
			for {
				if _, err := st.Recv(); err == io.EOF {
					break
				} else if err != nil {
					t.Fatalf("Recv = %v", err)
				}
			}
		}},
		{name: "bidi, committed then failed", run: func(t *testing.T, ping testpb.TestServiceClient, ctx context.Context) {
			st, err := ping.PingStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Send(&testpb.PingStreamRequest{Value: "a"}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Recv(); err != nil {
				t.Fatalf("Recv = %v", err)
			}
			if err := st.Send(&testpb.PingStreamRequest{Value: "fail"}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Recv(); status.Code(err) != codes.Aborted {
				t.Fatalf("Recv = %v, want ABORTED", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var streams []grpc.ClientStream
				capture := func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
					streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
					cs, err := streamer(ctx, desc, cc, method, opts...)
					if err == nil {
						streams = append(streams, cs)
					}
					return cs, err
				}
				// PingList is declared idempotent: its failing attempt sends headers, which
				// would stop the retries of a method of unknown idempotency.
				s, err := interceptor.New(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil))),
					interceptor.WithIdempotency(pingList, retry.Idempotent))
				if err != nil {
					t.Fatal(err)
				}
				p := &pingServer{failFirst: 1, failAfter: 1, abortOn: "fail"}
				ping := newPing(t, p, grpc.WithChainStreamInterceptor(s.Stream(), capture))
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				tc.run(t, ping, ctx)
				synctest.Wait()
				if len(streams) != 2 {
					t.Fatalf("attempts = %d, want 2", len(streams))
				}
				for i, cs := range streams {
					if cs.Context().Err() == nil {
						t.Errorf("attempt %d: stream not released after the stream ended", i+1)
					}
				}
				if ctx.Err() != nil {
					t.Errorf("caller's context ended: %v", ctx.Err())
				}
			})
		})
	}
}
