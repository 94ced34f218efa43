package retry

import (
	"context"
	"errors"
	"reflect"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/engine"
)

// An Option configures a [Retrier]. The last option for a setting wins, except
// [WithHooks], whose sets combine.
type Option interface {
	// apply returns r with the option set. It takes and returns a value, not a pointer, so
	// that [Do] can build its Retrier on the stack.
	apply(r Retrier) Retrier
}

type budgetOption struct{ b Budget }

func (o budgetOption) apply(r Retrier) Retrier {
	r.budget = o.b
	if v := reflect.ValueOf(o.b); o.b != nil && v.Kind() == reflect.Pointer && v.IsNil() {
		r.budget = nil // a nil pointer of a Budget type: off, as nil says
	}
	return r
}

type throttleOption struct{ t *AdaptiveThrottle }

func (o throttleOption) apply(r Retrier) Retrier { r.throttle = o.t; return r }

type hooksOption struct{ h Hooks }

func (o hooksOption) apply(r Retrier) Retrier { r.hooks = joinHooks(r.hooks, o.h); return r }

type classifyFuncOption struct{ f func(error) *errs.Error }

func (o classifyFuncOption) apply(r Retrier) Retrier { r.classify = o.f; return r }

type idempotencyOption struct{ l Idempotency }

func (o idempotencyOption) apply(r Retrier) Retrier { r.level = o.l; return r }

// WithIdempotency says what running the operations of [Retrier.Do] and [Do] twice does: a
// NotIdempotent operation is retried only when the server declined the work (RetryInfo or a
// trusted transient reason); a NeverRetry one is never retried. Default: IdempotencyUnknown,
// retried like an idempotent operation. Package interceptor resolves each call's level
// itself and ignores this option.
func WithIdempotency(l Idempotency) Option { return idempotencyOption{l} }

// WithBudget sets the retry budget shared by every call through the Retrier; nil (or a nil
// pointer of a Budget type) turns budgeting off. Default: a new [DefaultBudget] per Retrier
// built by [New], none for [Do].
func WithBudget(b Budget) Option { return budgetOption{b} }

// WithThrottle turns on client-side adaptive throttling with t, shared by every call
// through the Retrier (see [AdaptiveThrottle]); nil turns it off. Default: off.
func WithThrottle(t *AdaptiveThrottle) Option { return throttleOption{t} }

// WithHooks adds a set of hooks, called when a retry is scheduled and when a call that
// retried or failed is done; several WithHooks combine, called in the order given. Default:
// none.
func WithHooks(h Hooks) Option { return hooksOption{h} }

// WithClassifyFunc sets how the loop reads a failure's kind and server hint when the error is
// not already an *errs.Error (for example classify.Classify, when op returns raw gRPC
// errors). The error op returned is what the caller gets, unchanged. Default: none; the
// error is matched as it is.
func WithClassifyFunc(f func(error) *errs.Error) Option { return classifyFuncOption{f} }

// Retrier runs operations under one policy, one budget, one throttle and one set of hooks.
// It is immutable and safe for concurrent use. Package interceptor takes one to configure
// its retries (interceptor.WithRetrier).
type Retrier struct {
	policy   Policy
	budget   Budget
	throttle *AdaptiveThrottle
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

// WithPolicy returns a Retrier like r, sharing its budget, throttle and hooks, under policy
// p. It returns an error matching [ErrInvalidPolicy] when p is not valid.
func (r *Retrier) WithPolicy(p Policy) (*Retrier, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	c := *r
	c.policy = p
	return &c, nil
}

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
	// r stays on the stack for a first attempt that succeeds; it is copied to the heap only
	// when a retry may follow (the tracker keeps it).
	var err error
	if p.PerAttemptTimeout <= 0 { // else the first attempt needs the tracker's context
		if err = r.admit(); err == nil {
			if err = op(ctx); err == nil {
				r.succeeded()
				return nil
			}
		}
	}
	h := new(Retrier)
	*h = r
	return h.track("", nil).run(ctx, op, err)
}

// Do calls op until it succeeds or the policy says stop, and returns nil or an [*Error].
//
// A failure is retried when the caller's context is alive, it is not already the final error
// of another retry loop (an *Error: retries never nest), its kind is retried by the policy
// (RetryOn, or a family base kind with a transient code or reason; or its attempt ran out of
// PerAttemptTimeout), a RESOURCE_EXHAUSTED carries a server signal (RetryInfo or a trusted
// transient reason), repeating it is safe at the operation's [Idempotency], attempts
// remain, its server hint is not above MaxRetryDelay, the wait ends before ctx's deadline
// and within MaxElapsed, and the budget (and the throttle, if any) allows it. The wait is the
// server hint when positive (plus up to HintJitter more), otherwise the backoff. ctx ending
// during a wait returns at once. op gets ctx, or a child of it bounded by PerAttemptTimeout.
//
// On success the first time, Do allocates nothing and reads no error details.
func (r *Retrier) Do(ctx context.Context, op func(context.Context) error) error {
	var err error
	if r.policy.PerAttemptTimeout <= 0 {
		if err = r.admit(); err == nil {
			if err = op(ctx); err == nil {
				r.succeeded()
				return nil
			}
		}
	}
	return r.track("", nil).run(ctx, op, err)
}

// run makes op's attempts until one succeeds or the policy says stop. err, when not nil, is
// the failure of the first attempt, already made (or shed by the throttle); when nil, the
// first attempt is made here, under the tracker's context.
func (t *tracker) run(ctx context.Context, op func(context.Context) error, err error) error {
	f := engine.Facts{Level: uint8(t.r.level)}
	if err == nil && t.r.policy.PerAttemptTimeout > 0 {
		err = t.r.admit()
	}
	for {
		if err == nil {
			if err = op(t.Context(ctx)); err == nil {
				t.Succeeded(ctx)
				return nil
			}
		}
		if stop := t.Failed(ctx, err, f); stop != nil {
			return stop
		}
		err = nil
	}
}

// facts returns the classified form of err, for its kind and hint.
func (r *Retrier) facts(err error) *errs.Error {
	if e, ok := errors.AsType[*errs.Error](err); ok {
		return e
	}
	if r.classify != nil {
		return r.classify(err)
	}
	return nil
}

// MustNew is [New] for policies known to be valid (literals, DefaultPolicy with changes a
// test or a program makes at start-up): it panics with New's error when p is not valid.
func MustNew(p Policy, opts ...Option) *Retrier {
	r, err := New(p, opts...)
	if err != nil {
		panic(err)
	}
	return r
}
