package connectfaultline

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/calls"
	"github.com/faultline-go/faultline/internal/ended"
	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/retry"
)

// Interceptor is a connect.Interceptor for clients: it classifies every failure into an
// *errs.Error and retries calls by policy (see the package documentation). Build it with
// [New] and install it with connect.WithInterceptors. Its configuration never changes after
// New, and it is safe for concurrent use, by any number of clients.
type Interceptor struct {
	classifier  *classify.Classifier
	retrier     *retry.Retrier
	def         *route
	methods     map[string]*route // exact procedures and "/svc/" prefixes
	header      string            // canonical form; "" for none
	replayLimit int

	calls  *calls.Methods               // what a call of a procedure does: level, key, resumer
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
	cfg := config{header: defaultAttemptHeader, replayLimit: defaultReplayLimit}
	for _, o := range opts {
		if o != nil { // a nil Option sets nothing
			o.apply(&cfg)
		}
	}
	if cfg.classifier == nil {
		cfg.classifier = classify.New()
	}
	if !validHeader(cfg.header) {
		return nil, fmt.Errorf("connectfaultline: attempt header %q is not a lower-case metadata key (a-z, 0-9, -, _, .; not grpc-, connect- or -bin)", cfg.header)
	}
	if cfg.replayLimit < 0 {
		return nil, fmt.Errorf("connectfaultline: replay limit is %d bytes, want >= 0", cfg.replayLimit)
	}
	i := &Interceptor{classifier: cfg.classifier, replayLimit: cfg.replayLimit, levels: cfg.levels}
	if cfg.header != "" {
		i.header = http.CanonicalHeaderKey(cfg.header)
	}
	resumers := make(map[string]calls.Resumer, len(cfg.resumers))
	for procedure, r := range cfg.resumers {
		resumers[procedure] = nil
		if r != nil {
			resumers[procedure] = r
		}
	}
	var err error
	i.calls, err = calls.New(calls.Config{Levels: cfg.levels, Default: cfg.defaultLevel, Keys: cfg.keys,
		KeysOff: cfg.keysOff, Resumers: resumers, StreamLogs: isStreamLogs})
	if err != nil {
		return nil, fmt.Errorf("connectfaultline: %w", err)
	}
	if err := i.setRoutes(cfg); err != nil {
		return nil, err
	}
	return i, nil
}

// setRoutes sets the retrier and the routes of the default and method policies.
func (i *Interceptor) setRoutes(cfg config) error {
	r := cfg.retrier
	if r == nil {
		var err error
		if r, err = retry.New(retry.DefaultPolicy()); err != nil {
			return fmt.Errorf("connectfaultline: default policy: %w", err) // not reached: a valid policy
		}
	}
	i.retrier, i.def = r, newRoute(r)
	for name, p := range cfg.methods {
		if !calls.ValidName(name) {
			return fmt.Errorf("connectfaultline: method policy name %q: want \"/pkg.Service/\" or \"/pkg.Service/Method\"", name)
		}
		mr, err := r.WithPolicy(p)
		if err != nil {
			return fmt.Errorf("connectfaultline: policy for %s: %w", name, err)
		}
		if i.methods == nil {
			i.methods = map[string]*route{}
		}
		i.methods[name] = newRoute(mr)
	}
	return nil
}

// ClientOption returns connect.WithInterceptors(New(opts...)), to give to a generated
// client's constructor. If New would return an error, every call through the client fails
// with that error, before anything is sent: a *connect.Error with code INVALID_ARGUMENT
// (status.Code says the same), from which errors.Is finds New's error (retry.ErrInvalidPolicy
// for a bad policy). It never panics. Call New to learn of a bad configuration at start-up.
func ClientOption(opts ...Option) connect.ClientOption {
	i, err := New(opts...)
	if err != nil {
		i = &Interceptor{err: connect.NewError(connect.CodeInvalidArgument, &configError{err})}
	}
	return connect.WithInterceptors(i)
}

