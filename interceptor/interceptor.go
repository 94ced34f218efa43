package interceptor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/calls"
	"github.com/faultline-go/faultline/internal/ended"
	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/internal/sandboxapi"
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

// maxPerCall bounds the cache of per-call policies; past it a new policy costs an
// allocation per call instead of growing the cache.
const maxPerCall = 64

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

// Unary returns the unary interceptor: each attempt's failure is classified into an
// *errs.Error, and failures are retried by the method's policy. A call that gives up
// returns a *retry.Error wrapping the last attempt's *errs.Error; a call with
// [WithoutRetry] or a one-attempt policy returns the *errs.Error itself. Interceptors chained
// after this one see every attempt; those before it see one call.
//
// A call that succeeds the first time allocates nothing here and reads no details.
func (s *Set) Unary() grpc.UnaryClientInterceptor {
	return s.unary
}

func (s *Set) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	rt, err := s.route(method, opts)
	if err != nil {
		_, fns := onFinish(opts)
		finish(fns, err) // the call ended before it began: once, with its error
		return err
	}
	if rt == nil {
		if err := invoker(ctx, method, req, reply, cc, opts...); err != nil {
			return s.classify(ctx, cc, err, method, req, opts)
		}
		return nil
	}
	// The attempts are made here, step by step, rather than in a closure handed to
	// Retrier.Do: the success path then costs the budget's deposit and little else.
	req, key := s.calls.WithKey(method, req)
	opts, finishers := onFinish(opts)
	var t engine.Tracker
	actx := ctx
	if rt.timeout > 0 { // the first attempt needs a context of its own
		t = rt.e.Track(method, conn(cc))
		actx = t.Context(ctx)
	}
	// A call that may be repeated after an ambiguous failure only if its server did not
	// commit to it (gRFC A6: response headers commit a call) asks grpc-go for the headers.
	headers := key == calls.KeyNone && s.calls.Level(method, key) == retry.IdempotencyUnknown
	var pr *probe
	if err = rt.e.Admit(); err == nil {
		pr, err = s.attempt(actx, method, req, reply, cc, invoker, opts, headers)
		if err == nil {
			pr.release()
			if t != nil {
				t.Succeeded(ctx)
			} else {
				rt.e.Succeeded()
			}
			finish(finishers, nil)
			return nil
		}
	}
	if t == nil {
		t = rt.e.Track(method, conn(cc))
	}
	for {
		if nested(err) {
			// Another faultline retry loop down the chain gave up: its error is the call's,
			// never retried again (attempts must not multiply), and classified if it is not yet.
			if !holdsClassified(err) {
				err = s.classify(ctx, cc, err, method, req, opts)
			}
			pr.release()
			finish(finishers, err)
			return err
		}
		f := engine.Facts{Level: uint8(s.calls.Level(method, key)), NotSent: pr.notSent(), Headers: pr.headers()}
		pr.release()
		if stop := t.Failed(ctx, s.classify(ctx, cc, err, method, req, opts), f); stop != nil {
			finish(finishers, stop)
			return stop
		}
		actx = t.Context(ctx)
		if s.header != "" {
			actx = withAttempt(actx, s.header, t.Attempt()-1)
		}
		if pr, err = s.attempt(actx, method, req, reply, cc, invoker, opts, headers); err == nil {
			pr.release()
			t.Succeeded(ctx)
			finish(finishers, nil)
			return nil
		}
	}
}

// attempt makes one attempt of a unary call, asking grpc-go, through call options, what the
// retry loop may need to know of a failure (a pooled probe, so that asking costs no
// allocation of ours): the attempt's peer, when the connection is not ready as the attempt
// starts (a failed attempt without one never got a transport stream, so it provably ran
// nothing); its response headers, when headers is set. It returns the probe, nil when it
// asked for nothing.
func (s *Set) attempt(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts []grpc.CallOption, headers bool) (*probe, error) {
	peer := cc != nil && cc.GetState() != connectivity.Ready
	if !peer && !headers {
		return nil, invoker(ctx, method, req, reply, cc, opts...)
	}
	pr := newProbe(opts, peer, headers)
	return pr, invoker(ctx, method, req, reply, cc, pr.opts...)
}

// probe holds the answers of grpc-go's grpc.Peer and grpc.Header call options for one
// attempt.
type probe struct {
	peer      peer.Peer
	header    metadata.MD
	asked     struct{ peer, header bool }
	opts      []grpc.CallOption
	peerOpt   grpc.CallOption // grpc.Peer(&peer), made once per probe
	headerOpt grpc.CallOption // grpc.Header(&header)
}

var probes = sync.Pool{New: func() any {
	pr := new(probe)
	pr.peerOpt, pr.headerOpt = grpc.Peer(&pr.peer), grpc.Header(&pr.header)
	return pr
}}

