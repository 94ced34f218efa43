package interceptor

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/internal/calls"
	"github.com/faultline-go/faultline/retry"
)

// Set is one configured pair of interceptors: classification and retries sharing one
// classifier and one retrier (its budget, throttle and hooks). Build it with [New]. Its
// configuration never changes after New, and it is safe for concurrent use.
type Set struct {
	classifier  *classify.Classifier
	retrier     *retry.Retrier
	def         *route
	methods     map[string]*route // exact methods and "/svc/" prefixes
	header      string
	replayLimit int

	calls *calls.Methods // what a call of a method does: its level, its key, its resumer

	mu      sync.RWMutex
	perCall map[retry.Policy]*route // routes for WithCallPolicy, by policy
}

// New validates opts and returns the interceptors they describe. Errors: an invalid policy
// (matching retry.ErrInvalidPolicy), a method policy name not of the form "/pkg.Service/" or
// "/pkg.Service/Method", an invalid attempt header key, a negative replay limit, an
// idempotency or key entry that cannot work, a resumer that cannot work for its method's
// registered descriptor (see [WithResumer]), a service config that [WithServiceConfig]
// cannot import (matching [ErrInvalidServiceConfig]).
func New(opts ...Option) (*Set, error) {
	cfg := config{header: defaultAttemptHeader, replayLimit: defaultReplayLimit}
	for _, o := range opts {
		if o != nil { // a nil Option sets nothing
			o.apply(&cfg)
		}
	}
	imported, err := cfg.importServiceConfig()
	if err != nil {
		return nil, err
	}
	if cfg.classifier == nil {
		cfg.classifier = classify.New()
	}
	if !validHeader(cfg.header) {
		return nil, fmt.Errorf("interceptor: attempt header %q is not a valid metadata key (lower case, not grpc-, not -bin)", cfg.header)
	}
	if cfg.replayLimit < 0 {
		return nil, fmt.Errorf("interceptor: replay limit is %d bytes, want >= 0", cfg.replayLimit)
	}
	s := &Set{classifier: cfg.classifier, header: cfg.header, replayLimit: cfg.replayLimit}
	resumers := make(map[string]calls.Resumer, len(cfg.resumers))
	for method, r := range cfg.resumers {
		resumers[method] = nil
		if r != nil {
			resumers[method] = r
		}
	}
	s.calls, err = calls.New(calls.Config{Levels: cfg.levels, Default: cfg.defaultLevel, Keys: cfg.keys,
		KeysOff: cfg.keysOff, Resumers: resumers, StreamLogs: isStreamLogs})
	if err != nil {
		return nil, fmt.Errorf("interceptor: %w", err)
	}
	if err := s.setRoutes(cfg); err != nil {
		return nil, err
	}
	if err := s.addImported(s.retrier, imported); err != nil {
		return nil, err
	}
	return s, nil
}

// setRoutes sets the retrier and the routes of the default and method policies.
func (s *Set) setRoutes(cfg config) error {
	r := cfg.retrier
	if r == nil {
		var err error
		if r, err = retry.New(retry.DefaultPolicy()); err != nil {
			return fmt.Errorf("interceptor: default policy: %w", err) // not reached: a valid policy
		}
	}
	s.retrier, s.def = r, newRoute(r)
	for name, p := range cfg.methods {
		if !calls.ValidName(name) {
			return fmt.Errorf("interceptor: method policy name %q: want \"/pkg.Service/\" or \"/pkg.Service/Method\"", name)
		}
		mr, err := r.WithPolicy(p)
		if err != nil {
			return fmt.Errorf("interceptor: policy for %s: %w", name, err)
		}
		if s.methods == nil {
			s.methods = map[string]*route{}
		}
		s.methods[name] = newRoute(mr)
	}
	return nil
}

// Unary returns a unary client interceptor that classifies every failure and retries by
// policy: [Set.Unary] of New(opts...). If New would return an error, every call through the
// interceptor fails with that error (code INVALID_ARGUMENT; errors.Is finds New's error,
// retry.ErrInvalidPolicy for a bad policy): it never panics. Call New to learn of a bad
// configuration at start-up.
func Unary(opts ...Option) grpc.UnaryClientInterceptor {
	s, err := New(opts...)
	if err != nil {
		return func(context.Context, string, any, any, *grpc.ClientConn, grpc.UnaryInvoker, ...grpc.CallOption) error {
			return &configError{err}
		}
	}
	return s.Unary()
}

// Stream returns a stream client interceptor that classifies every failure and retries
// streams until they commit: [Set.Stream] of New(opts...). If New would return an error,
// every stream fails to open with that error, as [Unary] says.
func Stream(opts ...Option) grpc.StreamClientInterceptor {
	s, err := New(opts...)
	if err != nil {
		return func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, grpc.Streamer, ...grpc.CallOption) (grpc.ClientStream, error) {
			return nil, &configError{err}
		}
	}
	return s.Stream()
}

// DialOptions returns [Set.DialOptions] of New(opts...): both interceptors, sharing one
// budget, and grpc.WithDisableRetry. If New would return an error, every call and stream on
// the connection fails with it, as [Unary] says.
func DialOptions(opts ...Option) []grpc.DialOption {
	s, err := New(opts...)
	if err != nil {
		return []grpc.DialOption{
			grpc.WithChainUnaryInterceptor(Unary(opts...)),
			grpc.WithChainStreamInterceptor(Stream(opts...)),
			grpc.WithDisableRetry(),
		}
	}
	return s.DialOptions()
}

// configError is the error of every call through interceptors built from invalid options:
// its status is INVALID_ARGUMENT and it unwraps to New's error.
type configError struct{ err error }

func (e *configError) Error() string {
	return "faultline: invalid interceptor options: " + e.err.Error()
}
func (e *configError) Unwrap() error { return e.err }
func (e *configError) GRPCStatus() *status.Status {
	return status.New(codes.InvalidArgument, e.Error())
}

// DialOptions returns the options that install s on a connection: the unary and stream
// interceptors (with grpc.WithChainUnaryInterceptor / WithChainStreamInterceptor, so they
// run after interceptors already given to the connection and before later ones), and
// grpc.WithDisableRetry, so grpc-go's own service-config retries do not multiply ours
// (transparent retries of RPCs that never left the client stay on).
func (s *Set) DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(s.Unary()),
		grpc.WithChainStreamInterceptor(s.Stream()),
		grpc.WithDisableRetry(),
	}
}
