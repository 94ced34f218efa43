package bench

import (
	"google.golang.org/grpc"

	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/retry"
)

// Kind says which client setup a [Contender] is, so that tests and reports can find the
// one a target is about (the targets of overload.md are for faultline's defaults, the
// goodput target is relative to the client that never retries).
type Kind uint8

const (
	// KindDefault is faultline as installed by interceptor.DialOptions().
	KindDefault Kind = iota + 1
	// KindThrottled is faultline with adaptive throttling on (overload.md rule 4).
	KindThrottled
	// KindNoBudget is faultline with its retry budget turned off.
	KindNoBudget
	// KindGRPC is grpc-go's own retries with retryThrottling (gRFC A6).
	KindGRPC
	// KindNoRetry is a plain grpc-go client that never retries.
	KindNoRetry
)

// A Contender is one client setup of the virtual-time scenarios (fleet, restart, tails).
// Options returns new dial options for one client connection; it is called once per
// connection, so that per-client state (a retry budget, a token bucket) is never shared
// between the clients of a fleet.
type Contender struct {
	Name    string // row label in the report
	Kind    Kind
	Setup   string // the settings, as the report lists them
	Options func() []grpc.DialOption
}

// Contenders returns the contenders of the virtual-time scenarios, in report order.
func Contenders() []Contender {
	return []Contender{
		faultlineDefault,
		faultlineThrottled,
		faultlineNoBudget,
		grpcRetryThrottling,
		noRetry,
	}
}

var (
	faultlineDefault = Contender{
		Name: "faultline", Kind: KindDefault,
		Setup:   "interceptor.DialOptions(): default policy (5 attempts, 200ms..5s x2, jitter 0.2, RetryInfo honoured +0..10%), default budget (20% + 10/s over 10 s)",
		Options: func() []grpc.DialOption { return interceptor.DialOptions() },
	}
	faultlineThrottled = Contender{
		Name: "faultline, throttling", Kind: KindThrottled,
		Setup: "interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithThrottle(retry.DefaultThrottle())))): the default budget, and " +
			"adaptive client-side throttling with K = 2 over a 1 s window",
		Options: func() []grpc.DialOption {
			return interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithThrottle(retry.DefaultThrottle()))))
		},
	}
	faultlineNoBudget = Contender{
		Name: "faultline, no budget", Kind: KindNoBudget,
		Setup: "interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithBudget(nil))))",
		Options: func() []grpc.DialOption {
			return interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithBudget(nil))))
		},
	}
	grpcRetryThrottling = Contender{
		Name: "grpc-go retryThrottling", Kind: KindGRPC,
		Setup: "grpc-go's own retries: service config retryPolicy maxAttempts 5, initialBackoff 0.2s, maxBackoff 5s, " +
			"backoffMultiplier 2, UNAVAILABLE/RESOURCE_EXHAUSTED, and retryThrottling maxTokens 10, tokenRatio 0.1 (gRFC A6)",
		Options: func() []grpc.DialOption { return []grpc.DialOption{grpc.WithDefaultServiceConfig(serviceConfig(true))} },
	}
	noRetry = Contender{
		Name: "no retries", Kind: KindNoRetry,
		Setup:   "plain grpc-go client with grpc.WithDisableRetry()",
		Options: func() []grpc.DialOption { return []grpc.DialOption{grpc.WithDisableRetry()} },
	}
)
