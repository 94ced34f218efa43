package bench

import (
	"context"
	"time"

	"github.com/failsafe-go/failsafe-go/failsafegrpc"
	"github.com/googleapis/gax-go/v2"
	gmwretry "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/retry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/retry"
)

// Role says what a [Peer] is in the comparison, and so which scenarios it takes part in.
type Role uint8

const (
	// RolePlain is the plain client: the baseline of the success path, and the no-retry
	// row of the failure scenarios.
	RolePlain Role = iota
	// RoleFloor is a no-op interceptor: the least any interceptor costs.
	RoleFloor
	// RoleOurs is faultline as installed by interceptor.DialOptions().
	RoleOurs
	// RoleOursVariant is faultline with a non-default option, shown where it matters.
	RoleOursVariant
	// RolePeer is another library's retry layer.
	RolePeer
)

// Peer is one contender: how it is installed on a client connection.
type Peer struct {
	Name   string // row label in the report
	Role   Role
	Module string // module whose version the report prints; "" for none
	Setup  string // the settings, as the report's method section lists them
	Stream bool   // whether it wraps streams too (else it is left out of the stream rows)

	// Unary returns the peer's unary interceptor alone, for peers that are one; nil
	// for the others (the plain client, grpc-go's channel-level retries).
	Unary func() grpc.UnaryClientInterceptor

	// options returns new dial options for one connection, so that per-client state
	// (budgets, token buckets) is never shared between connections.
	options func() []grpc.DialOption
}

// Options returns new dial options that install p on one connection.
func (p Peer) Options() []grpc.DialOption { return p.options() }

// Retries reports whether p retries at all.
func (p Peer) Retries() bool { return p.Role != RolePlain && p.Role != RoleFloor }

// Common retry settings of the peers that accept them: at most 5 attempts, on
// UNAVAILABLE and RESOURCE_EXHAUSTED, backoff 200 ms doubling to 5 s.
const (
	maxAttempts    = 5
	initialBackoff = 200 * time.Millisecond
	maxBackoff     = 5 * time.Second
)

var retryCodes = []codes.Code{codes.Unavailable, codes.ResourceExhausted}

// serviceConfig is grpc-go's retryPolicy with the common settings, for every method of
// SandboxService; throttle adds gRFC A6 retryThrottling.
func serviceConfig(throttle bool) string {
	const policy = `"methodConfig":[{"name":[{"service":"coreweave.sandbox.v1.SandboxService"}],` +
		`"retryPolicy":{"maxAttempts":5,"initialBackoff":"0.2s","maxBackoff":"5s","backoffMultiplier":2,` +
		`"retryableStatusCodes":["UNAVAILABLE","RESOURCE_EXHAUSTED"]}}]`
	if throttle {
		return `{` + policy + `,"retryThrottling":{"maxTokens":10,"tokenRatio":0.1}}`
	}
	return `{` + policy + `}`
}