func newProbe(opts []grpc.CallOption, peer, header bool) *probe {
	pr := probes.Get().(*probe)
	pr.asked.peer, pr.asked.header = peer, header
	pr.opts = append(pr.opts[:0], opts...)
	if peer {
		pr.opts = append(pr.opts, pr.peerOpt)
	}
	if header {
		pr.opts = append(pr.opts, pr.headerOpt)
	}
	return pr
}

// notSent reports whether the probed attempt never got a transport stream: grpc-go fills
// the peer from the stream, so a failed attempt without a peer sent nothing.
func (pr *probe) notSent() bool { return pr != nil && pr.asked.peer && pr.peer.Addr == nil }

// headers reports whether the probed attempt's response headers arrived: grpc-go gives no
// headers (nil) for a response of trailers only.
func (pr *probe) headers() bool { return pr != nil && pr.asked.header && pr.header != nil }

func (pr *probe) release() {
	if pr == nil {
		return
	}
	pr.peer, pr.header = peer.Peer{}, nil
	clear(pr.opts)
	probes.Put(pr)
}

// nested reports whether err is already the final error of a faultline retry loop further
// down the chain: it is returned as it is (classified, if it holds no *errs.Error), never
// retried again.
func nested(err error) bool {
	var re *retry.Error
	return errors.As(err, &re)
}

// holdsClassified reports whether err holds an *errs.Error.
func holdsClassified(err error) bool {
	var e *errs.Error
	return errors.As(err, &e)
}

// route is how the calls of a method, or of a per-call policy, are retried.
type route struct {
	e       engine.Route
	retries bool          // the policy makes more than one attempt
	timeout time.Duration // the policy's PerAttemptTimeout
}

func newRoute(r *retry.Retrier) *route {
	e := engine.RouteOf(r)
	return &route{e: e, retries: e.Retries(), timeout: e.AttemptTimeout()}
}

// route returns the route of a call, or nil when the call makes one attempt. An invalid
// per-call policy is an error of the call: INVALID_ARGUMENT, matching retry.ErrInvalidPolicy.
func (s *Set) route(method string, opts []grpc.CallOption) (*route, error) {
	rt := s.def
	if s.methods != nil {
		if m, ok := calls.Lookup(s.methods, method); ok {
			rt = m
		}
	}
	for _, o := range opts {
		if co, ok := o.(*callOption); ok {
			switch {
			case co.noRetry:
				return nil, nil
			case co.hasPolicy:
				pr, err := s.callRoute(&co.policy)
				if err != nil {
					return nil, err
				}
				rt = pr
			}
		}
	}
	if !rt.retries {
		return nil, nil
	}
	return rt, nil
}

// callRoute returns the route of a per-call policy, or the error that makes it invalid.
func (s *Set) callRoute(p *retry.Policy) (*route, error) {
	s.mu.RLock()
	rt, ok := s.perCall[*p]
	s.mu.RUnlock()
	if ok {
		return rt, nil
	}
	r, err := s.retrier.WithPolicy(*p)
	if err != nil {
		return nil, &invalidPolicyError{err}
	}
	rt = newRoute(r)
	s.mu.Lock()
	if len(s.perCall) < maxPerCall {
		if s.perCall == nil {
			s.perCall = map[retry.Policy]*route{}
		}
		s.perCall[*p] = rt
	}
	s.mu.Unlock()
	return rt, nil
}

// invalidPolicyError is the error of a call given an invalid WithCallPolicy: its status is
// INVALID_ARGUMENT and it matches retry.ErrInvalidPolicy.
type invalidPolicyError struct{ err error }

func (e *invalidPolicyError) Error() string { return "interceptor: WithCallPolicy: " + e.err.Error() }
func (e *invalidPolicyError) Unwrap() error { return e.err }
func (e *invalidPolicyError) GRPCStatus() *status.Status {
	return status.New(codes.InvalidArgument, e.Error())
}

// classify classifies err with what the call was about: the request's fields, overridden
// by a WithResource option, and whether the caller's context had ended (or the caller closed the
// connection).
func (s *Set) classify(ctx context.Context, cc *grpc.ClientConn, err error, method string, req any, opts []grpc.CallOption) *errs.Error {
	call := classify.CallFromRequest(method, req)
	call.ContextErr = ended.Err(ctx)
	if call.ContextErr == nil && cc != nil && cc.GetState() == connectivity.Shutdown {
		// The client closed the connection (grpc-go reports CANCELLED): the caller's doing,
		// as a cancelled context is, not a statement about the sandbox.
		call.ContextErr = context.Canceled
	}
	for _, o := range opts {
		if co, ok := o.(*callOption); ok && co.res != nil {
			sandboxapi.Merge(&call.Resource, *co.res)
		}
	}
	return s.classifier.Classify(err, call)
}
