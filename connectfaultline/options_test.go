package connectfaultline_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/connectfaultline"
	"github.com/faultline-go/faultline/connectfaultline/internal/connecttest"
	"github.com/faultline-go/faultline/connectfaultline/internal/sandboxpbconnect"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/retry"
)

// TestNewErrors: New rejects what cannot work, naming it.
func TestNewErrors(t *testing.T) {
	bad := retry.DefaultPolicy()
	bad.Multiplier = 0
	tests := []struct {
		name string
		opts []connectfaultline.Option
		want string
		is   error
	}{
		{"invalid method policy", []connectfaultline.Option{connectfaultline.WithMethodPolicy(mGet, bad)}, "policy for " + mGet, retry.ErrInvalidPolicy},
		{"malformed method policy name", []connectfaultline.Option{connectfaultline.WithMethodPolicy("GetSandbox", retry.DefaultPolicy())}, `"GetSandbox"`, nil},
		{"attempt header with capitals", []connectfaultline.Option{connectfaultline.WithAttemptHeader("X-Retry")}, `"X-Retry"`, nil},
		{"attempt header of the protocol", []connectfaultline.Option{connectfaultline.WithAttemptHeader("connect-attempt")}, `"connect-attempt"`, nil},
		{"attempt header of gRPC", []connectfaultline.Option{connectfaultline.WithAttemptHeader("grpc-retry")}, `"grpc-retry"`, nil},
		{"negative replay limit", []connectfaultline.Option{connectfaultline.WithReplayLimit(-1)}, "-1 bytes", nil},
		{"idempotency of no method", []connectfaultline.Option{connectfaultline.WithIdempotency("nope", retry.Idempotent)}, `"nope"`, nil},
		{"key for Exec", []connectfaultline.Option{connectfaultline.WithIdempotencyKey(mExec, "request_id")}, "never repeated", nil},
		{"key field that is not there", []connectfaultline.Option{connectfaultline.WithIdempotencyKey(mGet, "request_id")}, "no string field", nil},
		{"resumer of a unary method", []connectfaultline.Option{connectfaultline.WithResumer(mGet, connectfaultline.ResumeStreamLogs)}, "server-streaming", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			i, err := connectfaultline.New(tc.opts...)
			if err == nil || i != nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New() = %v, %v, want an error naming %s", i, err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("New() error %v is not %v", err, tc.is)
			}
		})
	}
}

// TestClientOptionInvalid: a client built with invalid options fails every call, unary or
// stream, with New's error, INVALID_ARGUMENT, before anything is sent; it never panics.
func TestClientOptionInvalid(t *testing.T) {
	bad := retry.DefaultPolicy()
	bad.MaxRetryDelay = 0
	srv := connecttest.New(sandboxes()...)
	ep := connecttest.ServeMemory(t, srv, connecttest.HTTP2)
	sb := ep.SandboxClient(connecttest.GRPC, connectfaultline.ClientOption(connectfaultline.WithMethodPolicy(sandboxSvc, bad)))
	_, err := sb.GetSandbox(callCtx(t), connect.NewRequest(&sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}))
	check := func(call string, err error) {
		t.Helper()
		if connect.CodeOf(err) != connect.CodeInvalidArgument || status.Code(err) != codes.InvalidArgument || !errors.Is(err, retry.ErrInvalidPolicy) {
			t.Errorf("%s error = %v, want INVALID_ARGUMENT matching retry.ErrInvalidPolicy", call, err)
		}
	}
	check("GetSandbox", err)
	st, err := sb.StreamLogs(callCtx(t), connect.NewRequest(&sandboxpb.StreamLogsRequest{SandboxId: "sb-1"}))
	if err != nil {
		check("StreamLogs", err)
	} else {
		if st.Receive() {
			t.Errorf("StreamLogs delivered a message")
		}
		check("StreamLogs", st.Err())
		_ = st.Close()
	}
	if got := srv.Arrived(mGet) + srv.Arrived(mLogs); got != 0 {
		t.Errorf("%d calls reached the server, want none", got)
	}
}

