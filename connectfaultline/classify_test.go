package connectfaultline_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/faultline-go/faultline/connectfaultline"
	"github.com/faultline-go/faultline/connectfaultline/internal/connecttest"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

// TestKinds: a status the server sends reaches the caller as the *errs.Error of the kind
// the classifier chooses, with its details, whatever the protocol and HTTP version; the
// *connect.Error stays in the chain (errors.As, connect.CodeOf, IsWireError), and status.Code
// and status.FromError give the server's status, details included.
func TestKinds(t *testing.T) {
	notFound := faultlinetest.Status(codes.NotFound, "sandbox sb-1 not found",
		faultlinetest.ErrorInfo(sandboxtest.Domain, sandboxtest.ReasonSandboxNotFound, map[string]string{"sandbox_id": "sb-1"}))
	runner := faultlinetest.Status(codes.Unavailable, "runner restarting",
		faultlinetest.ErrorInfo(sandboxtest.Domain, "CWSANDBOX_RUNNER_UNAVAILABLE", nil),
		faultlinetest.RetryInfo(3*time.Second))
	violations := faultlinetest.Status(codes.InvalidArgument, "bad request",
		faultlinetest.BadRequest(&errdetails.BadRequest_FieldViolation{Field: "sandbox_id", Description: "must not be empty"}))
	foreign := faultlinetest.Status(codes.NotFound, "no such thing",
		faultlinetest.ErrorInfo("example.com", "CWSANDBOX_RUNNER_UNAVAILABLE", nil))
	tests := []struct {
		name   string
		method string
		st     *status.Status
		kind   errs.Kind
		reason string
		delay  time.Duration // 0: no RetryInfo
	}{
		{"not found with reason", mGet, notFound, errs.ErrSandboxNotFound, sandboxtest.ReasonSandboxNotFound, 0},
		{"transient reason with RetryInfo", mGet, runner, errs.ErrSandboxUnavailable, "CWSANDBOX_RUNNER_UNAVAILABLE", 3 * time.Second},
		{"field violations", mGet, violations, errs.ErrSandboxValidation, "", 0},
		{"untrusted domain", mGet, foreign, errs.ErrSandboxNotFound, "CWSANDBOX_RUNNER_UNAVAILABLE", 0},
		{"discovery NOT_FOUND", mRunner, faultlinetest.Status(codes.NotFound, "no runner"), errs.ErrRunnerNotFound, "", 0},
		{"discovery UNAVAILABLE", mRunner, unavailable(), errs.ErrDiscovery, "", 0},
		{"permission denied", mGet, faultlinetest.Status(codes.PermissionDenied, "no"), errs.ErrCWSandboxAuthentication, "", 0},
		{"server CANCELLED", mGet, faultlinetest.Status(codes.Canceled, "stopped"), errs.ErrSandboxNotRunning, "", 0},
	}
	eachClient(t, []transport{memory}, func(t *testing.T, c client) {
		e := c.env(t, []connectfaultline.Option{connectfaultline.WithRetrier(retry.MustNew(oneAttempt()))})
		for _, tc := range tests {
			e.srv.FailNext(tc.method, 1, tc.st)
			err := callMethod(callCtx(t), e, tc.method)
			ce := asErrs(t, tc.name, err)
			if ce.Kind() != tc.kind || !errors.Is(err, tc.kind) {
				t.Errorf("%s: kind = %v, want %v (%v)", tc.name, ce.Kind(), tc.kind, err)
			}
			if ce.Reason() != tc.reason {
				t.Errorf("%s: Reason() = %q, want %q", tc.name, ce.Reason(), tc.reason)
			}
			if d, ok := ce.RetryDelay(); d != tc.delay || ok != (tc.delay != 0) {
				t.Errorf("%s: RetryDelay() = %v, %v, want %v", tc.name, d, ok, tc.delay)
			}
			if ce.Message() != tc.st.Message() {
				t.Errorf("%s: Message() = %q, want the server's %q", tc.name, ce.Message(), tc.st.Message())
			}
			st, ok := status.FromError(err)
			if !ok || !cmp.Equal(st.Proto(), tc.st.Proto(), protocmp.Transform()) {
				t.Errorf("%s: status.FromError = %v, %v, want the server's status %v", tc.name, st, ok, tc.st)
			}
			var connectErr *connect.Error
			if !errors.As(err, &connectErr) || connectErr.Code() != connect.Code(tc.st.Code()) {
				t.Errorf("%s: errors.As(*connect.Error) = %v, want code %v", tc.name, connectErr, tc.st.Code())
			}
			if got := connect.CodeOf(err); got != connect.Code(tc.st.Code()) {
				t.Errorf("%s: connect.CodeOf = %v, want %v", tc.name, got, tc.st.Code())
			}
			if !connect.IsWireError(err) {
				t.Errorf("%s: connect.IsWireError = false, want true: the server sent it", tc.name)
			}
		}
	})
}

