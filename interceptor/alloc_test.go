//go:build !race

// Allocation ceilings are checked without the race detector only: under -race, sync.Pool
// drops a random share of what is put back (grpc-go's buffers among it), so counts vary
// from run to run. .ci/run runs these tests (go test -run Alloc) without -race.

package interceptor_test

import (
	"context"
	"testing"

	"google.golang.org/grpc"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/retry"
)

// TestSuccessAllocs: a call that succeeds the first time costs no allocation in the
// interceptor, whatever its options (per-call ones made once, beforehand).
func TestSuccessAllocs(t *testing.T) {
	callPolicy := interceptor.WithCallPolicy(attempts(secondsPolicy(), 3))
	withCall := interceptor.WithResource(errs.Resource{SandboxID: "sb-2"})
	set, err := interceptor.New(interceptor.WithMethodPolicy(sandboxSvc, secondsPolicy()),
		interceptor.WithMethodPolicy(getSandbox, attempts(secondsPolicy(), 3)))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		u      grpc.UnaryClientInterceptor
		method string
		opts   []grpc.CallOption
	}{
		{name: "Unary()", u: interceptor.Unary(), method: getSandbox},
		{name: "WithoutRetry", u: interceptor.Unary(), method: getSandbox, opts: []grpc.CallOption{interceptor.WithoutRetry()}},
		{name: "WithCallPolicy", u: interceptor.Unary(), method: getSandbox, opts: []grpc.CallOption{callPolicy}},
		{name: "WithCall", u: interceptor.Unary(), method: getSandbox, opts: []grpc.CallOption{withCall}},
		{name: "budget off", u: interceptor.Unary(interceptor.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithBudget(nil)))), method: getSandbox},
		{name: "exact method policy", u: set.Unary(), method: getSandbox},
		{name: "service policy", u: set.Unary(), method: readFile},
		{name: "default policy beside method policies", u: set.Unary(), method: getRunner},
		{name: "one-attempt policy", u: interceptor.Unary(interceptor.WithRetrier(retry.MustNew(oneAttempt()))), method: getSandbox},
		{name: "throttling on", u: interceptor.Unary(interceptor.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithThrottle(retry.DefaultThrottle())))), method: getSandbox},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			req, reply := &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}, &sandboxpb.Sandbox{}
			_ = tc.u(ctx, tc.method, req, reply, nil, okInvoker, tc.opts...) // warm-up: caches per-call policies
			if n := testing.AllocsPerRun(1000, func() {
				if err := tc.u(ctx, tc.method, req, reply, nil, okInvoker, tc.opts...); err != nil {
					t.Fatal(err)
				}
			}); n != 0 {
				t.Errorf("allocations per successful call = %v, want 0", n)
			}
		})
	}
}

// maxKeyedAllocs is what a CreateSandbox without a request id costs when it succeeds the first
// time (measured: 5): the copy of the request that carries the generated key (proto.Clone
// of an empty request) and the UUIDv4 string.
const maxKeyedAllocs = 5

// TestKeyedSuccessAllocs: only the methods that get a generated idempotency key pay for it;
// a request whose caller set the key pays nothing.
func TestKeyedSuccessAllocs(t *testing.T) {
	u := interceptor.Unary()
	ctx := context.Background()
	reply := &sandboxpb.Sandbox{}
	for _, tc := range []struct {
		name string
		req  *sandboxpb.CreateSandboxRequest
		max  float64
	}{
		{name: "key generated", req: &sandboxpb.CreateSandboxRequest{}, max: maxKeyedAllocs},
		{name: "caller's key", req: &sandboxpb.CreateSandboxRequest{RequestId: "mine"}, max: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := testing.AllocsPerRun(1000, func() {
				if err := u(ctx, createSandbox, tc.req, reply, nil, okInvoker); err != nil {
					t.Fatal(err)
				}
			})
			t.Logf("allocations per successful CreateSandbox: %v", n)
			if n > tc.max {
				t.Errorf("allocations per successful call = %v, want <= %v", n, tc.max)
			}
		})
	}
}
