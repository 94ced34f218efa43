//go:build !race

// Allocation ceilings are checked without the race detector only: under -race, sync.Pool
// drops a random share of what is put back, so counts vary from run to run. .ci/run runs
// these tests (go test -run Alloc) without -race.

package connectfaultline_test

import (
	"context"
	"testing"

	"connectrpc.com/connect"

	"github.com/faultline-go/faultline/connectfaultline"
	"github.com/faultline-go/faultline/connectfaultline/internal/connecttest"
	"github.com/faultline-go/faultline/connectfaultline/internal/sandboxpbconnect"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/retry"
)

// answer is an interceptor that answers every unary call itself, with one response made
// beforehand: what it costs is connect-go's client and whatever sits before it.
type answer struct{ res connect.AnyResponse }

func (a answer) WrapUnary(connect.UnaryFunc) connect.UnaryFunc {
	return func(context.Context, connect.AnyRequest) (connect.AnyResponse, error) { return a.res, nil }
}
func (answer) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}
func (answer) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// TestSuccessAllocs: a unary call that succeeds the first time costs no allocation in the
// interceptor, whatever its options: a client with the interceptor allocates exactly what
// one without it does.
func TestSuccessAllocs(t *testing.T) {
	stub := answer{res: connect.NewResponse(&sandboxpb.Sandbox{SandboxId: "sb-1"})}
	for _, tc := range []struct {
		name string
		opts []connectfaultline.Option
	}{
		{"defaults", nil},
		{"budget off", []connectfaultline.Option{connectfaultline.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithBudget(nil)))}},
		{"method policy", []connectfaultline.Option{connectfaultline.WithMethodPolicy(mGet, attempts(retry.DefaultPolicy(), 3))}},
		{"service policy", []connectfaultline.Option{connectfaultline.WithMethodPolicy(sandboxSvc, attempts(retry.DefaultPolicy(), 3))}},
		{"one-attempt policy", []connectfaultline.Option{connectfaultline.WithRetrier(retry.MustNew(oneAttempt()))}},
		{"throttling on", []connectfaultline.Option{connectfaultline.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithThrottle(retry.DefaultThrottle())))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i, err := connectfaultline.New(tc.opts...)
			if err != nil {
				t.Fatal(err)
			}
			plain := sandboxpbconnect.NewSandboxServiceClient(nil, "http://unused", connect.WithInterceptors(stub))
			with := sandboxpbconnect.NewSandboxServiceClient(nil, "http://unused", connect.WithInterceptors(i, stub))
			ctx := context.Background()
			req := connect.NewRequest(&sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
			measure := func(sb sandboxpbconnect.SandboxServiceClient) float64 {
				return testing.AllocsPerRun(1000, func() {
					if _, err := sb.GetSandbox(ctx, req); err != nil {
						t.Fatal(err)
					}
				})
			}
			base, got := measure(plain), measure(with)
			if got != base {
				t.Errorf("allocations per successful call = %v with the interceptor, %v without, want the same", got, base)
			}
		})
	}
}