// TestKindsAfterRetries: the final error of a call that gave up answers what its last
// attempt's did, plus the attempts and the stop reason.
func TestKindsAfterRetries(t *testing.T) {
	c := client{memory, connecttest.HTTP2, connecttest.Connect}
	e := c.env(t, fast())
	e.srv.FailAlways(mGet, unavailable())
	err := getSandbox(callCtx(t), e)
	if stop, n := stopOf(err); stop != retry.StopExhausted || n != 5 {
		t.Errorf("stop = %v after %d attempts, want %v after 5", stop, n, retry.StopExhausted)
	}
	if !errors.Is(err, errs.ErrSandboxUnavailable) || status.Code(err) != codes.Unavailable ||
		connect.CodeOf(err) != connect.CodeUnavailable || !connect.IsWireError(err) {
		t.Errorf("error = %v: want SandboxUnavailableError, UNAVAILABLE for status and connect, a wire error", err)
	}
}

// TestCallerContext: a call the caller cancelled, or whose deadline passed, is the caller's
// doing: never retried, errors.Is finds the context's error, and its kind is not a
// statement about the sandbox.
func TestCallerContext(t *testing.T) {
	eachClient(t, []transport{memory}, func(t *testing.T, c client) {
		e := c.env(t, fast())
		ctx, cancel := context.WithCancel(callCtx(t))
		cancel()
		err := getSandbox(ctx, e)
		if !errors.Is(err, context.Canceled) || errors.Is(err, errs.ErrSandboxNotRunning) || !errors.Is(err, errs.ErrSandbox) {
			t.Errorf("cancelled call error = %v, want context.Canceled, SandboxError, not SandboxNotRunningError", err)
		}
		if _, n := stopOf(err); n != 1 {
			t.Errorf("cancelled call made %d attempts, want 1", n)
		}

		e.srv.Script(mGet, sandboxtest.Stall())
		ctx, cancel = context.WithTimeout(callCtx(t), 50*time.Millisecond)
		defer cancel()
		err = getSandbox(ctx, e)
		if !errors.Is(err, context.DeadlineExceeded) || status.Code(err) != codes.DeadlineExceeded {
			t.Errorf("call past its deadline: error = %v, want context.DeadlineExceeded, DEADLINE_EXCEEDED", err)
		}
		if got := e.srv.Calls(mGet); got != 1 {
			t.Errorf("server saw %d attempts, want 1", got)
		}
	})
}

// TestCallerCancelsStream: a stream the caller cancels while the server holds it ends with
// CANCELED, the caller's doing (errors.Is(err, context.Canceled)), whatever connect-go read
// from the transport meanwhile; it is not retried.
func TestCallerCancelsStream(t *testing.T) {
	eachClient(t, []transport{tcp, memory}, func(t *testing.T, c client) {
		e := c.env(t, fast())
		e.srv.Script(mLogs, sandboxtest.Stall())
		ctx, cancel := context.WithCancel(callCtx(t))
		defer cancel()
		go func() {
			if e.srv.WaitCalls(callCtx(t), mLogs, 1) == nil {
				cancel()
			}
		}()
		_, err := recvLogs(ctx, e, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
		if !errors.Is(err, context.Canceled) || status.Code(err) != codes.Canceled || errors.Is(err, errs.ErrSandboxNotRunning) {
			t.Errorf("cancelled stream error = %v (status %v), want CANCELED, context.Canceled, not SandboxNotRunningError", err, status.Code(err))
		}
		if got := e.srv.Calls(mLogs); got != 1 {
			t.Errorf("server saw %d streams, want 1", got)
		}
	})
}
