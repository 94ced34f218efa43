package retry

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"reflect"
	"time"

	"github.com/cenkalti/backoff/v4"
	"google.golang.org/grpc/codes"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/ended"
	"github.com/faultline-go/faultline/internal/seam"
)

// An Option configures a [Retrier]. The last option for a setting wins.
type Option interface {
	// apply returns r with the option set. It takes and returns a value, not a pointer, so
	// that [Do] can build its Retrier on the stack.
	apply(r Retrier) Retrier
}

type budgetOption struct{ b Budget }

func (o budgetOption) apply(r Retrier) Retrier {
	r.budget = o.b
	if v := reflect.ValueOf(o.b); o.b != nil && v.Kind() == reflect.Pointer && v.IsNil() {
		r.budget = nil // a nil *RatioBudget or *TokenBucket: off, as nil says
	}
	return r
}

type hooksOption struct{ h Hooks }

func (o hooksOption) apply(r Retrier) Retrier { r.hooks = JoinHooks(r.hooks, o.h); return r }

type classifyFuncOption struct{ f func(error) *errs.Error }

func (o classifyFuncOption) apply(r Retrier) Retrier { r.classify = o.f; return r }

type idempotencyOption struct{ l Idempotency }

func (o idempotencyOption) apply(r Retrier) Retrier { r.level = o.l; return r }

// WithIdempotency says what running the operations of [Retrier.Do] and [Do] twice does: a
// NotIdempotent operation is retried only when the server declined the work (RetryInfo or a
// trusted transient reason); a NeverRetry one is never retried. Default: IdempotencyUnknown,
// retried like an idempotent operation.
func WithIdempotency(l Idempotency) Option { return idempotencyOption{l} }

// WithBudget sets the retry budget shared by every call through the Retrier; nil (or a nil
// pointer of a Budget type) turns budgeting off. Default: a new [DefaultBudget] per Retrier
// built by [New], none for [Do].
func WithBudget(b Budget) Option { return budgetOption{b} }

// WithHooks adds a set of hooks, called when a retry is scheduled, when retrying stops and
// when a call that retried or failed is done; several WithHooks combine, called in the order
// given ([JoinHooks]). Default: none.
func WithHooks(h Hooks) Option { return hooksOption{h} }

// WithClassifyFunc sets how the loop reads a failure's kind and server hint when the error is
// not already an *errs.Error (for example classify.Classify, when op returns raw gRPC
// errors). The error op returned is what the caller gets, unchanged. Default: none; the
// error is matched as it is.
func WithClassifyFunc(f func(error) *errs.Error) Option { return classifyFuncOption{f} }

// Retrier runs operations under one policy, one budget and one set of hooks. It is
// immutable and safe for concurrent use.
type Retrier struct {
	policy   Policy
	budget   Budget
	hooks    Hooks
	classify func(error) *errs.Error
	level    Idempotency
}

// New returns a Retrier for p, with a new [DefaultBudget] unless an option says otherwise.
// It returns an error matching [ErrInvalidPolicy] when p is not valid.
func New(p Policy, opts ...Option) (*Retrier, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	r := Retrier{policy: p, budget: DefaultBudget()}
	for _, o := range opts {
		if o != nil { // a nil Option sets nothing
			r = o.apply(r)
		}
	}
	return &r, nil
}

// WithPolicy returns a Retrier like r, sharing its budget and hooks, under policy p. It
// returns an error matching [ErrInvalidPolicy] when p is not valid.
func (r *Retrier) WithPolicy(p Policy) (*Retrier, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	c := *r
	c.policy = p
	return &c, nil
}

// Policy returns r's policy.
func (r *Retrier) Policy() Policy { return r.policy }

// Do runs op with a Retrier built from p and opts, without a budget unless WithBudget is
// given. op is taken to be safe to repeat when it fails in a way that may have reached a
// server (a bare UNAVAILABLE): give [WithIdempotency] NotIdempotent or NeverRetry for an op
// that creates something without an idempotency key or runs a command. It returns an error
// matching [ErrInvalidPolicy], without calling op, when p is not valid; otherwise what
// [Retrier.Do] returns. Like [Retrier.Do], it allocates nothing when op succeeds the first
// time.
func Do(ctx context.Context, p Policy, op func(context.Context) error, opts ...Option) error {
	if err := p.Validate(); err != nil {
		return err
	}
	r := Retrier{policy: p}
	for _, o := range opts {
		if o != nil { // a nil Option sets nothing
			r = o.apply(r)
		}
	}
	// The hooks' events make a Tracker's Retrier escape, so r stays on the stack for a first
	// attempt that succeeds and is copied to the heap only when a retry may follow.
	var err error
	if p.PerAttemptTimeout <= 0 { // else each attempt allocates its context anyway
		if err = op(ctx); err == nil {
			r.record(true, OutcomeSucceeded)
			return nil
		}
	}
	h := new(Retrier)
	*h = r
	t := Tracker{r: h, attempt: 1}
	return t.run(ctx, op, err)
}

