package interceptor

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"

	"github.com/faultline-go/faultline/internal/transport"
	"github.com/faultline-go/faultline/retry"
)

// Set is one configured pair of interceptors: classification and retries sharing one
// classifier and one retrier (its budget, throttle and hooks). Build it with [New]. Its
// configuration never changes after New, and it is safe for concurrent use.
type Set struct {
	b transport.Base // classifier, retrier, routes, header, replay limit, what calls do

	mu      sync.RWMutex
	perCall map[retry.Policy]*transport.Route // routes for WithCallPolicy, by policy
}

// New validates opts and returns the interceptors they describe. Errors: an invalid policy
// (matching retry.ErrInvalidPolicy), a method policy name not of the form "/pkg.Service/" or
// "/pkg.Service/Method", an invalid attempt header key, a negative replay limit, an
// idempotency or key entry that cannot work, a resumer that cannot work for its method's
// registered descriptor (see [WithResumer]), a service config that [WithServiceConfig]
// cannot import (matching [ErrInvalidServiceConfig]).
func New(opts ...Option) (*Set, error) {
	cfg := config{Config: transport.NewConfig()}
	for _, o := range opts {
		if o != nil { // a nil Option sets nothing
			o.apply(&cfg)
		}
	}
	imported, err := cfg.importServiceConfig()
	if err != nil {
		return nil, err
	}
	s := &Set{}
	if s.b, err = transport.Build(cfg.Config, transport.Rules{StreamLogs: ResumeStreamLogs}); err != nil {
		return nil, fmt.Errorf("interceptor: %w", err)
	}
	if err := s.addImported(s.b.Retrier, imported); err != nil {
		return nil, err
	}
	return s, nil
}

// Unary returns a unary client interceptor that classifies every failure and retries by
// policy: [Set.Unary] of New(opts...). If New would return an error, every call through the
// interceptor fails with that error (code INVALID_ARGUMENT; errors.Is finds New's error,
// retry.ErrInvalidPolicy for a bad policy): it never panics. Call New to learn of a bad
// configuration at start-up. Unary and [Stream] each build a Set of their own: without a
// shared [WithRetrier], each has its own default budget; [DialOptions] (or New and the
// Set's methods) installs both from one.
func Unary(opts ...Option) grpc.UnaryClientInterceptor {
	s, err := New(opts...)
	if err != nil {
		return func(context.Context, string, any, any, *grpc.ClientConn, grpc.UnaryInvoker, ...grpc.CallOption) error {
			return &transport.ConfigError{Err: err}
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
			return nil, &transport.ConfigError{Err: err}
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