// TestMethodPolicies: a procedure's policy beats its service's, which beats the retrier's.
func TestMethodPolicies(t *testing.T) {
	c := client{memory, connecttest.HTTP2, connecttest.Connect}
	e := c.env(t, fast(
		connectfaultline.WithMethodPolicy(sandboxSvc, attempts(fastPolicy(), 2)),
		connectfaultline.WithMethodPolicy(mRead, attempts(fastPolicy(), 3)),
	))
	for _, tc := range []struct {
		method string
		want   int
	}{{mGet, 2}, {mRead, 3}, {mRunner, 5}} {
		e.srv.FailAlways(tc.method, unavailable())
		err := callMethod(callCtx(t), e, tc.method)
		if _, n := stopOf(err); n != tc.want {
			t.Errorf("%s: %d attempts (%v), want %d", tc.method, n, err, tc.want)
		}
	}
}

// TestDeclaredIdempotency: the level connect-go's generated code declares (connect.Spec,
// from the method's idempotency_level) stands where the registered descriptor's does: it
// beats the sandbox API's table, and WithIdempotency beats it.
func TestDeclaredIdempotency(t *testing.T) {
	c := client{memory, connecttest.HTTP1, connecttest.Connect}
	for _, tc := range []struct {
		name  string
		opts  []connectfaultline.Option
		calls int
	}{
		{"declared idempotent", nil, 2},
		{"configured beats declared", []connectfaultline.Option{connectfaultline.WithIdempotency(mExec, retry.NeverRetry)}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := c.env(t, fast(tc.opts...))
			exec := connect.NewClient[sandboxpb.ExecRequest, sandboxpb.ExecResponse](e.ep.Client, e.ep.URL+mExec,
				connect.WithIdempotency(connect.IdempotencyIdempotent), connect.WithInterceptors(e.i))
			e.srv.FailNext(mExec, 1, unavailable())
			_, err := exec.CallUnary(callCtx(t), connect.NewRequest(&sandboxpb.ExecRequest{SandboxId: "sb-1", Command: []string{"true"}}))
			if got := e.srv.Calls(mExec); got != tc.calls {
				t.Errorf("server saw %d attempts (%v), want %d", got, err, tc.calls)
			}
		})
	}
}

