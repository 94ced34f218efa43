package interceptor

import (
	"errors"
	"fmt"
	"time"

	"github.com/faultline-go/faultline/internal/serviceconfig"
	"github.com/faultline-go/faultline/internal/transport"
	"github.com/faultline-go/faultline/retry"
)

// ErrInvalidServiceConfig is matched (errors.Is) by the error of [New] for a service config
// given to [WithServiceConfig] that grpc-go would reject, or that holds a hedgingPolicy. The
// error's text names the field: "interceptor: invalid service config:
// methodConfig[2].retryPolicy.initialBackoff: got "1", want a duration string like "1.5s"
// (no "s" at the end)".
var ErrInvalidServiceConfig = errors.New("interceptor: invalid service config")

// grpcJitter is the jitter of grpc-go's retries: v1.85.0 multiplies each backoff by a
// random factor in [0.8, 1.2) (stream.go, csAttempt.shouldRetry), as gRFC A6 now says.
const grpcJitter = 0.2

// maxImportedBackoff is the longest backoff a retry.Policy takes (Policy.Validate).
const maxImportedBackoff = 24 * time.Hour

// WithServiceConfig imports the retry settings of a gRPC service config: the JSON string a
// client gives grpc.WithDefaultServiceConfig, with gRFC A6's methodConfig[].retryPolicy and
// retryThrottling. A client that configures grpc-go's retries that way migrates in one line,
// giving the same string to both:
//
//	conn, err := grpc.NewClient(target, append(interceptor.DialOptions(interceptor.WithServiceConfig(sc)),
//		grpc.WithDefaultServiceConfig(sc), grpc.WithTransportCredentials(creds))...)
//
// grpc-go keeps applying what is its own (load balancing, health checking, waitForReady,
// message size limits, timeouts), faultline takes the retry parts, and [DialOptions] turns
// grpc-go's own retries off so that attempts do not multiply. A service config that the
// resolver delivers (DNS TXT records, xDS) never reaches an interceptor: only the string
// given here is imported. When the resolver delivers one, grpc-go applies it instead of its
// default (its timeouts, its load balancing) while faultline keeps retrying by the imported
// string.
//
// Names match as in gRPC: {"service", "method"} names one method, {"service"} every method
// of a service, {} (or an empty service) the default; a call takes its method's entry, else
// its service's, else the default. A name whose methodConfig has no retryPolicy is not
// retried. A method that no name matches is not retried either, as in grpc-go, unless
// [WithRetrier] gives a retrier, whose policy then applies to such methods. The imported
// names join [WithMethodPolicy]'s table: a name given both ways takes WithMethodPolicy's
// policy, and a more specific name still wins over a less specific one whichever way each
// was given (an imported {service, method} beats WithMethodPolicy("/pkg.Service/", p)). The
// imported policies share the retrier's budget, throttle and hooks: WithRetrier's, when it
// is given (its budget replaces the imported retryThrottling, whatever the order of the
// options), else one built with the imported retryThrottling as its budget.
//
// Each retryPolicy becomes retry.DefaultPolicy() with MaxAttempts = maxAttempts (capped at
// 5, as grpc-go caps it by default; grpc.WithMaxCallAttempts, which raises grpc-go's cap, is
// a dial option an interceptor cannot see), InitialBackoff, MaxBackoff and Multiplier =
// initialBackoff, maxBackoff and backoffMultiplier (backoffs above 24h are taken as 24h; an
// initialBackoff above maxBackoff as maxBackoff, which gives grpc-go's waits when
// backoffMultiplier >= 1), Jitter = 0.2 (grpc-go multiplies each backoff by U(0.8, 1.2), as
// gRFC A6 says since it was revised; its first text said U(0, backoff)), and RetryCodes =
// retryableStatusCodes with RetryOn and TransientCodes empty: the listed codes are retried
// whatever the failure's kind, and the kinds are what the classifier says. retryThrottling
// becomes the budget, retry.NewTokenBucket(maxTokens, tokenRatio), kept to three decimal
// places as gRFC A6 says (a tokenRatio above 1 counts as 1, the most NewTokenBucket takes),
// one per Set: per connection with DialOptions, as grpc-go keeps one per channel.
// Without retryThrottling, faultline's default budget still applies (20% of the calls of the
// last 10 s plus 10 retries per second while the client is not failing); a WithRetrier
// built with retry.WithBudget(nil) turns it off, as in grpc-go.
//
// What faultline adds, and so where it differs from grpc-go on purpose:
//   - A method that must not be repeated is not, whatever the config lists: Exec and
//     StreamExec never; a method that is not idempotent (WithIdempotency, the built-in table)
//     not after a failure that may have reached the server; a failure the client made and
//     would make again (a message over a size limit) never.
//   - A RESOURCE_EXHAUSTED without RetryInfo or a trusted transient reason is a quota and is
//     not retried, even when listed.
//   - A positive RetryInfo is the wait (plus up to 10%), instead of the backoff; a hint above
//     30 s stops at once. The grpc-retry-pushback-ms trailer is not read.
//   - A wait that would end at or after the caller's deadline is not started: the last error
//     returns at once, where grpc-go sleeps into DEADLINE_EXCEEDED.
//   - grpc-go applies a methodConfig's timeout to each call it is given, which under the
//     interceptor is each attempt: the timeout bounds every attempt, not the whole call as in
//     grpc-go's own retries. Put a deadline on the call's context to bound it all.
//   - An empty request_id of the sandbox API's creates is filled once per call (the same on
//     every attempt), and a server stream with a resumer (StreamLogs) is resumed after it
//     delivered messages, where grpc-go's retries stop at the first message.
//   - Retries carry x-retry-attempt (see [WithAttemptHeader]), not grpc-previous-rpc-attempts.
//   - Errors are typed (*errs.Error, *retry.Error) with the status unchanged.
//   - A unary call that fails after its response headers arrived is retried by these rules;
//     grpc-go never retries it (gRFC A6 commits a call at its response headers).
//
// The last WithServiceConfig wins. New parses json and fails, with an error matching
// [ErrInvalidServiceConfig] that names the field, where grpc-go would reject it: invalid
// JSON, a duration that is not a protobuf JSON duration string ("1.5s"), maxAttempts below
// 2, a backoff or backoffMultiplier that is not positive, empty retryableStatusCodes, a name
// with a method but no service or named twice, a retryThrottling out of range, a field of
// the wrong JSON type. It also fails on a hedgingPolicy, which grpc-go ignores and faultline
// does not implement: a policy is never dropped silently. Parts grpc-go ignores (unknown
// keys, a methodConfig without a name) are ignored.
func WithServiceConfig(json string) Option {
	return optionFunc(func(cfg *config) { cfg.serviceConfig = &json })
}

