package integration_test

import (
	"context"
	"errors"
	"io"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

var (
	stUnavailable = faultlinetest.Status(codes.Unavailable, "runner unavailable",
		faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_RUNNER_UNAVAILABLE", nil))
	stBackend = faultlinetest.Status(codes.Internal, "backend restarting",
		faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_BACKEND_UNAVAILABLE", nil))
)

// TestRetryEndToEnd runs the retry rules of spec/retry.md through the real server over TCP
// and checks exactly how many attempts reached the server.
func TestRetryEndToEnd(t *testing.T) {
	type result struct {
		calls    int // attempts the server received
		maxCalls int // when set, calls is a lower bound and this the upper one
		attempts int // attempts the error reports (0 on success)
		cause    retry.StopReason
		kind     errs.Kind // 0 on success
		code     codes.Code
		wait     time.Duration // TotalWait of the *retry.Error
	}
	tests := []struct {
		name     string
		policy   retry.Policy
		budget   func() retry.Budget // nil: no budget
		script   func(*sandboxtest.Server)
		callOpts []grpc.CallOption
		timeout  time.Duration
		want     result
		wantSent *status.Status // the status the error must still carry, unmodified
	}{
		{
			name:   "two UNAVAILABLE then success",
			policy: fastPolicy(5),
			script: func(s *sandboxtest.Server) { s.FailNext(mGet, 2, stUnavailable) },
			want:   result{calls: 3},
		},
		{
			name:     "attempts exhausted",
			policy:   fastPolicy(4),
			script:   func(s *sandboxtest.Server) { s.FailAlways(mGet, stUnavailable) },
			want:     result{calls: 4, attempts: 4, cause: retry.StopExhausted, kind: errs.ErrSandboxUnavailable, code: codes.Unavailable, wait: (2 + 4 + 8) * time.Millisecond},
			wantSent: stUnavailable,
		},
		{
			name:   "trusted BACKEND_UNAVAILABLE on INTERNAL is retried",
			policy: fastPolicy(5),
			script: func(s *sandboxtest.Server) { s.FailNext(mGet, 3, stBackend) },
			want:   result{calls: 4},
		},
		{
			name:   "RESOURCE_EXHAUSTED with a hint waits exactly the hint",
			policy: fastPolicy(3),
			script: func(s *sandboxtest.Server) {
				s.FailAlways(mGet, faultlinetest.Status(codes.ResourceExhausted, "slow down", faultlinetest.RetryInfo(15*time.Millisecond)))
			},
			want: result{calls: 3, attempts: 3, cause: retry.StopExhausted, kind: errs.ErrSandboxResourceExhausted, code: codes.ResourceExhausted, wait: 30 * time.Millisecond},
		},
		{
			name:   "hint above MaxRetryDelay: returned at once",
			policy: fastPolicy(5),
			script: func(s *sandboxtest.Server) {
				s.FailAlways(mGet, faultlinetest.Status(codes.Unavailable, "come back in an hour", faultlinetest.RetryInfo(time.Hour)))
			},
			want: result{calls: 1, attempts: 1, cause: retry.StopHintTooLong, kind: errs.ErrSandboxUnavailable, code: codes.Unavailable},
		},
		{
			name:   "NOT_FOUND is not retried",
			policy: fastPolicy(5),
			script: func(s *sandboxtest.Server) {},
			want:   result{calls: 1, attempts: 1, cause: retry.StopNotRetryable, kind: errs.ErrSandboxNotFound, code: codes.NotFound},
		},
		{
			name:   "spoofed domain on INTERNAL is not retried",
			policy: fastPolicy(5),
			script: func(s *sandboxtest.Server) {
				s.FailAlways(mGet, faultlinetest.Status(codes.Internal, "evil",
					faultlinetest.ErrorInfo("cwsandbox.com.evil", "CWSANDBOX_BACKEND_UNAVAILABLE", nil)))
			},
			want: result{calls: 1, attempts: 1, cause: retry.StopNotRetryable, kind: errs.ErrSandbox, code: codes.Internal},
		},
		{
			name:   "deadline first: a hint past the deadline is not waited for",
			policy: fastPolicy(5),
			script: func(s *sandboxtest.Server) {
				s.FailAlways(mGet, faultlinetest.Status(codes.Unavailable, "later", faultlinetest.RetryInfo(20*time.Second)))
			},
			timeout: 10 * time.Second,
			want:    result{calls: 1, attempts: 1, cause: retry.StopDeadline, kind: errs.ErrSandboxUnavailable, code: codes.Unavailable},
		},
		{
			name:    "caller's deadline is not retried",
			policy:  fastPolicy(5),
			script:  func(s *sandboxtest.Server) { s.Script(mGet, sandboxtest.Stall()) },
			timeout: 100 * time.Millisecond,
			want:    result{calls: 1, attempts: 1, cause: retry.StopDeadline, kind: errs.ErrSandboxRequestTimeout, code: codes.DeadlineExceeded},
		},
		{
			name:   "MaxElapsed stops before a wait past it",
			policy: func() retry.Policy { p := fastPolicy(10); p.MaxElapsed = 10 * time.Millisecond; return p }(),
			script: func(s *sandboxtest.Server) { s.FailAlways(mGet, stUnavailable) },
			// waits 2, 4 fit in 10ms (elapsed counted from the first failure, plus the time the
			// attempts took, so at most 3 attempts); the 8ms wait cannot.
			want: result{calls: 2, maxCalls: 3, cause: retry.StopMaxElapsed, kind: errs.ErrSandboxUnavailable, code: codes.Unavailable},
		},
		{
			name:   "token bucket budget stops the retries",
			policy: fastPolicy(10),
			budget: func() retry.Budget {
				b, err := retry.NewTokenBucket(4, 0.1)
				if err != nil {
					panic(err)
				}
				return b
			},
			script: func(s *sandboxtest.Server) { s.FailAlways(mGet, stUnavailable) },
			// 4 tokens: the first failure leaves 3 (> half: retry), the second 2 (not > half).
			want: result{calls: 2, attempts: 2, cause: retry.StopBudget, kind: errs.ErrSandboxUnavailable, code: codes.Unavailable, wait: 2 * time.Millisecond},
		},
		{
			name:   "a ratio budget with no room allows no retry",
			policy: fastPolicy(10),
			budget: func() retry.Budget {
				b, err := retry.NewRatioBudget(0, 0, time.Second)
				if err != nil {
					panic(err)
				}
				return b
			},
			script: func(s *sandboxtest.Server) { s.FailAlways(mGet, stUnavailable) },
			want:   result{calls: 1, attempts: 1, cause: retry.StopBudget, kind: errs.ErrSandboxUnavailable, code: codes.Unavailable},
		},
		{
			name:     "WithoutRetry makes one attempt and returns the *errs.Error",
			policy:   fastPolicy(5),
			script:   func(s *sandboxtest.Server) { s.FailAlways(mGet, stUnavailable) },
			callOpts: []grpc.CallOption{interceptor.WithoutRetry()},
			want:     result{calls: 1, attempts: 1, kind: errs.ErrSandboxUnavailable, code: codes.Unavailable},
		},
		{
			name:     "WithCallPolicy overrides the method's policy",
			policy:   fastPolicy(5),
			script:   func(s *sandboxtest.Server) { s.FailAlways(mGet, stUnavailable) },
			callOpts: []grpc.CallOption{interceptor.WithCallPolicy(fastPolicy(2))},
			want:     result{calls: 2, attempts: 2, cause: retry.StopExhausted, kind: errs.ErrSandboxUnavailable, code: codes.Unavailable, wait: 2 * time.Millisecond},
		},
		{
			name: "WithCallPolicy can retry what the default does not",
			policy: func() retry.Policy {
				return fastPolicy(5)
			}(),
			script: func(s *sandboxtest.Server) { s.FailNext(mGet, 2, faultlinetest.Status(codes.Aborted, "conflict")) },
			callOpts: []grpc.CallOption{interceptor.WithCallPolicy(func() retry.Policy {
				p := fastPolicy(3)
				p.RetryOn = retry.On(errs.ErrSandbox)
				return p
			}())},
			want: result{calls: 3},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, addr := startServer(t, sandboxtest.WithSandboxes("sb-1"))
			var b retry.Budget
			if tt.budget != nil {
				b = tt.budget()
			}
			var rec recorder
			c := dial(t, addr, []interceptor.Option{interceptor.WithRetrier(retry.MustNew(tt.policy, retry.WithBudget(b), retry.WithHooks(rec.hooks())))})
			defer func() {
				if t.Failed() {
					retries, dones := rec.events()
					for _, ev := range retries {
						t.Logf("retry hook: %+v", ev)
					}
					for _, ev := range dones {
						t.Logf("done hook: %+v", ev)
					}
				}
			}()
			// Warm up the connection, so that only the scripted call is measured.
			if _, err := c.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}); err != nil {
				t.Fatalf("warm-up GetSandbox() error = %v", err)
			}
			srv.Reset()
			rec.reset()
			tt.script(srv)
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 10 * time.Second
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			id := "sb-1"
			if tt.want.kind == errs.ErrSandboxNotFound {
				id = "sb-missing"
			}
			start := time.Now()
			_, err := c.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: id}, tt.callOpts...)
			elapsed := time.Since(start)

			calls := srv.Calls(mGet)
			if tt.want.maxCalls == 0 && calls != tt.want.calls {
				t.Errorf("server calls = %d, want %d", calls, tt.want.calls)
			}
			if tt.want.maxCalls != 0 && (calls < tt.want.calls || calls > tt.want.maxCalls) {
				t.Errorf("server calls = %d, want in [%d, %d]", calls, tt.want.calls, tt.want.maxCalls)
			}
			md := srv.Metadata(mGet)
			for i, m := range md {
				got := m.Get("x-retry-attempt")
				var want []string
				if i > 0 {
					want = []string{strconv.Itoa(i)}
				}
				if !cmp.Equal(got, want) {
					t.Errorf("attempt %d: x-retry-attempt = %q, want %q", i+1, got, want)
				}
			}
			if tt.want.kind == 0 {
				if err != nil {
					t.Fatalf("GetSandbox() error = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("GetSandbox() error = nil, want %v", tt.want.kind)
			}
			e := asErrs(t, err)
			if e.Kind() != tt.want.kind || !errors.Is(err, tt.want.kind) {
				t.Errorf("kind = %v, want %v", e.Kind(), tt.want.kind)
			}
			if status.Code(err) != tt.want.code {
				t.Errorf("status.Code(err) = %v, want %v", status.Code(err), tt.want.code)
			}
			if tt.wantSent != nil {
				st, _ := status.FromError(err)
				if !proto.Equal(st.Proto(), tt.wantSent.Proto()) {
					t.Errorf("status.FromError(err) = %v, want the status sent, unmodified: %v", st.Proto(), tt.wantSent.Proto())
				}
			}
			var re *retry.Error
			if tt.want.cause == 0 {
				if errors.As(err, &re) {
					t.Errorf("err is a *retry.Error (%v), want a bare *errs.Error", err)
				}
				return
			}
			if !errors.As(err, &re) {
				t.Fatalf("errors.As(%v, *retry.Error) = false, want true", err)
			}
			if re.StopReason() != tt.want.cause {
				t.Errorf("StopReason() = %v, want %v", re.StopReason(), tt.want.cause)
			}
			if re.Attempts() != calls {
				t.Errorf("Attempts() = %d, want the server's count %d", re.Attempts(), calls)
			}
			if tt.want.attempts != 0 && re.Attempts() != tt.want.attempts {
				t.Errorf("Attempts() = %d, want %d", re.Attempts(), tt.want.attempts)
			}
			if tt.want.wait != 0 && re.TotalWait() != tt.want.wait {
				t.Errorf("TotalWait() = %v, want %v", re.TotalWait(), tt.want.wait)
			}
			if tt.want.cause == retry.StopDeadline && tt.want.code != codes.DeadlineExceeded {
				// Returned at once, with the server's status, instead of sleeping into the deadline.
				if retries, _ := rec.events(); len(retries) != 0 || re.TotalWait() != 0 || elapsed >= timeout {
					t.Errorf("retries scheduled, TotalWait(), elapsed = %d, %v, %v, want 0, 0, < %v", len(retries), re.TotalWait(), elapsed, timeout)
				}
			}
			if tt.want.cause == retry.StopHintTooLong {
				if d, ok := e.RetryDelay(); !ok || d != time.Hour {
					t.Errorf("RetryDelay() = %v, %v, want 1h, true", d, ok)
				}
			}
		})
	}
}