// TestHooksBudgetThrottle: the hooks see retries, the stop and one done event per call; the
// budget stops retries when spent; the throttle sheds a first attempt once the server
// rejected most recent ones.
func TestHooksBudgetThrottle(t *testing.T) {
	c := client{memory, connecttest.HTTP2, connecttest.GRPC}
	t.Run("hooks", func(t *testing.T) {
		var rec recorder
		e := c.env(t, []connectfaultline.Option{noBudget(fastPolicy(), retry.WithHooks(rec.hooks()))})
		e.srv.FailAlways(mGet, unavailable())
		err := getSandbox(callCtx(t), e)
		retries, dones := rec.events()
		if len(retries) != 4 || len(dones) != 1 {
			t.Fatalf("events: %d retries, %d dones; want 4, 1", len(retries), len(dones))
		}
		if dones[0].Reason != retry.StopExhausted || dones[0].Attempts != 5 || dones[0].Method != mGet || !errors.Is(dones[0].Err, errs.ErrSandboxUnavailable) {
			t.Errorf("done %+v; want exhausted after 5 attempts of %s", dones[0], mGet)
		}
		if retries[0].Target == "" || retries[0].Method != mGet {
			t.Errorf("retry event %+v: want the method and the server's address", retries[0])
		}
		if err == nil {
			t.Errorf("GetSandbox() = nil")
		}
	})
	t.Run("budget", func(t *testing.T) {
		b, err := retry.NewTokenBucket(3, 0.1) // retries while more than 1.5 tokens: one failure
		if err != nil {
			t.Fatal(err)
		}
		e := c.env(t, []connectfaultline.Option{connectfaultline.WithRetrier(retry.MustNew(fastPolicy(), retry.WithBudget(b)))})
		e.srv.FailAlways(mGet, unavailable())
		if stop, n := stopOf(getSandbox(callCtx(t), e)); stop != retry.StopBudget || n != 2 {
			t.Errorf("stop %v after %d attempts, want the budget after 2", stop, n)
		}
	})
	t.Run("throttle", func(t *testing.T) {
		th, err := retry.NewAdaptiveThrottle(1, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		e := c.env(t, []connectfaultline.Option{noBudget(attempts(fastPolicy(), 2), retry.WithThrottle(th))})
		e.srv.FailAlways(mGet, unavailable())
		shed, sent := 0, 0
		for range 20 {
			err := getSandbox(callCtx(t), e)
			if errors.Is(err, retry.ErrThrottled) {
				shed++
				if stop, n := stopOf(err); stop != retry.StopThrottled || n != 0 {
					t.Errorf("shed call: stop %v after %d attempts, want throttled after none", stop, n)
				}
			} else {
				_, n := stopOf(err)
				sent += n
			}
		}
		if shed == 0 || e.srv.Arrived(mGet) != sent {
			t.Errorf("%d of 20 calls shed, %d attempts reached the server, %d reported; want some shed, the rest sent", shed, e.srv.Arrived(mGet), sent)
		}
		e.srv.FailAlways(mLogs, unavailable())
		shed = 0
		for range 20 {
			if _, err := recvLogs(callCtx(t), e, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"}); errors.Is(err, retry.ErrThrottled) {
				shed++
			}
		}
		if shed == 0 {
			t.Errorf("no stream of 20 shed")
		}
	})
	t.Run("resets are not the server rejecting work", func(t *testing.T) {
		th, err := retry.NewAdaptiveThrottle(1, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		e := c.env(t, []connectfaultline.Option{noBudget(attempts(fastPolicy(), 2), retry.WithThrottle(th))})
		for range 20 {
			e.srv.Inject(mGet, connecttest.ResetBefore(connecttest.AbortStream), connecttest.ResetBefore(connecttest.AbortStream))
			if err := getSandbox(callCtx(t), e); errors.Is(err, retry.ErrThrottled) || !errors.Is(err, errs.ErrSandboxUnavailable) {
				t.Fatalf("GetSandbox under resets = %v, want SandboxUnavailableError, never shed", err)
			}
		}
		if got := e.srv.Arrived(mGet); got != 40 {
			t.Errorf("%d attempts reached the server, want all 40", got)
		}
	})
}

// TestNested: two interceptors on one client (or an SDK retrying inside a retried call)
// make the inner one's attempts only: attempts never multiply.
func TestNested(t *testing.T) {
	c := client{memory, connecttest.HTTP2, connecttest.Connect}
	e := c.env(t, fast())
	outer, err := connectfaultline.New(fast()...)
	if err != nil {
		t.Fatal(err)
	}
	sb := sandboxpbconnect.NewSandboxServiceClient(e.ep.Client, e.ep.URL, connect.WithInterceptors(outer, e.i))
	e.srv.FailAlways(mGet, unavailable())
	_, err = sb.GetSandbox(callCtx(t), connect.NewRequest(&sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}))
	if got := e.srv.Calls(mGet); got != 5 {
		t.Errorf("server saw %d attempts, want 5", got)
	}
	if stop, n := stopOf(err); stop != retry.StopExhausted || n != 5 {
		t.Errorf("error %v: stop %v after %d, want the inner loop's: exhausted after 5", err, stop, n)
	}
}

// TestHandlerUntouched: given to a handler, the interceptor does nothing.
func TestHandlerUntouched(t *testing.T) {
	i, err := connectfaultline.New()
	if err != nil {
		t.Fatal(err)
	}
	var h connect.UnaryFunc = func(context.Context, connect.AnyRequest) (connect.AnyResponse, error) {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("down"))
	}
	got := i.WrapUnary(h)
	if _, err := got(context.Background(), connect.NewRequest(&sandboxpb.GetSandboxRequest{})); connect.CodeOf(err) != connect.CodeUnavailable || errors.Is(err, errs.ErrSandbox) {
		t.Errorf("handler call error = %v, want the handler's own", err)
	}
	var sh connect.StreamingHandlerFunc = func(context.Context, connect.StreamingHandlerConn) error { return nil }
	if i.WrapStreamingHandler(sh) == nil {
		t.Errorf("WrapStreamingHandler returned nil")
	}
}