// configError is New's error, as every call through a client built with invalid options
// returns it (in a *connect.Error): its status is INVALID_ARGUMENT and it unwraps to it.
type configError struct{ err error }

func (e *configError) Error() string {
	return "faultline: invalid interceptor options: " + e.err.Error()
}
func (e *configError) Unwrap() error { return e.err }
func (e *configError) GRPCStatus() *status.Status {
	return status.New(codes.InvalidArgument, e.Error())
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

// route is how the calls of a procedure are retried.
type route struct {
	e       engine.Route
	retries bool          // the policy makes more than one attempt
	timeout time.Duration // the policy's PerAttemptTimeout
}

func newRoute(r *retry.Retrier) *route {
	e := engine.RouteOf(r)
	return &route{e: e, retries: e.Retries(), timeout: e.AttemptTimeout()}
}

// route returns the route of a procedure, or nil when its calls make one attempt.
func (i *Interceptor) route(procedure string) *route {
	rt := i.def
	if i.methods != nil {
		if m, ok := calls.Lookup(i.methods, procedure); ok {
			rt = m
		}
	}
	if !rt.retries {
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
	return i.calls.Level(spec.Procedure, key)
}

// classify returns the classified error of a failed attempt of a call of procedure with
// request req (for the resources it names): an *errs.Error built from a *failure, which
// unwraps to err. An error that already holds an *errs.Error is returned as it is.
func (i *Interceptor) classify(ctx context.Context, err error, procedure string, req any) *errs.Error {
	f := err
	if !holdsClassified(err) {
		f = newFailure(err, ended.Err(ctx) != nil)
	}
	return i.classified(ctx, f, procedure, req)
}

// classified classifies f (a *failure, or an error holding an *errs.Error).
func (i *Interceptor) classified(ctx context.Context, f error, procedure string, req any) *errs.Error {
	call := classify.CallFromRequest(procedure, req)
	call.ContextErr = callerEnded(ctx, f)
	return i.classifier.Classify(f, call)
}

// deadlineSlack is how much earlier than the caller's deadline a server may enforce it:
// connect-go sends a call's deadline as a timeout truncated to a unit (milliseconds on the
// Connect protocol; on gRPC and gRPC-Web, the smallest of ns, µs, ms that fits, for any
// timeout under 27 hours), which the server counts from when the call arrives.
const deadlineSlack = time.Millisecond

// callerEnded returns the caller's context error when the failure f is the caller's doing:
// the context had ended, or f is a DEADLINE_EXCEEDED that came back within deadlineSlack of
// the caller's deadline (the server ended the call at the deadline the caller sent, a moment
// before the caller's own timer). Otherwise nil.
func callerEnded(ctx context.Context, f error) error {
	if err := ended.Err(ctx); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= deadlineSlack && status.Code(f) == codes.DeadlineExceeded {
		return context.DeadlineExceeded
	}
	return nil
}

// factsOf returns what f, the error handed to classify, tells the retry loop.
func factsOf(f error) (notSent, body bool) {
	if fl, ok := errors.AsType[*failure](f); ok {
		return fl.notSent, fl.body
	}
	return false, false
}

// nested reports whether err is already the final error of a faultline retry loop further
// down the chain: it is returned as it is (classified, if it holds no *errs.Error), never
// retried again.
func nested(err error) bool {
	_, ok := errors.AsType[*retry.Error](err)
	return ok
}

// holdsClassified reports whether err holds an *errs.Error.
func holdsClassified(err error) bool {
	_, ok := errors.AsType[*errs.Error](err)
	return ok
}

// peer is the engine's view of the server of a call: named by its address in the hooks'
// events. connect-go's HTTP client has no connection state to wait for, nor a close to end
// a wait: a wait between attempts ends with its timer or the caller's context.
type peer string

func (p peer) Target() string                 { return string(p) }
func (p peer) Closed() <-chan struct{}        { return nil }
func (p peer) Ready() (bool, <-chan struct{}) { return true, nil }