// TestRetryMethodPolicies checks that a method's policy beats its service's, which beats
// the default, through the real server.
func TestRetryMethodPolicies(t *testing.T) {
	srv, addr := startServer(t, sandboxtest.WithSandboxes("sb-1"), sandboxtest.WithRunners("r-1"))
	c := dial(t, addr, []interceptor.Option{
		interceptor.WithRetrier(retry.MustNew(fastPolicy(2), retry.WithBudget(nil))),
		interceptor.WithMethodPolicy("/coreweave.sandbox.v1.SandboxService/", fastPolicy(3)),
		interceptor.WithMethodPolicy(mGet, fastPolicy(4)),
	})
	tests := []struct {
		name string
		rpc  rpc
		want int
	}{
		{"method policy", getSandbox("sb-1"), 4},
		{"service policy", readFile("sb-1", "/x"), 3},
		{"default policy", getRunner("r-1"), 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.Reset()
			srv.FailAlways(tt.rpc.method, stUnavailable)
			err := tt.rpc.invoke(context.Background(), c)
			if got := srv.Calls(tt.rpc.method); got != tt.want || attemptsOf(err) != tt.want {
				t.Errorf("%s: server calls, Attempts() = %d, %d, want %d, %d", tt.rpc.method, got, attemptsOf(err), tt.want, tt.want)
			}
		})
	}
}