// Do calls op until it succeeds or the policy says stop, and returns nil or an [*Error].
//
// A failure is retried when the caller's context is alive, it is not already the final error
// of another retry loop (an *Error: retries never nest), its kind is retried by the policy
// (RetryOn, or a family base kind with a transient code or reason; or its attempt ran out of
// PerAttemptTimeout), a RESOURCE_EXHAUSTED carries a server signal (RetryInfo or a trusted
// transient reason), repeating it is safe at the operation's [Idempotency], attempts
// remain, its server hint is not above MaxRetryDelay, the wait ends before ctx's deadline
// and within MaxElapsed, and the budget allows it. The wait is the server hint when positive
// (plus up to HintJitter more), otherwise the backoff. ctx ending during a wait returns at
// once. op gets ctx, or a child of it bounded by PerAttemptTimeout.
//
// On success the first time, Do allocates nothing and reads no error details.
func (r *Retrier) Do(ctx context.Context, op func(context.Context) error) error {
	t := Tracker{r: r, attempt: 1}
	return t.run(ctx, op, nil)
}

// run makes op's attempts until one succeeds or the policy says stop; err, when not nil,
// is the error of the first attempt, already made.
func (t *Tracker) run(ctx context.Context, op func(context.Context) error, err error) error {
	f := Failure{Idempotency: t.r.level}
	for {
		if err == nil {
			if err = op(t.AttemptContext(ctx)); err == nil {
				t.Succeeded(ctx, "")
				return nil
			}
		}
		if stop := t.Failed(ctx, err, f); stop != nil {
			return stop
		}
		err = nil
	}
}

// Tracker is the retry state of one logical call, for code that makes the attempts itself
// rather than handing [Retrier.Do] a function: a stream that retries from inside RecvMsg,
// for example. It keeps the attempt count, the backoff, the time waited and the current
// attempt's deadline. A Tracker is not safe for concurrent use.
type Tracker struct {
	r       *Retrier
	conn    interface{ CanonicalTarget() string } // names the target in events, when set
	target  string                                // conn's target, once an event needed it
	attempt int
	burst   bool // a burst after the first: the budget is not told of a new call
	bo      *backoff.ExponentialBackOff
	start   time.Time
	waited  time.Duration

	due    time.Time          // the current attempt's own deadline, under PerAttemptTimeout
	cancel context.CancelFunc // releases the current attempt's own context
}

// Track returns a Tracker for a call whose first attempt is about to be made.
func (r *Retrier) Track() *Tracker { return &Tracker{r: r, attempt: 1} }

// Restart starts a new burst of failures, for a long-lived call that made progress since its
// last failure (a resumed stream that delivered messages): the attempt count, the backoff and
// MaxElapsed start over, while the time waited keeps adding up. The budget is not told of a
// new call.
func (t *Tracker) Restart() {
	t.release()
	t.attempt, t.bo, t.start, t.burst = 1, nil, time.Time{}, true
}

// SetTarget names what the call is made to in the hooks' events: their Target is
// conn.CanonicalTarget(), read once, when the call's first event is built, so that a call
// that succeeds the first time never pays for it. *grpc.ClientConn is such a conn; package
// interceptor sets it. Without it, Target is "".
func (t *Tracker) SetTarget(conn interface{ CanonicalTarget() string }) { t.conn = conn }

// targetName returns the events' Target.
func (t *Tracker) targetName() string {
	if t.target == "" && t.conn != nil {
		t.target = t.conn.CanonicalTarget()
	}
	return t.target
}

// Attempt returns the number of the current attempt, 1 for the first.
func (t *Tracker) Attempt() int { return t.attempt }

// AttemptContext returns the context to make the current attempt under: ctx itself, or,
// when the policy has a PerAttemptTimeout, a child of ctx bounded by it, which the next
// Failed or Succeeded releases. An attempt that fails because that timeout ran out while
// ctx is alive is retried, whatever its kind.
func (t *Tracker) AttemptContext(ctx context.Context) context.Context {
	if t.r.policy.PerAttemptTimeout <= 0 {
		return ctx // kept small enough to inline: this is every call's path
	}
	return t.bounded(ctx)
}

func (t *Tracker) bounded(ctx context.Context) context.Context {
	t.release()
	actx, cancel := context.WithTimeout(ctx, t.r.policy.PerAttemptTimeout)
	t.due, _ = actx.Deadline()
	t.cancel = cancel
	return actx
}

// release cancels the current attempt's own context, if it has one.
func (t *Tracker) release() {
	if t.cancel != nil {
		t.cancel()
		t.due, t.cancel = time.Time{}, nil
	}
}

