package interceptor

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/ended"
	"github.com/faultline-go/faultline/retry"
)

// Set is one configured pair of interceptors: classification and retries sharing one
// classifier, one retry budget and one set of hooks. Build it with [New]. Its configuration
// never changes after New, and it is safe for concurrent use.
type Set struct {
	classifier  *classify.Classifier
	def         *route
	methods     map[string]*route // exact methods and "/svc/" prefixes
	header      string
	replayLimit int

	levels       map[string]retry.Idempotency // configured levels, by method or service
	defaultLevel retry.Idempotency
	keys         map[string]keySpec // idempotency keys, by method
	keysOff      bool
	resumers     map[string]Resumer // server streams resumed after commit, by method

	mu      sync.RWMutex
	perCall map[retry.Policy]*route // routes for WithCallPolicy, by policy
}

// maxPerCall bounds the cache of per-call policies; past it a new policy costs an
// allocation per call instead of growing the cache.
const maxPerCall = 64

// New validates opts and returns the interceptors they describe. Errors: an invalid policy
// (matching retry.ErrInvalidPolicy), a method policy name not of the form "/pkg.Service/" or
// "/pkg.Service/Method", an invalid attempt header key, a negative replay limit, a service
// config that [WithServiceConfig] cannot import (matching [ErrInvalidServiceConfig]).
func New(opts ...Option) (*Set, error) {
	cfg := config{policy: retry.DefaultPolicy(), header: DefaultAttemptHeader, replayLimit: DefaultReplayLimit}
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
	if !cfg.budgetSet {
		cfg.budget = retry.DefaultBudget()
	}
	if !validHeader(cfg.header) {
		return nil, fmt.Errorf("interceptor: attempt header %q is not a valid metadata key (lower case, not grpc-, not -bin)", cfg.header)
	}
	if cfg.replayLimit < 0 {
		return nil, fmt.Errorf("interceptor: replay limit is %d bytes, want >= 0", cfg.replayLimit)
	}
	s := &Set{classifier: cfg.classifier, header: cfg.header, replayLimit: cfg.replayLimit,
		levels: cfg.levels, defaultLevel: cfg.defaultLevel, keysOff: cfg.keysOff}
	for name, l := range cfg.levels {
		if !validMethodName(name) {
			return nil, fmt.Errorf("interceptor: idempotency entry %q: want \"/pkg.Service/\" or \"/pkg.Service/Method\"", name)
		}
		if l > retry.NeverRetry {
			return nil, fmt.Errorf("interceptor: idempotency of %s is %v, not a level", name, l)
		}
	}
	if cfg.defaultLevel > retry.NeverRetry {
		return nil, fmt.Errorf("interceptor: default idempotency is %v, not a level", cfg.defaultLevel)
	}
	s.resumers = map[string]Resumer{streamLogs: ResumeStreamLogs}
	for method, r := range cfg.resumers {
		if !validMethodName(method) || strings.HasSuffix(method, "/") {
			return nil, fmt.Errorf("interceptor: resumer method %q: want \"/pkg.Service/Method\"", method)
		}
		if md := registered(method); md != nil && r != nil && (!md.IsStreamingServer() || md.IsStreamingClient()) {
			return nil, fmt.Errorf("interceptor: resumer for %s: only server-streaming methods are resumed", method)
		}
		if r == nil {
			delete(s.resumers, method)
		} else {
			s.resumers[method] = r
		}
	}
	s.keys = maps.Clone(builtinKeys)
	for method, field := range cfg.keys {
		if !validMethodName(method) || strings.HasSuffix(method, "/") {
			return nil, fmt.Errorf("interceptor: idempotency key method %q: want \"/pkg.Service/Method\"", method)
		}
		if field == "" {
			delete(s.keys, method)
			continue
		}
		if l, _ := lookup(builtinIdempotency, method); l == retry.NeverRetry {
			return nil, fmt.Errorf("interceptor: idempotency key of %s: the method is never repeated", method)
		}
		if !protoreflect.Name(field).IsValid() {
			return nil, fmt.Errorf("interceptor: idempotency key field %q of %s is not a field name", field, method)
		}
		if md := registered(method); md != nil {
			if md.IsStreamingClient() || md.IsStreamingServer() {
				return nil, fmt.Errorf("interceptor: idempotency key of %s: keys are set on unary requests only", method)
			}
			fd := md.Input().Fields().ByName(protoreflect.Name(field))
			if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
				return nil, fmt.Errorf("interceptor: idempotency key of %s: %s has no string field %q",
					method, md.Input().FullName(), field)
			}
		}
		s.keys[method] = keySpec{field: protoreflect.Name(field)}
	}
	def, err := retry.New(cfg.policy, retry.WithBudget(cfg.budget), retry.WithHooks(cfg.hooks))
	if err != nil {
		return nil, fmt.Errorf("interceptor: default policy: %w", err)
	}
	s.def = newRoute(def)
	for name, p := range cfg.methods {
		if !validMethodName(name) {
			return nil, fmt.Errorf("interceptor: method policy name %q: want \"/pkg.Service/\" or \"/pkg.Service/Method\"", name)
		}
		r, err := def.WithPolicy(p)
		if err != nil {
			return nil, fmt.Errorf("interceptor: policy for %s: %w", name, err)
		}
		if s.methods == nil {
			s.methods = map[string]*route{}
		}
		s.methods[name] = newRoute(r)
	}
	if err := s.addImported(def, imported); err != nil {
		return nil, err
	}
	return s, nil
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
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return s.unary(ctx, method, req, reply, cc, invoker, opts, true, true)
	}
}