// TestRetryStreams checks streams over TCP: retried until commit, never after, StreamExec
// never.
func TestRetryStreams(t *testing.T) {
	srv, addr := startServer(t, sandboxtest.WithSandboxes("sb-1"))
	c := dial(t, addr, []interceptor.Option{interceptor.WithRetrier(retry.MustNew(fastPolicy(5)))})

	recvAll := func(s grpc.ServerStreamingClient[sandboxpb.LogEntry]) ([]string, error) {
		var lines []string
		for {
			m, err := s.Recv()
			if err == io.EOF {
				return lines, nil
			}
			if err != nil {
				return lines, err
			}
			lines = append(lines, string(m.GetData()))
		}
	}

	t.Run("establishment failures are retried", func(t *testing.T) {
		srv.Reset()
		srv.FailNext(mLogs, 2, stUnavailable)
		s, err := c.sb.StreamLogs(context.Background(), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
		if err != nil {
			t.Fatalf("StreamLogs() error = %v", err)
		}
		lines, err := recvAll(s)
		if err != nil || len(lines) != sandboxtest.DefaultLogEntries || srv.Calls(mLogs) != 3 {
			t.Errorf("StreamLogs: lines, err, server calls = %q, %v, %d, want %d lines, nil, 3", lines, err, srv.Calls(mLogs), sandboxtest.DefaultLogEntries)
		}
	})
	t.Run("failure before the first message is retried", func(t *testing.T) {
		srv.Reset()
		srv.ScriptStreamLogs(sandboxtest.StreamLogsScript{Entries: 0, Err: stUnavailable}, sandboxtest.StreamLogsScript{Entries: 2})
		s, err := c.sb.StreamLogs(context.Background(), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
		if err != nil {
			t.Fatalf("StreamLogs() error = %v", err)
		}
		lines, err := recvAll(s)
		if err != nil || !cmp.Equal(lines, []string{"line 0\n", "line 1\n"}) || srv.Calls(mLogs) != 2 {
			t.Errorf("StreamLogs: lines, err, server calls = %q, %v, %d, want 2 lines, nil, 2", lines, err, srv.Calls(mLogs))
		}
	})
	t.Run("failure after commit resumes StreamLogs from its cursor", func(t *testing.T) {
		srv.Reset()
		srv.ScriptStreamLogs(sandboxtest.StreamLogsScript{Entries: 2, Err: stUnavailable})
		s, err := c.sb.StreamLogs(context.Background(), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
		if err != nil {
			t.Fatalf("StreamLogs() error = %v", err)
		}
		lines, err := recvAll(s)
		want := []string{"line 0\n", "line 1\n", "line 2\n", "line 3\n", "line 4\n"}
		if err != nil || !cmp.Equal(lines, want) || srv.Calls(mLogs) != 2 {
			t.Errorf("StreamLogs: lines, err, server calls = %q, %v, %d, want %q once each, nil, 2", lines, err, srv.Calls(mLogs), want)
		}
	})
	t.Run("StreamExec whose init reached the server is never retried", func(t *testing.T) {
		// The server fails the stream once it has read the init message, so the client's
		// Send happened before the failure: the command may have run. (A failure the server
		// sends as the stream opens races the client's Send over TCP: whether the init left
		// the client decides whether the attempt counts as not sent; the interceptor's tests
		// pin both cases deterministically.)
		readThenFail := grpc.ChainStreamInterceptor(func(s any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			if info.FullMethod != mExec {
				return h(s, ss)
			}
			if err := ss.RecvMsg(new(sandboxpb.ExecStreamRequest)); err != nil {
				return err
			}
			return stUnavailable.Err()
		})
		srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
		addr, stop, err := srv.StartTCP(readThenFail)
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		c := dial(t, addr, []interceptor.Option{interceptor.WithRetrier(retry.MustNew(fastPolicy(5)))})
		s, err := c.sb.StreamExec(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&sandboxpb.ExecStreamRequest{Request: &sandboxpb.ExecStreamRequest_Init{Init: &sandboxpb.ExecStreamInit{SandboxId: "sb-1", Command: []string{"true"}}}}); err != nil {
			t.Fatalf("Send(init) = %v", err)
		}
		_, err = s.Recv()
		if !errors.Is(err, errs.ErrSandboxUnavailable) || srv.Calls(mExec) != 1 {
			t.Errorf("StreamExec: err, server calls = %v, %d, want SandboxUnavailableError, 1", err, srv.Calls(mExec))
		}
		if re, ok := errors.AsType[*retry.Error](err); !ok || re.StopReason() != retry.StopUnsafe {
			t.Errorf("StreamExec: err = %v, want a *retry.Error stopped as %v", err, retry.StopUnsafe)
		}
	})
}

// TestRetryCreateDeduplicated checks that a CreateSandbox retried with its request_id
// creates one sandbox.
func TestRetryCreateDeduplicated(t *testing.T) {
	srv, addr := startServer(t)
	c := dial(t, addr, []interceptor.Option{interceptor.WithRetrier(retry.MustNew(fastPolicy(5)))})
	srv.FailNext(mCreate, 2, stUnavailable)
	first, err := c.sb.CreateSandbox(context.Background(), &sandboxpb.CreateSandboxRequest{RequestId: "req-1"})
	if err != nil {
		t.Fatalf("CreateSandbox() error = %v", err)
	}
	again, err := c.sb.CreateSandbox(context.Background(), &sandboxpb.CreateSandboxRequest{RequestId: "req-1"})
	if err != nil {
		t.Fatalf("CreateSandbox() again error = %v", err)
	}
	if srv.Calls(mCreate) != 4 || srv.Created() != 1 || first.GetSandboxId() != again.GetSandboxId() {
		t.Errorf("server calls, created, ids = %d, %d, %q/%q, want 4, 1, equal ids", srv.Calls(mCreate), srv.Created(), first.GetSandboxId(), again.GetSandboxId())
	}
}