// Succeeded reports that the current attempt succeeded: to the budget, and, when the call
// retried, to the OnDone hook with ctx (the caller's context) and method (the call's name in
// events: a full gRPC method name, or "").
func (t *Tracker) Succeeded(ctx context.Context, method string) {
	t.release()
	t.r.record(t.attempt == 1 && !t.burst, OutcomeSucceeded)
	if (t.attempt > 1 || t.burst) && t.r.hooks.OnDone != nil {
		t.r.hooks.OnDone(ctx, DoneEvent{Method: method, Target: t.targetName(), Attempts: t.attempt, TotalWait: t.waited})
	}
}

// Failed reports that the current attempt failed with err, and what the caller knows of
// the failure beyond it. It decides as [Retrier.Do] does; when another attempt is to be
// made it waits (returning early if ctx ends or f.Interrupt fires) and returns nil, and
// Attempt counts the new attempt. Otherwise it returns the final [*Error]; when err already
// holds the final *Error of another retry loop, that error itself.
func (t *Tracker) Failed(ctx context.Context, err error, f Failure) *Error {
	// The attempt's own deadline is read off the clock, not off its context, for the reason
	// given at ended.Err.
	own := !t.due.IsZero() && !time.Now().Before(t.due) && ended.Err(ctx) == nil
	t.release()
	return t.failed(ctx, err, f, own)
}

// failed is Failed, told whether the attempt ran out of its own PerAttemptTimeout.
func (t *Tracker) failed(ctx context.Context, err error, f Failure, ownTimeout bool) *Error {
	r, p := t.r, &t.r.policy
	first := t.attempt == 1 && !t.burst
	stop := func(cause StopReason, ctxErr error, inWait bool) *Error {
		return t.stop(ctx, f.Method, newError(err, t.attempt, t.waited, cause, ctxErr, inWait))
	}
	var inner *Error
	if errors.As(err, &inner) {
		// Another faultline loop (a second installation, or an SDK retrying inside this
		// call) already retried and gave up: attempts must not multiply.
		r.record(first, OutcomeFinal)
		return inner
	}
	if ctxErr := ended.Err(ctx); ctxErr != nil {
		r.record(first, OutcomeFinal)
		return stop(stopCause(ctxErr), ctxErr, false)
	}
	e := f.Classified
	if e == nil {
		e = r.facts(err)
	}
	if cause := p.verdict(err, e, f, ownTimeout); cause != 0 {
		r.record(first, OutcomeFinal)
		return stop(cause, nil, false)
	}
	r.record(first, OutcomeRetryable)
	if t.attempt >= p.MaxAttempts {
		return stop(StopExhausted, nil, false)
	}

	now := time.Now()
	if t.start.IsZero() {
		t.start = now
	}
	if t.bo == nil {
		t.bo = r.newBackoff()
	}
	// At least 1ns: the backoff library truncates to whole nanoseconds, so a nanosecond-scale
	// backoff could otherwise come out as no wait at all.
	wait, fromHint := max(t.bo.NextBackOff(), 1), false
	if e != nil {
		if hint, ok := e.RetryDelay(); ok && hint > 0 {
			if hint > p.MaxRetryDelay {
				return stop(StopHintTooLong, nil, false)
			}
			wait, fromHint = jitterUp(hint, p.HintJitter), true
		}
	}
	if deadline, ok := ctx.Deadline(); ok && !now.Add(wait).Before(deadline) {
		return stop(StopDeadline, nil, false)
	}
	if p.MaxElapsed > 0 && now.Add(wait).Sub(t.start) >= p.MaxElapsed {
		return stop(StopMaxElapsed, nil, false)
	}
	if r.budget != nil && !r.budget.Allow() {
		return stop(StopBudget, nil, false)
	}
	if r.hooks.OnRetry != nil {
		r.hooks.OnRetry(ctx, RetryEvent{Method: f.Method, Target: t.targetName(), Attempt: t.attempt, Err: err, Delay: wait, FromHint: fromHint,
			Resumed: f.Resume})
	}
	var interrupt <-chan struct{}
	if f.Interrupt != nil {
		done, release := f.Interrupt()
		defer release()
		interrupt = done
	}
	switch werr := sleep(ctx, wait, interrupt); {
	case werr == errInterrupted:
		t.waited += time.Since(now)
		return stop(StopCancelled, nil, false)
	case werr != nil:
		t.waited += time.Since(now)
		return stop(stopCause(werr), werr, true)
	}
	t.waited += wait
	t.attempt++
	return nil
}