// importServiceConfig parses the config's service config, if any; sets the retrier (unless
// WithRetrier was given) to one of one attempt with the imported retryThrottling as its
// budget, and returns the policies of the imported names that no WithMethodPolicy names, ""
// for the default name.
func (cfg *config) importServiceConfig() (map[string]retry.Policy, error) {
	if cfg.serviceConfig == nil {
		return nil, nil
	}
	sc, err := serviceconfig.Parse(*cfg.serviceConfig)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidServiceConfig, err)
	}
	imported := make(map[string]retry.Policy, len(sc.Methods))
	for name, m := range sc.Methods {
		if _, explicit := cfg.Methods[name]; !explicit {
			imported[name] = importedPolicy(m.Retry) // "" for the default name
		}
	}
	if cfg.Retrier != nil {
		return imported, nil
	}
	var opts []retry.Option
	if t := sc.Throttling; t != nil {
		b, err := retry.NewTokenBucket(t.MaxTokens, min(t.TokenRatio, 1))
		if err != nil { // not reached: Parse checked the ranges
			return nil, fmt.Errorf("%w: retryThrottling: %w", ErrInvalidServiceConfig, err)
		}
		opts = append(opts, retry.WithBudget(b))
	}
	// grpc-go retries no method that no name matches.
	if cfg.Retrier, err = retry.New(oneAttempt(), opts...); err != nil { // not reached: a valid policy
		return nil, fmt.Errorf("%w: %w", ErrInvalidServiceConfig, err)
	}
	return imported, nil
}

// importedPolicy maps a retryPolicy onto a retry.Policy (see WithServiceConfig); a nil one
// means no retry.
func importedPolicy(rp *serviceconfig.RetryPolicy) retry.Policy {
	if rp == nil {
		return oneAttempt()
	}
	p := retry.DefaultPolicy()
	p.MaxAttempts = rp.MaxAttempts
	p.MaxBackoff = min(rp.MaxBackoff, maxImportedBackoff)
	p.InitialBackoff = min(rp.InitialBackoff, p.MaxBackoff)
	p.Multiplier = rp.BackoffMultiplier
	p.Jitter = grpcJitter
	p.RetryOn, p.TransientCodes = 0, 0
	p.RetryCodes = retry.Codes(rp.RetryableStatusCodes...)
	return p
}

// addImported adds the routes of the imported names, which may be any name gRPC matches
// (a service or method containing "/" included; "" is the default name, whose policy is the
// default route's), sharing def's budget, throttle and hooks.
func (s *Set) addImported(def *retry.Retrier, imported map[string]retry.Policy) error {
	for name, p := range imported {
		r, err := def.WithPolicy(p)
		if err != nil { // not reached: importedPolicy makes valid policies
			return fmt.Errorf("%w: policy for %s: %w", ErrInvalidServiceConfig, name, err)
		}
		switch {
		case name == "":
			s.b.Def = transport.NewRoute(r)
		case s.b.Methods == nil:
			s.b.Methods = map[string]*transport.Route{name: transport.NewRoute(r)}
		default:
			s.b.Methods[name] = transport.NewRoute(r)
		}
	}
	return nil
}

// oneAttempt is the policy of no retry: the default policy's, with one attempt.
func oneAttempt() retry.Policy {
	p := retry.DefaultPolicy()
	p.MaxAttempts = 1
	return p
}