// Peers returns the table of contenders, in report order.
func Peers() []Peer {
	return []Peer{
		{
			Name: "none", Role: RolePlain, Stream: true,
			Setup:   "plain client, no interceptor (grpc-go's retries are on but no service config asks for any)",
			options: func() []grpc.DialOption { return nil },
		},
		{
			Name: "no-op interceptor", Role: RoleFloor, Stream: true,
			Setup: "unary and stream interceptors that only call the invoker",
			Unary: func() grpc.UnaryClientInterceptor { return noopUnary },
			options: func() []grpc.DialOption {
				return []grpc.DialOption{
					grpc.WithChainUnaryInterceptor(noopUnary),
					grpc.WithChainStreamInterceptor(noopStream),
				}
			},
		},
		{
			Name: "faultline", Role: RoleOurs, Module: "github.com/faultline-go/faultline", Stream: true,
			Setup:   "interceptor.DialOptions(): default policy (5 attempts, 200ms..5s x2, jitter 0.2, RetryInfo honoured +0..10%), default budget (20% + 10/s), grpc.WithDisableRetry",
			Unary:   func() grpc.UnaryClientInterceptor { return interceptor.Unary() },
			options: func() []grpc.DialOption { return interceptor.DialOptions() },
		},
		{
			Name: "faultline, no budget", Role: RoleOursVariant, Module: "github.com/faultline-go/faultline", Stream: true,
			Setup: "interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithBudget(nil))))",
			options: func() []grpc.DialOption {
				return interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithBudget(nil))))
			},
		},
		{
			Name: "go-grpc-middleware retry", Role: RolePeer, Module: "github.com/grpc-ecosystem/go-grpc-middleware/v2", Stream: true,
			Setup: "retry.UnaryClientInterceptor / StreamClientInterceptor(WithMax(5), WithCodes(UNAVAILABLE, RESOURCE_EXHAUSTED)); default backoff: linear 50ms +-10%",
			Unary: func() grpc.UnaryClientInterceptor { return gmwretry.UnaryClientInterceptor(gmwOptions()...) },
			options: func() []grpc.DialOption {
				return []grpc.DialOption{
					grpc.WithChainUnaryInterceptor(gmwretry.UnaryClientInterceptor(gmwOptions()...)),
					grpc.WithChainStreamInterceptor(gmwretry.StreamClientInterceptor(gmwOptions()...)),
				}
			},
		},
		{
			Name: "grpc-go service config", Role: RolePeer, Module: "google.golang.org/grpc", Stream: true,
			Setup: "grpc.WithDefaultServiceConfig: retryPolicy maxAttempts 5, initialBackoff 0.2s, maxBackoff 5s, backoffMultiplier 2, UNAVAILABLE/RESOURCE_EXHAUSTED (backoff is uniform in [0, b))",
			options: func() []grpc.DialOption {
				return []grpc.DialOption{grpc.WithDefaultServiceConfig(serviceConfig(false))}
			},
		},
		{
			Name: "grpc-go service config + throttling", Role: RolePeer, Module: "google.golang.org/grpc", Stream: true,
			Setup:   "as above plus retryThrottling maxTokens 10, tokenRatio 0.1",
			options: func() []grpc.DialOption { return []grpc.DialOption{grpc.WithDefaultServiceConfig(serviceConfig(true))} },
		},
		{
			Name: "gax-go Invoke", Role: RolePeer, Module: "github.com/googleapis/gax-go/v2", Stream: true,
			Setup: "gax.Invoke around the invoker (around stream creation for streams, as generated clients do), gax.WithRetry(OnCodes(UNAVAILABLE, RESOURCE_EXHAUSTED, Backoff{200ms, 5s, x2})); full jitter; no attempt limit (bounded by the caller's deadline)",
			Unary: func() grpc.UnaryClientInterceptor { return gaxUnary },
			options: func() []grpc.DialOption {
				return []grpc.DialOption{
					grpc.WithChainUnaryInterceptor(gaxUnary),
					grpc.WithChainStreamInterceptor(gaxStream),
				}
			},
		},
		{
			Name: "failsafe-go", Role: RolePeer, Module: "github.com/failsafe-go/failsafe-go",
			Setup: "failsafegrpc.NewUnaryClientInterceptor(failsafegrpc.NewRetryPolicyBuilder().WithMaxAttempts(5).WithBackoffFactor(200ms, 5s, 2).WithJitterFactor(0.2).ReturnLastFailure()); its gRPC builder retries UNAVAILABLE, RESOURCE_EXHAUSTED and DEADLINE_EXCEEDED; no stream interceptor",
			Unary: failsafeUnary,
			options: func() []grpc.DialOption {
				return []grpc.DialOption{grpc.WithChainUnaryInterceptor(failsafeUnary())}
			},
		},
	}
}

func gmwOptions() []gmwretry.CallOption {
	return []gmwretry.CallOption{gmwretry.WithMax(maxAttempts), gmwretry.WithCodes(retryCodes...)}
}

func failsafeUnary() grpc.UnaryClientInterceptor {
	policy := failsafegrpc.NewRetryPolicyBuilder[any]().
		WithMaxAttempts(maxAttempts).
		WithBackoffFactor(initialBackoff, maxBackoff, 2).
		WithJitterFactor(0.2).
		ReturnLastFailure().
		Build()
	return failsafegrpc.NewUnaryClientInterceptor[any](policy)
}

func noopUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(ctx, method, req, reply, cc, opts...)
}

func noopStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return streamer(ctx, desc, cc, method, opts...)
}

// gaxRetry is the retry setting generated Google Cloud clients pass to gax.Invoke.
var gaxRetry = gax.WithRetry(func() gax.Retryer {
	return gax.OnCodes(retryCodes, gax.Backoff{Initial: initialBackoff, Max: maxBackoff, Multiplier: 2})
})

func gaxUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return gax.Invoke(ctx, func(ctx context.Context, _ gax.CallSettings) error {
		return invoker(ctx, method, req, reply, cc, opts...)
	}, gaxRetry)
}

func gaxStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	var cs grpc.ClientStream
	err := gax.Invoke(ctx, func(ctx context.Context, _ gax.CallSettings) error {
		var err error
		cs, err = streamer(ctx, desc, cc, method, opts...)
		return err
	}, gaxRetry)
	return cs, err
}

// peersWhere returns the peers for which keep is true, in table order.
func peersWhere(keep func(Peer) bool) []Peer {
	var out []Peer
	for _, p := range Peers() {
		if keep(p) {
			out = append(out, p)
		}
	}
	return out
}