// verdict returns why the failure err (classified as e, if it could be) must not be
// retried, or 0 when the policy may retry it.
func (p *Policy) verdict(err error, e *errs.Error, f Failure, ownTimeout bool) StopReason {
	if f.Origin == OriginLocal {
		return StopLocalFailure
	}
	var code codes.Code
	var signal bool // the server declined the work: RetryInfo, or a trusted transient reason
	if e != nil {
		_, hint := e.RetryDelay()
		code, signal = e.Code(), hint || transient(e)
	}
	if !ownTimeout && !p.retries(err, e, signal) {
		return StopNotRetryable
	}
	if code == codes.ResourceExhausted && !signal {
		return StopNoServerSignal
	}
	switch {
	case f.Idempotency == NeverRetry:
		return StopUnsafe
	case f.Idempotency == NotIdempotent && !signal && f.Origin != OriginNotSent:
		return StopUnsafe
	}
	return 0
}

// retries reports whether the policy retries err by its kind: a kind in RetryOn, or a
// family base kind (the classifier could name nothing more specific) with a transient code
// or a trusted transient reason; or, for a policy with RetryCodes, by its code alone.
func (p *Policy) retries(err error, e *errs.Error, signal bool) bool {
	if p.RetryCodes != 0 {
		return e != nil && p.RetryCodes.Has(e.Code())
	}
	if p.RetryOn.Match(err) || e != nil && p.RetryOn.Match(e) {
		return true
	}
	if e == nil {
		return false
	}
	switch e.Kind() {
	case errs.ErrCWSandbox, errs.ErrSandbox, errs.ErrDiscovery:
		return p.TransientCodes.Has(e.Code()) || transient(e)
	}
	return false
}

// transient reports whether a trusted ErrorInfo reason declared e transient, as its
// classifier found.
func transient(e *errs.Error) bool {
	return seam.FactsOf.(func(*errs.Error) seam.Facts)(e).Transient
}

func (r *Retrier) record(first bool, o Outcome) {
	if r.budget != nil {
		r.budget.Record(first, o)
	}
}

// facts returns the classified form of err, for its kind and hint.
func (r *Retrier) facts(err error) *errs.Error {
	var e *errs.Error
	if errors.As(err, &e) {
		return e
	}
	if r.classify != nil {
		return r.classify(err)
	}
	return nil
}

// stop reports the final error e to the hooks and returns it.
func (t *Tracker) stop(ctx context.Context, method string, e *Error) *Error {
	h := &t.r.hooks
	if h.OnStop != nil {
		h.OnStop(ctx, StopEvent{Method: method, Target: t.targetName(), Attempts: e.attempts, Err: e.err, Reason: e.cause, TotalWait: e.wait})
	}
	if h.OnDone != nil {
		h.OnDone(ctx, DoneEvent{Method: method, Target: t.targetName(), Attempts: e.attempts, TotalWait: e.wait, Reason: e.cause, Err: e})
	}
	return e
}

// newBackoff returns the policy's backoff sequence, computed by cenkalti/backoff: before
// retry n, min(Initial*Multiplier^(n-1), Max), multiplied by a random factor in
// [1-Jitter, 1+Jitter] (the library's rounding may move a wait by 1ns).
func (r *Retrier) newBackoff() *backoff.ExponentialBackOff {
	p := &r.policy
	b := &backoff.ExponentialBackOff{
		InitialInterval:     p.InitialBackoff,
		RandomizationFactor: p.Jitter,
		Multiplier:          p.Multiplier,
		MaxInterval:         p.MaxBackoff,
		MaxElapsedTime:      0, // the loop keeps its own time
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	b.Reset()
	return b
}

// jitterUp returns hint*U(1, 1+j): never less than the hint.
func jitterUp(hint time.Duration, j float64) time.Duration {
	if j <= 0 {
		return hint
	}
	// The extra alone is drawn: hint*(1+j) can round up past the true bound in float.
	return hint + between(0, j*float64(hint))
}

// between returns a whole number of nanoseconds drawn uniformly from [lo, hi], rounded but
// never outside the range (lo <= hi, both at most 48h, so nothing overflows).
func between(lo, hi float64) time.Duration {
	w := time.Duration(math.Round(lo + (hi-lo)*rand.Float64()))
	switch {
	case float64(w) > hi:
		w = time.Duration(math.Floor(hi))
	case float64(w) < lo:
		w = time.Duration(math.Ceil(lo))
	}
	return w
}

// errInterrupted is sleep's report that its interrupt channel closed.
var errInterrupted = errors.New("retry: wait interrupted")

// sleep waits d, or until ctx ends (returning ctx's error) or interrupt closes (returning
// errInterrupted). A nil interrupt never fires.
func sleep(ctx context.Context, d time.Duration, interrupt <-chan struct{}) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-interrupt:
		return errInterrupted
	case <-t.C:
		return nil
	}
}

func stopCause(ctxErr error) StopReason {
	if errors.Is(ctxErr, context.DeadlineExceeded) {
		return StopDeadline
	}
	return StopCancelled
}
