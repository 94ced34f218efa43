package connectfaultline_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/connectfaultline"
	"github.com/faultline-go/faultline/connectfaultline/internal/connecttest"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/retry"
)

// TestUnaryRetried: a unary call that fails twice with UNAVAILABLE succeeds on its third
// attempt, on every protocol and HTTP version; retries carry the attempt header, and every
// attempt the caller's headers.
func TestUnaryRetried(t *testing.T) {
	eachClient(t, []transport{tcp, memory}, func(t *testing.T, c client) {
		e := c.env(t, fast())
		e.srv.FailNext(mGet, 2, unavailable())
		req := connect.NewRequest(&sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
		req.Header().Set("Authorization", "Bearer t0k3n")
		req.Header().Add("X-Trace", "a")
		req.Header().Add("X-Trace", "b")
		res, err := e.sb.GetSandbox(callCtx(t), req)
		if err != nil {
			t.Fatalf("GetSandbox() error = %v, want nil after 2 retries", err)
		}
		if res.Msg.GetSandboxId() != "sb-1" {
			t.Errorf("GetSandbox() = %v, want sandbox sb-1", res.Msg)
		}
		mds := e.srv.Metadata(mGet)
		if got, want := headerValues(t, mds, attemptKey), []string{"", "1", "2"}; !slices.Equal(got, want) {
			t.Errorf("%s per attempt = %q, want %q", attemptKey, got, want)
		}
		for n, md := range mds {
			if got := md.Get("authorization"); !slices.Equal(got, []string{"Bearer t0k3n"}) {
				t.Errorf("attempt %d: authorization = %q, want the caller's", n+1, got)
			}
			if got := md.Get("x-trace"); !slices.Equal(got, []string{"a", "b"}) {
				t.Errorf("attempt %d: x-trace = %q, want [a b]", n+1, got)
			}
		}
		if got := req.Header().Values(attemptKey); got != nil {
			t.Errorf("request's %s after the call = %q, want none: the caller's headers are restored", attemptKey, got)
		}
	})
}

// TestAttemptHeaderReplaced: a caller (a proxy) that forwards an attempt header sends it as
// it is on the first attempt; retries replace it; the caller's value is restored after the
// call. An empty WithAttemptHeader sends none.
func TestAttemptHeaderReplaced(t *testing.T) {
	c := client{memory, connecttest.HTTP2, connecttest.GRPC}
	for _, tc := range []struct {
		name string
		opts []connectfaultline.Option
		want []string
	}{
		{"default", fast(), []string{"7", "1", "2"}},
		{"renamed", fast(connectfaultline.WithAttemptHeader("x-attempt")), []string{"7", "7", "7"}},
		{"off", fast(connectfaultline.WithAttemptHeader("")), []string{"7", "7", "7"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := c.env(t, tc.opts)
			e.srv.FailNext(mGet, 2, unavailable())
			req := connect.NewRequest(&sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
			req.Header().Set(attemptKey, "7")
			if _, err := e.sb.GetSandbox(callCtx(t), req); err != nil {
				t.Fatalf("GetSandbox() error = %v", err)
			}
			if got := headerValues(t, e.srv.Metadata(mGet), attemptKey); !slices.Equal(got, tc.want) {
				t.Errorf("%s per attempt = %q, want %q", attemptKey, got, tc.want)
			}
			if got := req.Header().Values(attemptKey); !slices.Equal(got, []string{"7"}) {
				t.Errorf("request's %s after the call = %q, want the caller's [7]", attemptKey, got)
			}
		})
	}
	t.Run("renamed header on retries", func(t *testing.T) {
		e := c.env(t, fast(connectfaultline.WithAttemptHeader("x-attempt")))
		e.srv.FailNext(mGet, 1, unavailable())
		if err := getSandbox(callCtx(t), e); err != nil {
			t.Fatalf("GetSandbox() error = %v", err)
		}
		if got := headerValues(t, e.srv.Metadata(mGet), "x-attempt"); !slices.Equal(got, []string{"", "1"}) {
			t.Errorf("x-attempt per attempt = %q, want [\"\" 1]", got)
		}
	})
}

// TestIdempotencyKey: a CreateSandbox without request_id gets one generated id, the same on
// every attempt, on a copy: the caller's message is untouched; a caller's id is kept; a
// create that failed after the server created the sandbox is retried and creates one.
func TestIdempotencyKey(t *testing.T) {
	eachClient(t, []transport{memory}, func(t *testing.T, c client) {
		e := c.env(t, fast())
		e.srv.FailAfterNext(mCreate, 2, unavailable())
		msg := &sandboxpb.CreateSandboxRequest{Sandbox: &sandboxpb.Sandbox{Spec: &sandboxpb.SandboxSpec{Image: "python:3.12"}}}
		before := proto.Clone(msg)
		req := connect.NewRequest(msg)
		res, err := e.sb.CreateSandbox(callCtx(t), req)
		if err != nil {
			t.Fatalf("CreateSandbox() error = %v", err)
		}
		if got := e.srv.SandboxesCreated(); got != 1 {
			t.Errorf("SandboxesCreated() = %d, want 1 (3 attempts, one request id)", got)
		}
		var ids []string
		for _, r := range e.srv.Requests(mCreate) {
			ids = append(ids, r.(*sandboxpb.CreateSandboxRequest).GetRequestId())
		}
		if len(ids) != 3 || ids[0] == "" || ids[1] != ids[0] || ids[2] != ids[0] {
			t.Errorf("request ids per attempt = %q, want one generated id three times", ids)
		}
		if !proto.Equal(msg, before) || req.Msg != msg {
			t.Errorf("caller's request after the call = %v (same pointer: %v), want it untouched", req.Msg, req.Msg == msg)
		}
		if res.Msg.GetSandboxId() == "" {
			t.Errorf("CreateSandbox() = %v, want a sandbox", res.Msg)
		}

		e.srv.Reset()
		if _, err := e.sb.CreateSandbox(callCtx(t), connect.NewRequest(&sandboxpb.CreateSandboxRequest{RequestId: "mine"})); err != nil {
			t.Fatalf("CreateSandbox(mine) error = %v", err)
		}
		if r := e.srv.Requests(mCreate); len(r) != 1 || r[0].(*sandboxpb.CreateSandboxRequest).GetRequestId() != "mine" {
			t.Errorf("requests = %v, want one with the caller's id", r)
		}
	})
}

// TestWhatIsRepeated: which failures are retried, by the method's level and where the
// failure came from (safety.md sections 2 and 3), on every protocol.
func TestWhatIsRepeated(t *testing.T) {
	exhausted := faultlinetest.Status(codes.ResourceExhausted, "quota")
	declined := faultlinetest.Status(codes.ResourceExhausted, "slow down", faultlinetest.RetryInfo(0))
	hinted := withHint(1)
	for _, tc := range []struct {
		name     string
		opts     []connectfaultline.Option
		method   string
		script   func(*connecttest.Server, string)
		calls    int // attempts the server saw
		stop     retry.StopReason
		wantKind errs.Kind
	}{
		{name: "read, bare UNAVAILABLE", method: mGet, script: failNext(2, unavailable()), calls: 3},
		{name: "Exec, bare UNAVAILABLE", method: mExec, script: failNext(2, unavailable()), calls: 1, stop: retry.StopUnsafe, wantKind: errs.ErrSandboxUnavailable},
		{name: "Exec, RetryInfo", method: mExec, script: failNext(2, hinted), calls: 1, stop: retry.StopUnsafe, wantKind: errs.ErrSandboxUnavailable},
		{name: "Exec declared not idempotent, RetryInfo", method: mExec, script: failNext(2, hinted), calls: 3,
			opts: []connectfaultline.Option{connectfaultline.WithIdempotency(mExec, retry.NotIdempotent)}},
		{name: "Exec declared not idempotent, bare UNAVAILABLE", method: mExec, script: failNext(2, unavailable()), calls: 1,
			opts: []connectfaultline.Option{connectfaultline.WithIdempotency(mExec, retry.NotIdempotent)}, stop: retry.StopUnsafe, wantKind: errs.ErrSandboxUnavailable},
		{name: "bare RESOURCE_EXHAUSTED", method: mGet, script: failNext(2, exhausted), calls: 1, stop: retry.StopNoServerSignal, wantKind: errs.ErrSandboxResourceExhausted},
		{name: "RESOURCE_EXHAUSTED with RetryInfo", method: mGet, script: failNext(2, declined), calls: 3},
		{name: "NOT_FOUND", method: mGet, script: failNext(1, faultlinetest.Status(codes.NotFound, "gone")), calls: 1, stop: retry.StopNotRetryable, wantKind: errs.ErrSandboxNotFound},
		{name: "create without key, keys off", method: mCreate, script: failNext(2, unavailable()), calls: 1,
			opts: []connectfaultline.Option{connectfaultline.WithoutIdempotencyKeys()}, stop: retry.StopUnsafe, wantKind: errs.ErrSandboxUnavailable},
		{name: "discovery, bare UNAVAILABLE", method: mRunner, script: failNext(2, unavailable()), calls: 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eachClient(t, []transport{memory}, func(t *testing.T, c client) {
				e := c.env(t, fast(tc.opts...))
				tc.script(e.srv, tc.method)
				err := callMethod(callCtx(t), e, tc.method)
				if got := e.srv.Calls(tc.method); got != tc.calls {
					t.Errorf("server saw %d attempts, want %d (error %v)", got, tc.calls, err)
				}
				if tc.stop == 0 {
					if err != nil {
						t.Errorf("call error = %v, want nil", err)
					}
					return
				}
				if stop, _ := stopOf(err); stop != tc.stop {
					t.Errorf("stop reason = %v (%v), want %v", stop, err, tc.stop)
				}
				if !errors.Is(err, tc.wantKind) {
					t.Errorf("error %v is not %v", err, tc.wantKind)
				}
			})
		})
	}
}

func failNext(n int, st *status.Status) func(*connecttest.Server, string) {
	return func(s *connecttest.Server, method string) { s.FailNext(method, n, st) }
}

// callMethod makes a call of a unary method of the sandbox API with a valid request.
func callMethod(ctx context.Context, e *env, method string) error {
	var err error
	switch method {
	case mGet:
		err = getSandbox(ctx, e)
	case mExec:
		_, err = e.sb.Exec(ctx, connect.NewRequest(&sandboxpb.ExecRequest{SandboxId: "sb-1", Command: []string{"true"}}))
	case mCreate:
		_, err = e.sb.CreateSandbox(ctx, connect.NewRequest(&sandboxpb.CreateSandboxRequest{}))
	case mRunner:
		_, err = e.disc.GetAvailableRunner(ctx, connect.NewRequest(&sandboxpb.GetAvailableRunnerRequest{RunnerId: "r-1"}))
	case mRead:
		_, err = e.sb.ReadFile(ctx, connect.NewRequest(&sandboxpb.ReadFileRequest{SandboxId: "sb-1", Path: "/data/in.txt"}))
	default:
		panic("callMethod: " + method)
	}
	return err
}
