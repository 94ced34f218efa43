package retry

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/ended"
	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/internal/seam"
)

// tracker is the retry state of one logical call: [Retrier.Do]'s, and the one the
// transports drive through internal/engine.
type tracker struct {
	r      *Retrier
	method string
	conn   engine.Conn
	target string // conn's target, once an event needed it

	attempt int  // attempts made in the current burst of failures, the current one included
	skipped int  // attempts of the burst's schedule spent waiting for the connection
	total   int  // attempts made by the call, resumes included
	burst   bool // a burst after the first (a resumed stream): the budget is not told of a call
	bo      *backoff.ExponentialBackOff
	start   time.Time // the burst's first failure, for MaxElapsed
	waited  time.Duration

	due    time.Time          // the current attempt's own deadline, under PerAttemptTimeout
	cancel context.CancelFunc // releases the current attempt's own context

	earlier error // the last failure that was not the caller's doing
	done    bool  // the hooks were told the call is over
}

// track returns the tracker of a call whose first attempt is about to be made or was made.
func (r *Retrier) track(method string, conn engine.Conn) *tracker {
	return &tracker{r: r, method: method, conn: conn, attempt: 1, total: 1}
}

// first reports whether the current attempt is the call's first.
func (t *tracker) first() bool { return t.attempt == 1 && !t.burst }

func (t *tracker) Attempt() int { return t.total }

func (t *tracker) Context(ctx context.Context) context.Context {
	if t.r.policy.PerAttemptTimeout <= 0 {
		return ctx
	}
	t.release()
	actx, cancel := context.WithTimeout(ctx, t.r.policy.PerAttemptTimeout)
	t.due, _ = actx.Deadline()
	t.cancel = cancel
	return actx
}

// release cancels the current attempt's own context, if it has one.
func (t *tracker) release() {
	if t.cancel != nil {
		t.cancel()
		t.due, t.cancel = time.Time{}, nil
	}
}

// targetName returns the events' Target.
func (t *tracker) targetName() string {
	if t.target == "" && t.conn != nil {
		t.target = t.conn.Target()
	}
	return t.target
}

func (t *tracker) Succeeded(ctx context.Context) {
	t.release()
	t.Committed()
	t.succeededHooks(ctx)
}

func (t *tracker) Committed() {
	t.r.record(t.first(), OutcomeSucceeded)
	if t.r.throttle != nil {
		t.r.throttle.record(true, false)
	}
}

func (t *tracker) End(ctx context.Context) {
	t.release()
	t.succeededHooks(ctx)
}

// Failed decides about the failure err of the current attempt (see [Retrier.Do] for the
// rules), waits when another attempt is to be made and returns nil, or returns the call's
// final error.
func (t *tracker) Failed(ctx context.Context, err error, f engine.Facts) error {
	own := t.ownTimeout(ctx, err)
	t.release()
	if f.Reported {
		t.burst = true // the call's first attempt was counted when it succeeded
	}
	if final := t.over(ctx, err); final != nil {
		return final
	}
	t.earlier = err
	if f.Progressed {
		t.restart()
	}
	fl := t.failure(err, f, own)
	now := time.Now()
	d := t.r.policy.decide(fl, t.schedule(ctx, now))
	t.r.record(t.first(), outcome(f, d.stop))
	if d.stop == 0 {
		d.stop = t.r.admitRetry(d.spend)
	}
	if d.stop != 0 {
		return t.stopWith(ctx, err, d.stop)
	}
	if h := t.r.hooks.OnRetry; h != nil {
		h(ctx, RetryEvent{Method: t.method, Target: t.targetName(), Attempt: t.total, Err: err,
			Delay: d.wait, FromHint: d.fromHint, Resumed: f.Resume})
	}
	if werr := t.wait(ctx, d.wait, now); werr != nil {
		return t.waitEnded(ctx, err, werr)
	}
	t.attempt++
	t.total++
	return nil
}

// ownTimeout reports whether the attempt ran out of the policy's own PerAttemptTimeout while
// the caller's context lives: its deadline passed, or err is a DEADLINE_EXCEEDED that came
// near it (ended.Near). The deadline is read off the clock, not off the attempt's context,
// for the reason given at ended.Err.
func (t *tracker) ownTimeout(ctx context.Context, err error) bool {
	if t.due.IsZero() || ended.Err(ctx) != nil {
		return false
	}
	return !time.Now().Before(t.due) || status.Code(err) == codes.DeadlineExceeded && ended.Near(t.due)
}

// over returns the call's final error when err ends the call whatever the policy says: it
// comes from another faultline loop that already gave up, it is the throttle's shedding of
// the first attempt, or the caller's context has ended. It returns nil otherwise.
func (t *tracker) over(ctx context.Context, err error) *Error {
	if inner, ok := errors.AsType[*Error](err); ok {
		// Another faultline loop (a second installation, or an SDK retrying inside this
		// call) already retried and gave up: attempts must not multiply.
		t.r.record(t.first(), OutcomeFinal)
		t.done = true
		return inner
	}
	if errors.Is(err, ErrThrottled) && t.total == 1 {
		// The first attempt was shed by the throttle: nothing was sent.
		return t.stop(ctx, newError(err, 0, 0, StopThrottled, nil, false))
	}
	if ctxErr := ended.Err(ctx); ctxErr != nil {
		t.r.record(t.first(), OutcomeFinal)
		e := newError(err, t.total, t.waited, stopCause(ctxErr), ctxErr, false)
		e.earlier = t.earlier
		return t.stop(ctx, e)
	}
	return nil
}

