// Package transport is what a transport (package interceptor for grpc-go, connectfaultline
// for connect-go) is configured with, in one place for both: the options they share and
// their defaults ([Config]), the checks that turn them into what a call reads ([Build],
// [Base]), the route of a method ([Route]), and the errors every transport reports alike.
// Each transport keeps its public Option type and With functions, which set a Config, and
// what only it knows (grpc-go's service config and per-call policies, connect-go's header
// canonical form and declared levels).
package transport

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/calls"
	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/retry"
)

// Defaults of the attempt header and the replay limit, the same for every transport.
const (
	DefaultHeader      = "x-retry-attempt" // the key go-grpc-middleware uses
	DefaultReplayLimit = 256 << 10
)

// Config is what a transport's options set. Names are full method names
// ("/pkg.Service/Method") or services ("/pkg.Service/"). Start from [NewConfig].
type Config struct {
	Classifier  *classify.Classifier    // nil: classify.New()
	Retrier     *retry.Retrier          // nil: retry.New(retry.DefaultPolicy())
	Methods     map[string]retry.Policy // method policies, sharing Retrier's budget
	Header      string                  // the attempt header; "" for none
	ReplayLimit int                     // bytes of sent messages a stream keeps to replay

	Levels       map[string]retry.Idempotency // configured levels
	DefaultLevel retry.Idempotency            // the level of methods nothing describes
	Keys         map[string]string            // method -> key field; "" removes a built-in key
	KeysOff      bool                         // no idempotency key is ever set
	Resumers     map[string]calls.Resumer     // nil removes a built-in resumer
}

// NewConfig returns the configuration of a transport given no options.
func NewConfig() Config {
	return Config{Header: DefaultHeader, ReplayLimit: DefaultReplayLimit}
}

// SetPolicy sets the policy of a method or service.
func (c *Config) SetPolicy(name string, p retry.Policy) { put(&c.Methods, name, p) }

// SetLevel sets the idempotency level of a method or service.
func (c *Config) SetLevel(name string, l retry.Idempotency) { put(&c.Levels, name, l) }

// SetKey sets the idempotency key field of a method; "" removes its key.
func (c *Config) SetKey(method, field string) { put(&c.Keys, method, field) }

// SetResumer sets the resumer of a method; nil removes its resumer.
func (c *Config) SetResumer(method string, r calls.Resumer) { put(&c.Resumers, method, r) }

func put[V any](m *map[string]V, k string, v V) {
	if *m == nil {
		*m = map[string]V{}
	}
	(*m)[k] = v
}

// Rules is what a transport adds to the checks of [Build].
type Rules struct {
	// Reserved lists the header prefixes of the transport's own protocols, besides gRPC's
	// "grpc-", which the attempt header must not start with.
	Reserved []string
	// StreamLogs is the transport's ResumeStreamLogs: Build checks the registered
	// descriptor of each method it is given for.
	StreamLogs calls.Resumer
}

// isStreamLogs reports whether f is the transport's ResumeStreamLogs.
func (r Rules) isStreamLogs(f calls.Resumer) bool {
	return f != nil && r.StreamLogs != nil && reflect.ValueOf(f).Pointer() == reflect.ValueOf(r.StreamLogs).Pointer()
}

// Base is what a transport built from a [Config] reads on every call. It never changes
// after Build (but for what the transport itself adds before its first call), so it is
// safe for concurrent use.
type Base struct {
	Classifier  *classify.Classifier
	Retrier     *retry.Retrier
	Def         *Route            // the route of methods without a policy of their own
	Once        *Route            // one attempt, with the retrier's budget, throttle and hooks: a call not to be retried
	Methods     map[string]*Route // exact methods and "/pkg.Service/" prefixes; nil for none
	Header      string
	ReplayLimit int
	Calls       *calls.Methods // what a call of a method does: its level, its key, its resumer
}

// Build checks c and returns the Base it describes, with the defaults in place of what c
// leaves unset. Its errors, which the transport prefixes with its package name: an attempt
// header that is not a lower-case metadata key or that starts with a reserved prefix, a
// negative replay limit, an idempotency, key or resumer entry that cannot work (package
// calls' errors), a method policy name not of the form "/pkg.Service/" or
// "/pkg.Service/Method", an invalid method policy (matching retry.ErrInvalidPolicy).
func Build(c Config, r Rules) (Base, error) {
	b := Base{Classifier: c.Classifier, Header: c.Header, ReplayLimit: c.ReplayLimit}
	if b.Classifier == nil {
		b.Classifier = classify.New()
	}
	if !ValidHeader(c.Header, r.Reserved...) {
		return Base{}, fmt.Errorf("attempt header %q is not a lower-case metadata key (a-z, 0-9, -, _, .; not %s or -bin)",
			c.Header, strings.Join(append([]string{"grpc-"}, r.Reserved...), ", "))
	}
	if c.ReplayLimit < 0 {
		return Base{}, fmt.Errorf("replay limit is %d bytes, want >= 0", c.ReplayLimit)
	}
	var err error
	b.Calls, err = calls.New(calls.Config{Levels: c.Levels, Default: c.DefaultLevel, Keys: c.Keys,
		KeysOff: c.KeysOff, Resumers: c.Resumers, StreamLogs: r.isStreamLogs})
	if err != nil {
		return Base{}, err
	}
	if err := b.setRoutes(c); err != nil {
		return Base{}, err
	}
	return b, nil
}

