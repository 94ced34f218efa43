//go:build !race

package otelfaultline_test

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"google.golang.org/grpc"

	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/otelfaultline"
	"github.com/faultline-go/faultline/retry"
)

// TestSuccessAllocs: with the adapter installed, alone or beside the slog hooks, a unary
// call that succeeds the first time still costs no allocation in the interceptor.
func TestSuccessAllocs(t *testing.T) {
	tm := newTelemetry()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ok := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	for _, tc := range []struct {
		name string
		opts []interceptor.Option
	}{
		{name: "adapter on the SDK", opts: []interceptor.Option{interceptor.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithHooks(tm.hooks())))}},
		{name: "adapter on the global provider", opts: []interceptor.Option{interceptor.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithHooks(otelfaultline.Hooks())))}},
		{name: "adapter and slog", opts: []interceptor.Option{interceptor.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithHooks(tm.hooks()), retry.WithHooks(retry.SlogHooks(logger))))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := interceptor.Unary(tc.opts...)
			ctx, span := tm.tp.Tracer("test").Start(context.Background(), "caller")
			defer span.End()
			req, reply := &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}, &sandboxpb.Sandbox{}
			if n := testing.AllocsPerRun(1000, func() {
				if err := u(ctx, getSandbox, req, reply, nil, ok); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("allocations per successful call = %v, want 0", n)
			}
		})
	}
}
