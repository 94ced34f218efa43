package interceptor

import (
	"google.golang.org/grpc"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/transport"
	"github.com/faultline-go/faultline/retry"
)

// An Option configures the interceptors built by [New], [Unary], [Stream] and
// [DialOptions]. The last option for a setting wins; [WithMethodPolicy] adds entries.
type Option interface {
	apply(*config)
}

// config is what the options set: the transports' shared configuration, and the service
// config to import.
type config struct {
	transport.Config // Retrier nil: retry.New(retry.DefaultPolicy()), or the imported default

	serviceConfig *string // WithServiceConfig's JSON; nil: none
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithClassifier sets the classifier. Default: classify.New() (trusting cwsandbox.com).
func WithClassifier(c *classify.Classifier) Option {
	return optionFunc(func(cfg *config) { cfg.Classifier = c })
}

// WithRetrier sets how calls are retried: r's policy for the methods without a policy of
// their own, r's budget, adaptive throttle and hooks for every call through the
// interceptors (a [WithMethodPolicy] policy shares them, through r.WithPolicy). One Retrier
// may serve several connections, which then share its budget and throttle. Default:
// retry.New(retry.DefaultPolicy()): the default policy and a new default budget (20% of the
// calls of the last 10 s, plus 10 retries per second while the client is not failing) per
// Set, no throttle, no hooks; with [WithServiceConfig], the imported default and
// retryThrottling. A nil r is the default.
func WithRetrier(r *retry.Retrier) Option {
	return optionFunc(func(cfg *config) { cfg.Retrier = r })
}

// WithMethodPolicy sets the policy of one method ("/pkg.Service/Method") or of every method
// of a service ("/pkg.Service/"). A method's own policy beats its service's, which beats the
// default. New reports an invalid policy or name.
func WithMethodPolicy(name string, p retry.Policy) Option {
	return optionFunc(func(cfg *config) { cfg.SetPolicy(name, p) })
}

// WithAttemptHeader sets the outgoing metadata key that carries N on the N-th retry,
// replacing any value of that key in the caller's outgoing metadata (the first attempt goes
// out with the caller's metadata as it is); "" turns it off. Default: "x-retry-attempt" (the
// key go-grpc-middleware uses). New rejects a key that is not a lower-case metadata key
// (a-z, 0-9, '-', '_', '.'), that starts with "grpc-" (gRPC's own), that ends with "-bin"
// (binary values), or that names a header the protocol sets itself (content-type, te,
// user-agent, content-encoding, ...).
func WithAttemptHeader(key string) Option {
	return optionFunc(func(cfg *config) { cfg.Header = key })
}

// WithReplayLimit sets the most bytes of sent messages a stream keeps to replay on a retry;
// a stream that sends more commits (is no longer retried). Default: 256 KiB.
func WithReplayLimit(bytes int) Option {
	return optionFunc(func(cfg *config) { cfg.ReplayLimit = bytes })
}

// callOption is a grpc.CallOption read only by these interceptors; grpc-go ignores it. It
// is used by pointer, so passing it costs no allocation beyond its creation.
type callOption struct {
	grpc.EmptyCallOption
	policy    retry.Policy // another policy for this call, when hasPolicy
	hasPolicy bool
	noRetry   bool
	res       *errs.Resource
}

// WithCallPolicy makes one call use p instead of its method's policy, sharing the
// interceptors' budget and hooks. An invalid p fails the call, before anything is sent, with
// code INVALID_ARGUMENT and an error matching retry.ErrInvalidPolicy (check p with
// retry.Policy.Validate beforehand). Creating the option costs one allocation; using it,
// none once the interceptors have seen the policy. Without the interceptors installed it
// does nothing.
func WithCallPolicy(p retry.Policy) grpc.CallOption {
	return &callOption{policy: p, hasPolicy: true}
}

// WithoutRetry makes one call a single attempt; its error is still classified (an
// *errs.Error, not a *retry.Error), the retrier's hooks hear of its failure, and its
// throttle may shed it. It costs no allocation. Without the interceptors installed it does
// nothing.
func WithoutRetry() grpc.CallOption { return noRetryOption }

var noRetryOption grpc.CallOption = &callOption{noRetry: true}

// WithResource sets what the call is about for classification: the non-empty fields of r
// override what is read from the request message (sandbox_id, path,
// file_system_snapshot_id, runner_id, profile_name); r.Operation is ignored (the method's
// name is the operation). It costs one allocation. Without the interceptors installed it
// does nothing.
func WithResource(r errs.Resource) grpc.CallOption {
	return &callOption{res: &r}
}

// WithIdempotency says what repeating the calls of one method ("/pkg.Service/Method") or of
// every method of a service ("/pkg.Service/") does; it beats every other source. A method's
// own entry beats its service's. Without it, a call's level is, first
// match wins: [retry.Idempotent] when its request carries an idempotency key (see
// [WithIdempotencyKey]); the idempotency_level of the method's descriptor registered in
// protoregistry.GlobalFiles by generated code; the built-in table of the sandbox API (reads
// NoSideEffects; Create* not idempotent without a request id; Exec and StreamExec
// NeverRetry; ...); else [WithDefaultIdempotency]. New reports a malformed name.
//
// Exec and StreamExec run the user's command, so the built-in table never repeats them, not
// even after a failure the server declined. WithIdempotency(method, retry.NotIdempotent) for
// one of them lets the server's word count: a failure with RetryInfo or a trusted transient
// reason (the server declined the work) is retried by policy, one that may have run the
// command (a bare UNAVAILABLE) still is not. Only an entry of the method's own changes
// them: a service-wide entry does not reach them, so declaring a whole service idempotent
// cannot make a command run twice.
func WithIdempotency(name string, l retry.Idempotency) Option {
	return optionFunc(func(cfg *config) { cfg.SetLevel(name, l) })
}

// WithDefaultIdempotency sets the level of the methods nothing else describes. Default:
// retry.IdempotencyUnknown, which retries a failure that may have reached the server, as
// gRPC's service-config retries do; retry.NotIdempotent retries such methods only when the
// server declined the work (RetryInfo or a trusted transient reason).
func WithDefaultIdempotency(l retry.Idempotency) Option {
	return optionFunc(func(cfg *config) { cfg.DefaultLevel = l })
}

// WithIdempotencyKey names the string field of a unary method's request that carries an
// idempotency key (AIP-155): when a call of method ("/pkg.Service/Method") would be retried
// and the field is empty, the interceptor sends a copy of the request with a fresh UUIDv4 in
// it, the same copy on every attempt, and the call counts as idempotent; the caller's
// message is never modified and a key the caller set is never changed. field "" removes the
// method's key, built-in ones included. Built in: request_id of the sandbox API's
// CreateSandbox, CreateSandboxFromTemplate, CreateFileSystemSnapshot, and of DeleteSandbox
// when snapshot_volumes is set. A request without such a field is sent as it is. The copy
// costs one proto.Clone per call of those methods.
func WithIdempotencyKey(method, field string) Option {
	return optionFunc(func(cfg *config) { cfg.SetKey(method, field) })
}

// WithoutIdempotencyKeys turns off setting idempotency keys: requests are sent as the caller
// made them, and a method that needs a key and has none is not idempotent. Default: on.
func WithoutIdempotencyKeys() Option {
	return optionFunc(func(cfg *config) { cfg.KeysOff = true })
}