// setRoutes sets the retrier and the routes of the default and method policies.
func (b *Base) setRoutes(c Config) error {
	r := c.Retrier
	if r == nil {
		var err error
		if r, err = retry.New(retry.DefaultPolicy()); err != nil {
			return fmt.Errorf("default policy: %w", err) // not reached: a valid policy
		}
	}
	b.Retrier, b.Def = r, NewRoute(r)
	once := retry.DefaultPolicy()
	once.MaxAttempts = 1
	or, err := r.WithPolicy(once)
	if err != nil {
		return fmt.Errorf("one-attempt policy: %w", err) // not reached: a valid policy
	}
	b.Once = NewRoute(or)
	for name, p := range c.Methods {
		if !calls.ValidName(name) {
			return fmt.Errorf("method policy name %q: want \"/pkg.Service/\" or \"/pkg.Service/Method\"", name)
		}
		mr, err := r.WithPolicy(p)
		if err != nil {
			return fmt.Errorf("policy for %s: %w", name, err)
		}
		put(&b.Methods, name, NewRoute(mr))
	}
	return nil
}

// Route returns the route of method: its own policy's, else its service's, else the
// default. Without method policies it costs no lookup.
func (b *Base) Route(method string) *Route {
	if b.Methods == nil {
		return b.Def
	}
	return b.lookup(method)
}

// lookup is Route's map lookup. It is never inlined, so that Route is: a call of a method
// without a policy of its own then costs a nil check, as when the transports had it inline.
//
//go:noinline
func (b *Base) lookup(method string) *Route {
	if rt, ok := calls.Lookup(b.Methods, method); ok {
		return rt
	}
	return b.Def
}

// Route is how the calls of a method, or of a per-call policy, are retried.
type Route struct {
	Engine  engine.Route
	Retries bool          // the policy makes more than one attempt
	Bare    bool          // one attempt, and nothing to report to: the engine may be skipped
	Timeout time.Duration // the policy's PerAttemptTimeout
}

// NewRoute returns the route of r's policy.
func NewRoute(r *retry.Retrier) *Route {
	e := engine.RouteOf(r)
	retries := e.Retries()
	return &Route{Engine: e, Retries: retries, Bare: !retries && !e.Observed(), Timeout: e.AttemptTimeout()}
}

// Single returns the error a call of one attempt returns: the last attempt's error, that
// the engine's final error wraps (a call that was not retried returns its classified error
// itself, not a *retry.Error of one attempt).
func Single(final error) error {
	if re, ok := final.(*retry.Error); ok {
		return re.Unwrap()[0]
	}
	return final
}

// ValidHeader reports whether key may carry the attempt number: "" (off), or a lower-case
// gRPC metadata key (a-z, 0-9, '-', '_', '.') that does not end with "-bin" (binary
// metadata) nor start with "grpc-" or one of the reserved prefixes (the protocols' own).
func ValidHeader(key string, reserved ...string) bool {
	if key == "" {
		return true
	}
	if strings.HasPrefix(key, "grpc-") || strings.HasSuffix(key, "-bin") || protocolHeaders[key] {
		return false
	}
	for _, p := range reserved {
		if strings.HasPrefix(key, p) {
			return false
		}
	}
	return lowerKey(key)
}

// protocolHeaders are the HTTP headers gRPC and Connect set themselves, or HTTP/2 forbids:
// an attempt header under one of these names would be dropped by the transport or break
// the call.
var protocolHeaders = map[string]bool{
	"content-type": true, "content-encoding": true, "content-length": true, "accept-encoding": true,
	"te": true, "user-agent": true, "host": true, "connection": true, "transfer-encoding": true,
	"upgrade": true, "keep-alive": true, "proxy-connection": true,
}

// lowerKey reports whether key has only the characters of a lower-case metadata key.
func lowerKey(key string) bool {
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// Nested reports whether err is already the final error of a faultline retry loop further
// down the chain: a transport returns it as it is (classified, if it holds no *errs.Error),
// never retried again.
func Nested(err error) bool {
	_, ok := errors.AsType[*retry.Error](err)
	return ok
}

// HoldsClassified reports whether err holds an *errs.Error.
func HoldsClassified(err error) bool {
	_, ok := errors.AsType[*errs.Error](err)
	return ok
}

// ConfigError is the error of every call through a transport built from invalid options:
// its status is INVALID_ARGUMENT and it unwraps to Err, the error of the transport's New.
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string {
	return "faultline: invalid interceptor options: " + e.Err.Error()
}

// Unwrap returns New's error.
func (e *ConfigError) Unwrap() error { return e.Err }

// GRPCStatus returns the error's status: INVALID_ARGUMENT with the error's text.
func (e *ConfigError) GRPCStatus() *status.Status {
	return status.New(codes.InvalidArgument, e.Error())
}