// TestSuccessAllocsEndToEnd: the same, over a real connection to a connect-go server in
// memory, on every protocol and HTTP version: the plain client and the one with the
// interceptor take turns, and the fewest allocations each made in a round are compared
// (connect-go's and net/http's own counts vary by a fraction from round to round).
func TestSuccessAllocsEndToEnd(t *testing.T) {
	for _, v := range connecttest.HTTPVersions() {
		for _, p := range connecttest.Protocols() {
			c := client{memory, v, p}
			t.Run(c.String(), func(t *testing.T) {
				e := c.env(t, nil)
				plain := e.ep.SandboxClient(p)
				ctx := context.Background()
				req := connect.NewRequest(&sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
				measure := func(sb sandboxpbconnect.SandboxServiceClient) float64 {
					return testing.AllocsPerRun(200, func() {
						if _, err := sb.GetSandbox(ctx, req); err != nil {
							t.Fatal(err)
						}
					})
				}
				base, got := measure(plain), measure(e.sb)
				for range 4 {
					base, got = min(base, measure(plain)), min(got, measure(e.sb))
				}
				t.Logf("allocations per successful GetSandbox: %v plain, %v with the interceptor", base, got)
				if got > base {
					t.Errorf("allocations per successful call = %v with the interceptor, %v without, want no more", got, base)
				}
			})
		}
	}
}

// maxKeyedAllocs is what a CreateSandbox without a request id costs beyond a plain client's
// when it succeeds the first time (measured: 6): the copy of the request that carries the generated key
// (proto.Clone of an empty request), the UUIDv4 string, and the swap of the request's
// message (connect.Request's Msg field, through reflect).
const maxKeyedAllocs = 6

// TestKeyedSuccessAllocs: only the calls that get a generated idempotency key pay for it; a
// request whose caller set the key pays nothing.
func TestKeyedSuccessAllocs(t *testing.T) {
	stub := answer{res: connect.NewResponse(&sandboxpb.Sandbox{SandboxId: "sb-1"})}
	i, err := connectfaultline.New()
	if err != nil {
		t.Fatal(err)
	}
	plain := sandboxpbconnect.NewSandboxServiceClient(nil, "http://unused", connect.WithInterceptors(stub))
	with := sandboxpbconnect.NewSandboxServiceClient(nil, "http://unused", connect.WithInterceptors(i, stub))
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		req  *sandboxpb.CreateSandboxRequest
		max  float64
	}{
		{"key generated", &sandboxpb.CreateSandboxRequest{}, maxKeyedAllocs},
		{"caller's key", &sandboxpb.CreateSandboxRequest{RequestId: "mine"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := connect.NewRequest(tc.req)
			measure := func(sb sandboxpbconnect.SandboxServiceClient) float64 {
				return testing.AllocsPerRun(1000, func() {
					if _, err := sb.CreateSandbox(ctx, req); err != nil {
						t.Fatal(err)
					}
				})
			}
			base, got := measure(plain), measure(with)
			t.Logf("allocations per successful CreateSandbox: %v plain, %v with the interceptor", base, got)
			if got-base > tc.max {
				t.Errorf("allocations added per successful call = %v, want <= %v", got-base, tc.max)
			}
		})
	}
}

// maxStreamAllocs is what a server stream that succeeds the first time costs beyond a plain
// client's (measured: 4 on every protocol): the stream's wrapper, the copy of its request
// kept for a retry (StreamLogs keeps it to resume from) and the slice that holds it.
const maxStreamAllocs = 4

// TestStreamSuccessAllocs: what a StreamLogs that succeeds the first time costs, over a real
// connection in memory.
func TestStreamSuccessAllocs(t *testing.T) {
	for _, v := range connecttest.HTTPVersions() {
		for _, p := range connecttest.Protocols() {
			c := client{memory, v, p}
			t.Run(c.String(), func(t *testing.T) {
				e := c.env(t, nil)
				plain := e.ep.SandboxClient(p)
				ctx := context.Background()
				req := connect.NewRequest(&sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
				measure := func(sb sandboxpbconnect.SandboxServiceClient) float64 {
					return testing.AllocsPerRun(100, func() {
						st, err := sb.StreamLogs(ctx, req)
						if err != nil {
							t.Fatal(err)
						}
						for st.Receive() {
						}
						if err := st.Err(); err != nil {
							t.Fatal(err)
						}
						_ = st.Close()
					})
				}
				base, got := measure(plain), measure(e.sb)
				for range 4 {
					base, got = min(base, measure(plain)), min(got, measure(e.sb))
				}
				t.Logf("allocations per successful StreamLogs of %d lines: %v plain, %v with the interceptor", logLines, base, got)
				if got-base > maxStreamAllocs {
					t.Errorf("allocations added per successful stream = %v, want <= %d", got-base, maxStreamAllocs)
				}
			})
		}
	}
}
