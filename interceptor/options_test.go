package interceptor_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/retry"
)

// TestNewRejectsWhatCannotWork: options that could only misbehave at call time are errors of
// New, checked against the registered descriptors when the method is registered.
func TestNewRejectsWhatCannotWork(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  interceptor.Option
		want string
	}{
		{"idempotency out of range", interceptor.WithIdempotency(getSandbox, retry.Idempotency(99)), "not a level"},
		{"default idempotency out of range", interceptor.WithDefaultIdempotency(retry.Idempotency(99)), "not a level"},
		{"key field that is a message", interceptor.WithIdempotencyKey(createSandbox, "sandbox"), `no string field "sandbox"`},
		{"key field that does not exist", interceptor.WithIdempotencyKey(createSandbox, "nope"), `no string field "nope"`},
		{"key on a stream", interceptor.WithIdempotencyKey(streamLogs, "sandbox_id"), "unary requests only"},
		{"key on a method never repeated", interceptor.WithIdempotencyKey(sandboxpb.SandboxService_Exec_FullMethodName, "container"), "never repeated"},
		{"resumer on a unary method", interceptor.WithResumer(getSandbox, interceptor.ResumeStreamLogs), "only server-streaming"},
		{"resumer on a bidi method", interceptor.WithResumer(streamExec, interceptor.ResumeStreamLogs), "only server-streaming"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := interceptor.New(tc.opt); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New(%s) = %v, want an error containing %q", tc.name, err, tc.want)
			}
		})
	}
}

// TestNilsAreOff: a nil Option sets nothing, and a nil budget, throttle or hooks turn
// them off; none panics, on the success path or the failure path.
func TestNilsAreOff(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []retry.Option
	}{
		{"nil option", []retry.Option{nil}},
		{"nil budget", []retry.Option{retry.WithBudget(nil)}},
		{"nil throttle", []retry.Option{retry.WithThrottle(nil)}},
		{"zero hooks", []retry.Option{retry.WithHooks(retry.Hooks{})}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := interceptor.Unary(nil, interceptor.WithRetrier(retry.MustNew(attempts(millisecondPolicy(), 2), tc.opts...)))
			ctx := context.Background()
			if err := u(ctx, getSandbox, &sandboxpb.GetSandboxRequest{}, &sandboxpb.Sandbox{}, nil, okInvoker); err != nil {
				t.Fatalf("successful call = %v", err)
			}
			calls := 0
			failing := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
				calls++
				return unavailable().Err()
			}
			_ = u(ctx, getSandbox, &sandboxpb.GetSandboxRequest{}, &sandboxpb.Sandbox{}, nil, failing)
			if calls != 2 {
				t.Errorf("attempts = %d, want 2", calls)
			}
		})
	}
}
