package connectfaultline_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc/codes"

	"github.com/faultline-go/faultline/connectfaultline"
	"github.com/faultline-go/faultline/connectfaultline/internal/connecttest"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

const logLines = 8 // the log of every env (sandboxtest.WithLog(8, 0))

// TestServerStreamRetried: a server stream that fails before its first message is retried,
// with the caller's request headers on every attempt and the attempt header on retries, and
// delivers every message once.
func TestServerStreamRetried(t *testing.T) {
	eachClient(t, []transport{tcp, memory}, func(t *testing.T, c client) {
		e := c.env(t, fast())
		e.srv.FailNext(mLogs, 2, unavailable())
		req := connect.NewRequest(&sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
		req.Header().Set("Authorization", "Bearer t0k3n")
		st, err := e.sb.StreamLogs(callCtx(t), req)
		if err != nil {
			t.Fatalf("StreamLogs() error = %v", err)
		}
		var got []uint64
		for st.Receive() {
			got = append(got, st.Msg().GetNextLogOffset()-1)
		}
		if err := st.Err(); err != nil {
			t.Errorf("stream error = %v, want nil", err)
		}
		if err := st.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
		if !slices.Equal(got, upTo(logLines)) {
			t.Errorf("lines = %v, want every line once", got)
		}
		mds := e.srv.Metadata(mLogs)
		if got, want := headerValues(t, mds, attemptKey), []string{"", "1", "2"}; !slices.Equal(got, want) {
			t.Errorf("%s per attempt = %q, want %q", attemptKey, got, want)
		}
		for n, md := range mds {
			if got := md.Get("authorization"); !slices.Equal(got, []string{"Bearer t0k3n"}) {
				t.Errorf("attempt %d: authorization = %q, want the caller's", n+1, got)
			}
		}
	})
}

// TestStreamLogsResumed: a log stream that fails after delivering lines (with a status, or
// a reset of the stream or of the connection) is resumed from its last line's cursor:
// every line arrives once, in order.
func TestStreamLogsResumed(t *testing.T) {
	eachClient(t, []transport{tcp, memory}, func(t *testing.T, c client) {
		for _, tc := range []struct {
			name  string
			fault func(*connecttest.Server)
		}{
			{"status after 3 lines", func(s *connecttest.Server) {
				s.ScriptStreamLogs(sandboxtest.StreamLogsScript{Entries: 3, Err: unavailable()})
			}},
			{"stream reset after 2 lines", func(s *connecttest.Server) {
				s.Inject(mLogs, connecttest.ResetAfter(connecttest.AbortStream, 2))
			}},
			{"connection reset after 2 lines, then 3", func(s *connecttest.Server) {
				s.Inject(mLogs, connecttest.ResetAfter(connecttest.CloseConn, 2), connecttest.ResetAfter(connecttest.CloseConn, 3))
			}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				var rec recorder
				e := c.env(t, []connectfaultline.Option{noBudget(fastPolicy(), retry.WithHooks(rec.hooks()))})
				tc.fault(e.srv)
				got, err := recvLogs(callCtx(t), e, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1", TailLines: 100})
				if err != nil {
					t.Errorf("stream error = %v, want nil", err)
				}
				if !slices.Equal(got, upTo(logLines)) {
					t.Errorf("lines = %v, want every line once", got)
				}
				reqs := e.srv.Requests(mLogs)
				if len(reqs) < 2 {
					t.Fatalf("server saw %d streams, want a resumed one", len(reqs))
				}
				for _, r := range reqs[1:] {
					r := r.(*sandboxpb.StreamLogsRequest)
					if r.GetResumeLogSessionId() != "logs-sb-1" || r.GetResumeLogOffset() == 0 || r.GetTailLines() != 0 {
						t.Errorf("resumed request = %v, want the cursor set and tail_lines cleared", r)
					}
				}
				retries, dones := rec.events()
				if len(retries) != len(reqs)-1 || !retries[0].Resumed {
					t.Errorf("retry events = %+v, want %d resumes", retries, len(reqs)-1)
				}
				if len(dones) != 1 || dones[0].Err != nil || dones[0].Attempts != len(reqs) {
					t.Errorf("done events = %+v, want one success after %d attempts", dones, len(reqs))
				}
			})
		}
	})
}

// TestStreamNotResumed: a committed stream that cannot go on ends with a *retry.Error that
// says why: a stream without a resumer (WithResumer(nil)), or a CANCELLED from the server.
func TestStreamNotResumed(t *testing.T) {
	c := client{memory, connecttest.HTTP2, connecttest.GRPC}
	t.Run("no resumer", func(t *testing.T) {
		e := c.env(t, fast(connectfaultline.WithResumer(mLogs, nil)))
		e.srv.ScriptStreamLogs(sandboxtest.StreamLogsScript{Entries: 3, Err: unavailable()})
		got, err := recvLogs(callCtx(t), e, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
		if stop, n := stopOf(err); stop != retry.StopNotResumable || n != 1 || !errors.Is(err, errs.ErrSandboxUnavailable) {
			t.Errorf("stream error = %v (stop %v, %d attempts), want SandboxUnavailable, not resumable, 1 attempt", err, stop, n)
		}
		if !slices.Equal(got, upTo(3)) {
			t.Errorf("lines = %v, want the first 3", got)
		}
	})
	t.Run("server CANCELLED", func(t *testing.T) {
		e := c.env(t, fast())
		e.srv.ScriptStreamLogs(sandboxtest.StreamLogsScript{Entries: 3, Err: faultlinetest.Status(codes.Canceled, "stopped")})
		_, err := recvLogs(callCtx(t), e, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
		if _, n := stopOf(err); n != 1 || connect.CodeOf(err) != connect.CodeCanceled {
			t.Errorf("stream error = %v, want CANCELED after 1 attempt", err)
		}
		if got := e.srv.Calls(mLogs); got != 1 {
			t.Errorf("server saw %d streams, want 1", got)
		}
	})
}

// execStream opens a StreamExec, sends init and the stdin chunks (reusing one message,
// changed between sends, as an uploader does), closes its send side, and reads it to its
// end.
func execStream(ctx context.Context, e *env, chunks ...string) ([]string, error) {
	st := e.sb.StreamExec(ctx)
	defer st.CloseResponse()
	err := st.Send(&sandboxpb.ExecStreamRequest{Request: &sandboxpb.ExecStreamRequest_Init{
		Init: &sandboxpb.ExecStreamInit{SandboxId: "sb-1", Command: []string{"cat"}}}})
	in := &sandboxpb.ExecStreamRequest_Stdin{}
	msg := &sandboxpb.ExecStreamRequest{Request: in}
	for _, c := range chunks {
		if err != nil {
			break
		}
		in.Stdin = []byte(c)
		err = st.Send(msg)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	} // io.EOF: the stream ended, and Receive says how
	if err := st.CloseRequest(); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return drain(st)
}

// TestBidiReplayed: a bidi stream declared idempotent that fails before its first response
// is retried, replaying what was sent as it was when Send took it (a, b, c; not c, c, c);
// StreamExec as the table says (never repeated) is not retried.
func TestBidiReplayed(t *testing.T) {
	for _, p := range connecttest.Protocols() {
		c := client{memory, connecttest.HTTP2, p}
		t.Run(c.String(), func(t *testing.T) {
			synctestRun(t, func(t *testing.T) {
				e := c.env(t, []connectfaultline.Option{noBudget(secondsPolicy()),
					connectfaultline.WithIdempotency(mStreamExec, retry.Idempotent)})
				// The failure comes after the client sent everything: the server holds the
				// call first.
				e.srv.Inject(mStreamExec, connecttest.Delay(time.Second))
				e.srv.FailNext(mStreamExec, 1, unavailable())
				out, err := execStream(t.Context(), e, "a", "b", "c")
				if err != nil {
					t.Fatalf("StreamExec error = %v", err)
				}
				if !slices.Equal(out, []string{"a", "b", "c"}) {
					t.Errorf("stdout = %q, want a, b, c", out)
				}
				if got := e.srv.Calls(mStreamExec); got != 2 {
					t.Errorf("server saw %d streams, want 2", got)
				}
				if got := headerValues(t, e.srv.Metadata(mStreamExec), attemptKey); !slices.Equal(got, []string{"", "1"}) {
					t.Errorf("%s per attempt = %q, want [\"\" 1]", attemptKey, got)
				}
			})
		})
		t.Run(c.String()+"/never repeated", func(t *testing.T) {
			synctestRun(t, func(t *testing.T) {
				e := c.env(t, []connectfaultline.Option{noBudget(secondsPolicy())})
				e.srv.Inject(mStreamExec, connecttest.Delay(time.Second))
				e.srv.FailNext(mStreamExec, 1, unavailable())
				_, err := execStream(t.Context(), e, "a")
				if stop, n := stopOf(err); stop != retry.StopUnsafe || n != 1 || !errors.Is(err, errs.ErrSandboxUnavailable) {
					t.Errorf("StreamExec error = %v (stop %v after %d), want SandboxUnavailable, not safe to repeat, 1 attempt", err, stop, n)
				}
				if got := e.srv.Calls(mStreamExec); got != 1 {
					t.Errorf("server saw %d streams, want 1", got)
				}
			})
		})
	}
}

// TestCallInfoHeaders: request headers set in a connect.CallInfo (connect.NewClientContext)
// go out on every attempt, of a unary call and of a stream.
func TestCallInfoHeaders(t *testing.T) {
	eachClient(t, []transport{memory}, func(t *testing.T, c client) {
		e := c.env(t, fast())
		ctx, info := connect.NewClientContext(callCtx(t))
		info.RequestHeader().Set("X-From-Context", "yes")
		e.srv.FailNext(mGet, 1, unavailable())
		if err := getSandbox(ctx, e); err != nil {
			t.Fatalf("GetSandbox() error = %v", err)
		}
		e.srv.FailNext(mLogs, 1, unavailable())
		ctx, info = connect.NewClientContext(callCtx(t))
		info.RequestHeader().Set("X-From-Context", "yes")
		if _, err := recvLogs(ctx, e, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"}); err != nil {
			t.Fatalf("StreamLogs error = %v", err)
		}
		for _, m := range []string{mGet, mLogs} {
			if got := headerValues(t, e.srv.Metadata(m), "x-from-context"); !slices.Equal(got, []string{"yes", "yes"}) {
				t.Errorf("%s: x-from-context per attempt = %q, want it on both", m, got)
			}
		}
	})
}
