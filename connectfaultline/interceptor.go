package connectfaultline

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"connectrpc.com/connect"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/calls"
	"github.com/faultline-go/faultline/internal/ended"
	"github.com/faultline-go/faultline/internal/transport"
	"github.com/faultline-go/faultline/retry"
)

// Interceptor is a connect.Interceptor for clients: it classifies every failure into an
// *errs.Error and retries calls by policy (see the package documentation). Build it with
// [New] and install it with connect.WithInterceptors. Its configuration never changes after
// New, and it is safe for concurrent use, by any number of clients.
type Interceptor struct {
	b      transport.Base               // classifier, retrier, routes, header (canonical form), ...
	levels map[string]retry.Idempotency // the configured levels, which beat connect.Spec's

	err error // a configuration error: every call fails with it (ClientOption)
}

var _ connect.Interceptor = (*Interceptor)(nil)

// New validates opts and returns the interceptor they describe. Errors: an invalid policy
// (matching retry.ErrInvalidPolicy), a method policy name not of the form "/pkg.Service/" or
// "/pkg.Service/Method", an invalid attempt header name, a negative replay limit, an
// idempotency or key entry that cannot work, a resumer that cannot work for its procedure's
// registered descriptor (see [WithResumer]).
func New(opts ...Option) (*Interceptor, error) {
	cfg := transport.NewConfig()
	for _, o := range opts {
		if o != nil { // a nil Option sets nothing
			o.apply(&cfg)
		}
	}
	b, err := transport.Build(cfg, rules)
	if err != nil {
		return nil, fmt.Errorf("connectfaultline: %w", err)
	}
	b.Header = http.CanonicalHeaderKey(b.Header) // "" stays "": none
	return &Interceptor{b: b, levels: cfg.Levels}, nil
}

// ClientOption returns connect.WithInterceptors(New(opts...)), to give to a generated
// client's constructor. If New would return an error, every call through the client fails
// with that error, before anything is sent: a *connect.Error with code INVALID_ARGUMENT
// (status.Code says the same), from which errors.Is finds New's error (retry.ErrInvalidPolicy
// for a bad policy). It never panics. Call New to learn of a bad configuration at start-up.
func ClientOption(opts ...Option) connect.ClientOption {
	i, err := New(opts...)
	if err != nil {
		i = &Interceptor{err: connect.NewError(connect.CodeInvalidArgument, &transport.ConfigError{Err: err})}
	}
	return connect.WithInterceptors(i)
}

// WrapUnary returns the unary client function with faultline around it: each attempt's
// failure is classified into an *errs.Error, and failures are retried by the procedure's
// policy. A call that gives up after retrying returns a *retry.Error wrapping the last
// attempt's *errs.Error; a call of a one-attempt policy returns the *errs.Error itself.
// Interceptors installed after this one (inside it) see every attempt; those before it see
// one call. On a handler, it does nothing.
//
// A call that succeeds the first time allocates nothing here and reads no details.
func (i *Interceptor) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if !req.Spec().IsClient {
			return next(ctx, req)
		}
		return i.unary(ctx, req, next)
	}
}

// WrapStreamingHandler returns next: the interceptor acts on clients only.
func (i *Interceptor) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return next
}

// route returns the route of a procedure, or nil when its calls make one attempt and
// nothing observes them (no hooks, no throttle): they skip the engine.
func (i *Interceptor) route(procedure string) *transport.Route {
	rt := i.b.Route(procedure)
	if rt.Bare {
		return nil
	}
	return rt
}

// level is what repeating a call does: package calls' answer, in which the level that
// connect-go's generated code declares (connect.Spec) stands where the registered
// descriptor's does: after a configured level and an idempotency key, before the sandbox
// API's table.
func (i *Interceptor) level(spec connect.Spec, key calls.Key) retry.Idempotency {
	if key == calls.KeyNone {
		if _, configured := calls.Lookup(i.levels, spec.Procedure); !configured {
			switch spec.IdempotencyLevel {
			case connect.IdempotencyNoSideEffects:
				return retry.NoSideEffects
			case connect.IdempotencyIdempotent:
				return retry.Idempotent
			}
		}
	}
	return i.b.Calls.Level(spec.Procedure, key)
}

// classify returns the classified error of a failed attempt of a call of procedure with
// request req (for the resources it names): an *errs.Error built from a *failure, which
// unwraps to err. An error that already holds an *errs.Error is returned as it is.
func (i *Interceptor) classify(ctx context.Context, err error, procedure string, req any) *errs.Error {
	f := err
	if !transport.HoldsClassified(err) {
		f = newFailure(err, ended.Err(ctx) != nil)
	}
	return i.classified(ctx, f, procedure, req)
}

// classified classifies f (a *failure, or an error holding an *errs.Error).
func (i *Interceptor) classified(ctx context.Context, f error, procedure string, req any) *errs.Error {
	call := classify.CallFromRequest(procedure, req)
	call.ContextErr = ended.Caller(ctx, status.Code(f) == codes.DeadlineExceeded)
	return i.b.Classifier.Classify(f, call)
}

// factsOf returns what f, the error handed to classify, tells the retry loop.
func factsOf(f error) (notSent, body bool) {
	if fl, ok := errors.AsType[*failure](f); ok {
		return fl.notSent, fl.body
	}
	return false, false
}

// peer is the engine's view of the server of a call: named by its address in the hooks'
// events. connect-go's HTTP client has no connection state to wait for, nor a close to end
// a wait: a wait between attempts ends with its timer or the caller's context.
type peer string

func (p peer) Target() string                 { return string(p) }
func (p peer) Closed() <-chan struct{}        { return nil }
func (p peer) Ready() (bool, <-chan struct{}) { return true, nil }
