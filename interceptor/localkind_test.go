package interceptor_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/retry"
)

// TestLocalFailureKindIsBase (issue 16, instance 7; safety.md 1): a deterministic local
// failure carries its family's base kind, never a kind the docs call transient: a reply over
// the client's receive limit is not SandboxResourceExhaustedError (the sandbox ran out of
// nothing), though status.Code stays RESOURCE_EXHAUSTED. A quota the server sends keeps its
// kind.
func TestLocalFailureKindIsBase(t *testing.T) {
	for _, tc := range []struct {
		name string
		call func(e *env) error
		kind errs.Kind
		stop retry.StopReason
	}{
		{name: "GetSandbox reply over the receive limit", kind: errs.ErrSandbox, stop: retry.StopLocalFailure, call: func(e *env) error {
			_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}, grpc.MaxCallRecvMsgSize(4))
			return err
		}},
		{name: "GetSandbox request over the send limit", kind: errs.ErrSandbox, stop: retry.StopLocalFailure, call: func(e *env) error {
			_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}, grpc.MaxCallSendMsgSize(2))
			return err
		}},
		{name: "GetAvailableRunner reply over the receive limit", kind: errs.ErrDiscovery, stop: retry.StopLocalFailure, call: func(e *env) error {
			_, err := e.disc.GetAvailableRunner(context.Background(), &sandboxpb.GetAvailableRunnerRequest{RunnerId: "r-1"}, grpc.MaxCallRecvMsgSize(3))
			return err
		}},
		{name: "a quota the server sends", kind: errs.ErrSandboxResourceExhausted, stop: retry.StopNoServerSignal, call: func(e *env) error {
			e.srv.FailNext(getSandbox, 1, faultlinetest.Status(codes.ResourceExhausted, "grpc: received message larger than max, says the quota service",
				faultlinetest.QuotaFailure(faultlinetest.QuotaViolation("project:p", "sandboxes per hour"))))
			_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))))
				err := tc.call(e)
				if status.Code(err) != codes.ResourceExhausted {
					t.Fatalf("call = %v, want RESOURCE_EXHAUSTED", err)
				}
				var ce *errs.Error
				if !errors.As(err, &ce) || ce.Kind() != tc.kind {
					t.Errorf("kind of %v = %v, want %v", err, kindOf(err), tc.kind)
				}
				if transient := errors.Is(err, errs.ErrSandboxResourceExhausted); transient != (tc.kind == errs.ErrSandboxResourceExhausted) {
					t.Errorf("errors.Is(%v, ErrSandboxResourceExhausted) = %v, want %v", err, transient, !transient)
				}
				if stop, n := stopOf(err); stop != tc.stop || n != 1 {
					t.Errorf("stop = %v after %d attempts, want %v after 1", stop, n, tc.stop)
				}
			})
		})
	}
}