// failure returns what decide needs to know of err, and tells the throttle, if any, of the
// attempt.
func (t *tracker) failure(err error, f engine.Facts, own bool) failure {
	e := t.r.facts(err)
	var facts seam.Facts
	if e != nil {
		facts = seam.FactsOf.(func(*errs.Error) seam.Facts)(e)
	}
	if t.r.throttle != nil && !f.Reported {
		t.r.throttle.record(!f.NotSent, !f.NotSent && !facts.Local && !facts.Transport && overloaded(e))
	}
	return failure{err: err, e: e, f: f, local: facts.Local, own: own}
}

// schedule returns where the call stands in the policy's schedule at now, drawing the
// backoff of the next retry.
func (t *tracker) schedule(ctx context.Context, now time.Time) schedule {
	if t.start.IsZero() {
		t.start = now
	}
	if t.bo == nil {
		t.bo = t.r.newBackoff()
	}
	remaining := time.Duration(-1)
	if deadline, ok := ctx.Deadline(); ok {
		remaining = max(deadline.Sub(now), 0)
	}
	return schedule{
		attempt:   t.attempt + t.skipped,
		skipped:   t.skipped,
		backoff:   max(t.bo.NextBackOff(), 1),
		jitter:    rand.Float64(),
		elapsed:   now.Sub(t.start),
		remaining: remaining,
	}
}

// outcome is what the budget is told of a failed attempt that stops with c (0: retried).
func outcome(f engine.Facts, c StopReason) Outcome {
	switch {
	case f.NotSent:
		return OutcomeNotSent
	case c.final():
		return OutcomeFinal
	}
	return OutcomeRetryable
}

// admitRetry asks the throttle and then the budget (when the retry spends it) for a retry: 0
// when both let it go, or the reason it stops. The throttle comes first: a budget that
// allows a retry counts it as made, and one the throttle shed is not.
func (r *Retrier) admitRetry(spend bool) StopReason {
	if r.throttle != nil && !r.throttle.admit(true) {
		return StopThrottled
	}
	if spend && r.budget != nil && !r.budget.Allow() {
		return StopBudget
	}
	return 0
}

// waitEnded returns the call's final error when the wait before the next attempt ended
// with werr instead of the attempt.
func (t *tracker) waitEnded(ctx context.Context, err, werr error) *Error {
	switch werr {
	case errClosed:
		return t.stopWith(ctx, err, StopCancelled)
	case errMaxElapsed:
		return t.stopWith(ctx, err, StopMaxElapsed)
	}
	return t.stop(ctx, newError(err, t.total, t.waited, stopCause(werr), werr, true))
}

// restart starts a new burst of failures, for a call that made progress since its last
// failure (a resumed stream that delivered messages): the attempt count, the backoff and
// MaxElapsed start over, while the time waited keeps adding up.
func (t *tracker) restart() {
	t.attempt, t.skipped, t.bo, t.start, t.burst = 1, 0, nil, time.Time{}, true
}

// overloaded reports whether e is a rejection for overload the server may have sent:
// RESOURCE_EXHAUSTED or UNAVAILABLE (the caller rules out the client's and the
// connection's own failures).
func overloaded(e *errs.Error) bool {
	return e != nil && (e.Code() == codes.ResourceExhausted || e.Code() == codes.Unavailable)
}

// stopWith ends the call with the last attempt's error err and reason c.
func (t *tracker) stopWith(ctx context.Context, err error, c StopReason) *Error {
	return t.stop(ctx, newError(err, t.total, t.waited, c, nil, false))
}

// stop reports the final error e to the hooks and returns it.
func (t *tracker) stop(ctx context.Context, e *Error) *Error {
	t.release()
	t.stopHooks(ctx, e, e.attempts, e.cause)
	return e
}

// stopHooks tells OnDone that the call ended with err after attempts attempts.
func (t *tracker) stopHooks(ctx context.Context, err error, attempts int, c StopReason) {
	t.done = true
	if h := t.r.hooks.OnDone; h != nil {
		h(ctx, DoneEvent{Method: t.method, Target: t.targetName(), Attempts: attempts, TotalWait: t.waited, Reason: c, Err: err})
	}
}

// succeededHooks tells OnDone, once, that the call succeeded, when it retried.
func (t *tracker) succeededHooks(ctx context.Context) {
	if t.done {
		return
	}
	t.done = true
	if h := t.r.hooks.OnDone; h != nil && t.total > 1 {
		h(ctx, DoneEvent{Method: t.method, Target: t.targetName(), Attempts: t.total, TotalWait: t.waited})
	}
}

func (r *Retrier) record(first bool, o Outcome) {
	if r.budget != nil {
		r.budget.Record(first, o)
	}
}

// admit asks the throttle, if any, to let a first attempt go: nil, or the error of the
// attempt it sheds.
func (r *Retrier) admit() error {
	if r.throttle != nil && !r.throttle.admit(false) {
		return throttled{}
	}
	return nil
}

// succeeded reports that a call's first attempt succeeded.
func (r *Retrier) succeeded() {
	r.record(true, OutcomeSucceeded)
	if r.throttle != nil {
		r.throttle.record(true, false)
	}
}

func stopCause(ctxErr error) StopReason {
	if errors.Is(ctxErr, context.DeadlineExceeded) {
		return StopDeadline
	}
	return StopCancelled
}
