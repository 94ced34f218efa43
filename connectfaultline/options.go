package connectfaultline

import (
	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/internal/transport"
	"github.com/faultline-go/faultline/retry"
)

// An Option configures the interceptor built by [New] and [ClientOption]. The last option
// for a setting wins; [WithMethodPolicy], [WithIdempotency], [WithIdempotencyKey] and
// [WithResumer] add entries. The options, their defaults and their errors are those of
// package interceptor (the grpc-go transport), with connect-go's procedure names
// ("/pkg.Service/Method", as gRPC names methods) and HTTP headers in place of gRPC metadata.
type Option interface {
	apply(*transport.Config)
}

type optionFunc func(*transport.Config)

func (f optionFunc) apply(c *transport.Config) { f(c) }

// WithClassifier sets the classifier. Default: classify.New() (trusting cwsandbox.com). A nil
// c is the default.
func WithClassifier(c *classify.Classifier) Option {
	return optionFunc(func(cfg *transport.Config) { cfg.Classifier = c })
}

// WithRetrier sets how calls are retried: r's policy for the procedures without a policy of
// their own, r's budget, adaptive throttle and hooks for every call through the interceptor
// (a [WithMethodPolicy] policy shares them, through r.WithPolicy). One Retrier may serve
// several interceptors (and grpc-go connections), which then share its budget and throttle.
// Default: retry.New(retry.DefaultPolicy()): the default policy (5 attempts, the first
// included; backoff 200ms x2 up to 5s with ±20% jitter; RetryInfo honoured up to 30s) and a
// new default budget (20% of the calls of the last 10s, plus 10 retries per second while
// the client is not failing) per Interceptor, no throttle, no hooks. A nil r is the
// default.
func WithRetrier(r *retry.Retrier) Option {
	return optionFunc(func(cfg *transport.Config) { cfg.Retrier = r })
}

// WithMethodPolicy sets the policy of one procedure ("/pkg.Service/Method") or of every
// procedure of a service ("/pkg.Service/"). A procedure's own policy beats its service's,
// which beats the retrier's. New reports an invalid policy (matching retry.ErrInvalidPolicy)
// or name.
func WithMethodPolicy(name string, p retry.Policy) Option {
	return optionFunc(func(cfg *transport.Config) { cfg.SetPolicy(name, p) })
}

// WithAttemptHeader sets the request header that carries N on the N-th retry (N >= 1),
// replacing any value of that header the request already had (a proxy forwarding what it
// received): the first attempt goes out with the caller's headers as they are, and after
// the call the request's header holds the caller's values again. "" turns it off. Default:
// "x-retry-attempt" (the key go-grpc-middleware uses). New rejects a name that is not a
// lower-case gRPC metadata key (a-z, 0-9, '-', '_', '.'), that starts with "grpc-" or
// "connect-" (the protocols' own), that ends with "-bin", or that names a header the
// protocols set themselves (content-type, te, user-agent, content-encoding, ...).
func WithAttemptHeader(name string) Option {
	return optionFunc(func(cfg *transport.Config) { cfg.Header = name })
}

// WithReplayLimit sets the most bytes of sent messages a stream keeps to replay on a retry,
// counted as on the wire (each message's encoded size plus its 5-byte envelope prefix); a
// stream that sends more commits (is no longer retried). Default: 256 KiB. New rejects a
// negative limit.
func WithReplayLimit(bytes int) Option {
	return optionFunc(func(cfg *transport.Config) { cfg.ReplayLimit = bytes })
}

// WithIdempotency says what repeating the calls of one procedure ("/pkg.Service/Method") or
// of every procedure of a service ("/pkg.Service/") does; it beats every other source. A
// procedure's own entry beats its service's. Without it, a call's level is, first match
// wins: [retry.Idempotent] when its request carries an idempotency key (see
// [WithIdempotencyKey]); the level the generated client declares (connect.Spec's
// IdempotencyLevel, from the method's idempotency_level option) or the idempotency_level of
// the method's descriptor registered in protoregistry.GlobalFiles; the built-in table of the
// sandbox API (reads NoSideEffects; Create* not idempotent without a request id; Exec and
// StreamExec NeverRetry; ...); else [WithDefaultIdempotency]. New reports a malformed name or
// a value that is not a level.
//
// Exec and StreamExec run the user's command, so the built-in table never repeats them, not
// even after a failure the server declined. WithIdempotency(procedure, retry.NotIdempotent)
// for one of them lets the server's word count: a failure with RetryInfo or a trusted
// transient reason (the server declined the work) is retried by policy, one that may have run
// the command (a reset, a bare UNAVAILABLE) still is not. Only an entry of the procedure's
// own changes them: a service-wide entry does not reach them, so declaring a whole service
// idempotent cannot make a command run twice.
func WithIdempotency(name string, l retry.Idempotency) Option {
	return optionFunc(func(cfg *transport.Config) { cfg.SetLevel(name, l) })
}

// WithDefaultIdempotency sets the level of the procedures nothing else describes. Default:
// retry.IdempotencyUnknown, which retries a failure that may have reached the server (unless
// the response had begun to arrive), as gRPC's service-config retries do; retry.NotIdempotent
// retries such procedures only when the server declined the work (RetryInfo or a trusted
// transient reason).
func WithDefaultIdempotency(l retry.Idempotency) Option {
	return optionFunc(func(cfg *transport.Config) { cfg.DefaultLevel = l })
}

// WithIdempotencyKey names the string field of a unary procedure's request that carries an
// idempotency key (AIP-155): when a call of procedure ("/pkg.Service/Method") would be
// retried and the field is empty, the interceptor sends a copy of the request with a fresh
// UUIDv4 in it, the same copy on every attempt, and the call counts as idempotent; the
// caller's message is never modified (connect.Request's Msg points at the copy while the
// call runs, and at the caller's message again when it returns) and a key the caller set is
// never changed. field "" removes the procedure's key, built-in ones included. Built in:
// request_id of the sandbox API's CreateSandbox, CreateSandboxFromTemplate,
// CreateFileSystemSnapshot, and of DeleteSandbox when snapshot_volumes is set. A request
// without such a field is sent as it is. The copy costs one proto.Clone per call of those
// procedures. New reports a key for a procedure that is never repeated, or whose registered
// request has no such string field.
func WithIdempotencyKey(procedure, field string) Option {
	return optionFunc(func(cfg *transport.Config) { cfg.SetKey(procedure, field) })
}

// WithoutIdempotencyKeys turns off setting idempotency keys: requests are sent as the caller
// made them, and a procedure that needs a key and has none is not idempotent. Default: on.
func WithoutIdempotencyKeys() Option {
	return optionFunc(func(cfg *transport.Config) { cfg.KeysOff = true })
}

// rules is what connect-go adds to the checks of the shared options: the Connect protocol's
// own headers ("connect-") are not attempt headers either.
var rules = transport.Rules{Reserved: []string{"connect-"}, StreamLogs: ResumeStreamLogs}