// UnaryClassify returns the classifying half alone: failures become *errs.Error, nothing is
// retried.
func (s *Set) UnaryClassify() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return s.unary(ctx, method, req, reply, cc, invoker, opts, true, false)
	}
}

// UnaryRetry returns the retrying half alone: failures are classified to decide, but the
// caller gets the errors the rest of the chain returned (inside a *retry.Error when it gives
// up).
func (s *Set) UnaryRetry() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return s.unary(ctx, method, req, reply, cc, invoker, opts, false, true)
	}
}

func (s *Set) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts []grpc.CallOption, classifyOut, retrying bool) error {
	var rt *route
	if retrying {
		var err error
		if rt, err = s.route(method, opts); err != nil {
			_, fns := onFinish(opts)
			finish(fns, err) // the call ended before it began: once, with its error
			return err
		}
	}
	if rt == nil {
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err == nil || !classifyOut {
			return err
		}
		return s.classify(ctx, cc, err, method, req, opts)
	}
	// The attempts are made here, step by step, rather than in a closure handed to
	// Retrier.Do: the success path then costs the budget's deposit and little else.
	req, key := s.withKey(method, req)
	opts, finishers := onFinish(opts)
	t := rt.r.Track()
	if cc != nil {
		t.SetTarget(cc) // read only if an event is emitted
	}
	for {
		actx := t.AttemptContext(ctx)
		if n := t.Attempt(); n > 1 && s.header != "" {
			actx = withAttempt(actx, s.header, n-1)
		}
		err := invoker(actx, method, req, reply, cc, opts...)
		if err == nil {
			t.Succeeded(ctx, method)
			finish(finishers, nil)
			return nil
		}
		if nested(err) {
			// Another faultline retry loop down the chain gave up: its error is the call's,
			// never retried again (attempts must not multiply), and classified if it is not yet.
			if classifyOut && !holdsClassified(err) {
				err = s.classify(ctx, cc, err, method, req, opts)
			}
			finish(finishers, err)
			return err
		}
		f := retry.Failure{Method: method, Idempotency: s.idempotency(method, key), Interrupt: closeWatch(cc)}
		if localFailure(err) {
			f.Origin = retry.OriginLocal
		}
		f.Classified = s.classify(ctx, cc, err, method, req, opts)
		if classifyOut {
			err = f.Classified
		}
		if stop := t.Failed(ctx, err, f); stop != nil {
			finish(finishers, stop)
			return stop
		}
	}
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
	r       *retry.Retrier // nil for an invalid per-call policy
	retries bool           // the policy makes more than one attempt
}

func newRoute(r *retry.Retrier) *route {
	if r == nil {
		return &route{}
	}
	p := r.Policy()
	return &route{r: r, retries: p.MaxAttempts > 1}
}

// route returns the route of a call, or nil when the call makes one attempt. An invalid
// per-call policy is an error of the call: INVALID_ARGUMENT, matching retry.ErrInvalidPolicy.
func (s *Set) route(method string, opts []grpc.CallOption) (*route, error) {
	rt := s.def
	if s.methods != nil {
		if m, ok := lookup(s.methods, method); ok {
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
	r, err := s.def.r.WithPolicy(*p)
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
// by a WithCall option, and whether the caller's context had ended (or the caller closed the
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
		if co, ok := o.(*callOption); ok && co.call != nil {
			r, set := &call.Resource, co.call.Resource
			override(&r.SandboxID, set.SandboxID)
			override(&r.FilePath, set.FilePath)
			override(&r.SnapshotID, set.SnapshotID)
			override(&r.RunnerID, set.RunnerID)
			override(&r.ProfileName, set.ProfileName)
		}
	}
	return s.classifier.Classify(err, call)
}

func override(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}
