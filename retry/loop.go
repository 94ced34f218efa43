package retry

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"time"

	"github.com/cenkalti/backoff/v4"
	"google.golang.org/grpc/codes"

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
	over    bool  // the hooks were told the call is over
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
	// The attempt's own deadline is read off the clock, not off its context, for the reason
	// given at ended.Err.
	own := !t.due.IsZero() && !time.Now().Before(t.due) && ended.Err(ctx) == nil
	t.release()
	r, p := t.r, &t.r.policy
	var inner *Error
	if errors.As(err, &inner) {
		// Another faultline loop (a second installation, or an SDK retrying inside this
		// call) already retried and gave up: attempts must not multiply.
		r.record(t.first(), OutcomeFinal)
		t.over = true
		return inner
	}
	if errors.Is(err, ErrThrottled) && t.total == 1 {
		// The first attempt was shed by the throttle: nothing was sent.
		return t.stop(ctx, newError(err, 0, 0, StopThrottled, nil, false))
	}
	if ctxErr := ended.Err(ctx); ctxErr != nil {
		r.record(t.first(), OutcomeFinal)
		e := newError(err, t.total, t.waited, stopCause(ctxErr), ctxErr, false)
		e.earlier = t.earlier
		return t.stop(ctx, e)
	}
	t.earlier = err
	if f.Progressed {
		t.restart()
	}

	e := r.facts(err)
	local := e != nil && seam.FactsOf.(func(*errs.Error) seam.Facts)(e).Local
	if r.throttle != nil {
		r.throttle.record(!f.NotSent, !f.NotSent && !local && overloaded(e))
	}
	now := time.Now()
	if t.start.IsZero() {
		t.start = now
	}
	if t.bo == nil {
		t.bo = r.newBackoff()
	}
	remaining := time.Duration(-1)
	if deadline, ok := ctx.Deadline(); ok {
		remaining = max(deadline.Sub(now), 0)
	}
	d := p.decide(failure{err: err, e: e, f: f, local: local, own: own}, schedule{
		attempt:   t.attempt + t.skipped,
		skipped:   t.skipped,
		backoff:   max(t.bo.NextBackOff(), 1),
		jitter:    rand.Float64(),
		elapsed:   now.Sub(t.start),
		remaining: remaining,
	})
	switch {
	case f.NotSent:
		r.record(t.first(), OutcomeNotSent)
	case d.stop.final():
		r.record(t.first(), OutcomeFinal)
	default:
		r.record(t.first(), OutcomeRetryable)
	}
	if d.stop != 0 {
		return t.stopWith(ctx, err, d.stop)
	}
	if d.spend && r.budget != nil && !r.budget.Allow() {
		return t.stopWith(ctx, err, StopBudget)
	}
	if r.throttle != nil && !r.throttle.admit(true) {
		return t.stopWith(ctx, err, StopThrottled)
	}
	if r.hooks.OnRetry != nil {
		r.hooks.OnRetry(ctx, RetryEvent{Method: t.method, Target: t.targetName(), Attempt: t.total, Err: err,
			Delay: d.wait, FromHint: d.fromHint, Resumed: f.Resume})
	}
	switch werr := t.wait(ctx, d.wait, now); {
	case werr == errClosed:
		return t.stopWith(ctx, err, StopCancelled)
	case werr == errMaxElapsed:
		return t.stopWith(ctx, err, StopMaxElapsed)
	case werr != nil:
		return t.stop(ctx, newError(err, t.total, t.waited, stopCause(werr), werr, true))
	}
	t.attempt++
	t.total++
	return nil
}

// restart starts a new burst of failures, for a call that made progress since its last
// failure (a resumed stream that delivered messages): the attempt count, the backoff and
// MaxElapsed start over, while the time waited keeps adding up.
func (t *tracker) restart() {
	t.attempt, t.skipped, t.bo, t.start, t.burst = 1, 0, nil, time.Time{}, true
}

// overloaded reports whether e is a rejection for overload the server may have sent:
// RESOURCE_EXHAUSTED or UNAVAILABLE.
func overloaded(e *errs.Error) bool {
	return e != nil && (e.Code() == codes.ResourceExhausted || e.Code() == codes.Unavailable)
}

// failure is what decide knows of one failed attempt.
type failure struct {
	err   error       // as the attempt returned it
	e     *errs.Error // its classified form, nil if it has none
	f     engine.Facts
	local bool // the client produced it and would again
	own   bool // it ran out of the policy's own PerAttemptTimeout while the caller's context lives
}

// schedule is where the call stands in the policy's schedule.
type schedule struct {
	attempt   int           // the burst's attempts, the failed one and those skipped included
	skipped   int           // of those, the ones spent waiting for the connection
	backoff   time.Duration // the backoff drawn for the next retry
	jitter    float64       // a draw from [0, 1) for the hint's jitter
	elapsed   time.Duration // since the burst's first failure
	remaining time.Duration // until the caller's deadline; negative for none
}

// decision is what decide makes of a failure: stop, or wait and retry.
type decision struct {
	stop     StopReason // 0: retry
	wait     time.Duration
	fromHint bool
	spend    bool // the retry spends the budget
}

// final reports whether a stop reason says the failure itself is not to be repeated (as
// opposed to a retryable failure the loop ran out of room for): the budget is told so.
func (c StopReason) final() bool {
	switch c {
	case StopNotRetryable, StopNoServerSignal, StopUnsafe, StopLocalFailure:
		return true
	}
	return false
}

// decide applies the policy's rules to a failure, in the order package doc gives. It is a
// pure function of its arguments: the clock and the random draws are in s.
func (p *Policy) decide(fl failure, s schedule) decision {
	if fl.local {
		return decision{stop: StopLocalFailure}
	}
	var code codes.Code
	var signal bool // the server declined the work: RetryInfo, or a trusted transient reason
	if fl.e != nil {
		_, hint := fl.e.RetryDelay()
		code, signal = fl.e.Code(), hint || transient(fl.e)
	}
	if !fl.own && !p.retries(fl.err, fl.e, signal) {
		return decision{stop: StopNotRetryable}
	}
	if code == codes.ResourceExhausted && !signal {
		return decision{stop: StopNoServerSignal}
	}
	if !fl.f.NotSent { // an attempt that never reached a transport ran nothing
		switch l := Idempotency(fl.f.Level); {
		case l == NeverRetry:
			return decision{stop: StopUnsafe}
		case (l == NotIdempotent || l == IdempotencyUnknown && fl.f.Headers) && !signal:
			return decision{stop: StopUnsafe}
		}
	}
	if fl.f.NotResumable {
		return decision{stop: StopNotResumable}
	}
	if s.attempt >= p.MaxAttempts {
		if s.skipped > 0 && fl.f.NotSent {
			// The schedule went to waiting for a connection that never became ready.
			return decision{stop: StopNotReady}
		}
		return decision{stop: StopExhausted}
	}
	d := decision{wait: s.backoff, spend: !fl.f.NotSent && !fl.f.Progressed}
	if fl.e != nil {
		if hint, ok := fl.e.RetryDelay(); ok && hint > 0 {
			if hint > p.MaxRetryDelay {
				return decision{stop: StopHintTooLong}
			}
			d.wait, d.fromHint = jitterUp(hint, p.HintJitter, s.jitter), true
		}
	}
	if s.remaining >= 0 && d.wait >= s.remaining {
		return decision{stop: StopDeadline}
	}
	if p.MaxElapsed > 0 && s.elapsed+d.wait >= p.MaxElapsed {
		return decision{stop: StopMaxElapsed}
	}
	return d
}

// retries reports whether the policy retries err by its kind: a kind in RetryOn, or a
// family base kind (the classifier could name nothing more specific) with a transient code
// or a trusted transient reason; or, for a policy with RetryCodes, by its code alone.
func (p *Policy) retries(err error, e *errs.Error, signal bool) bool {
	if p.RetryCodes != 0 {
		return e != nil && p.RetryCodes.has(e.Code())
	}
	if p.RetryOn.match(err) || e != nil && p.RetryOn.match(e) {
		return true
	}
	if e == nil {
		return false
	}
	switch e.Kind() {
	case errs.ErrCWSandbox, errs.ErrSandbox, errs.ErrDiscovery:
		return p.TransientCodes.has(e.Code()) || transient(e)
	}
	return false
}

// transient reports whether a trusted ErrorInfo reason declared e transient, as its
// classifier found.
func transient(e *errs.Error) bool {
	return seam.FactsOf.(func(*errs.Error) seam.Facts)(e).Transient
}

var (
	errClosed     = errors.New("retry: connection closed")
	errMaxElapsed = errors.New("retry: max elapsed time while waiting for the connection")
)

// wait waits d from now before the next attempt, then, while the connection is not ready,
// for it to become ready: each further stretch of the policy's backoff schedule it waits is
// an attempt of the burst spent, bounded by MaxElapsed and the caller's deadline. When only
// the last attempt of the schedule is left, that attempt is made whatever the connection's
// state: a server that is gone fails the call within the schedule, after at most
// MaxAttempts attempts, with the connection's own error, and every retry the hooks were
// told of is an attempt made. It returns nil to go on; ctx's error when ctx ended;
// errClosed when the connection was closed; errMaxElapsed when MaxElapsed ran out.
func (t *tracker) wait(ctx context.Context, d time.Duration, now time.Time) error {
	var closed <-chan struct{}
	if t.conn != nil {
		closed = t.conn.Closed()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		t.waited += time.Since(now)
		return ctx.Err()
	case <-closed:
		t.waited += time.Since(now)
		return errClosed
	case <-timer.C:
		t.waited += d
	}
	if t.conn == nil {
		return nil
	}
	if ready, _ := t.conn.Ready(); ready {
		return nil
	}
	start := time.Now()
	defer func() { t.waited += time.Since(start) }()
	p := &t.r.policy
	for {
		ready, changed := t.conn.Ready()
		if ready {
			return nil
		}
		// The connection would fail the attempt fast, or make it wait to connect: spend the
		// schedule's next stretch waiting for it instead of an attempt.
		if t.attempt+t.skipped+1 >= p.MaxAttempts {
			return nil
		}
		t.skipped++
		stretch := max(t.bo.NextBackOff(), 1)
		if p.MaxElapsed > 0 {
			left := p.MaxElapsed - time.Since(t.start)
			if left <= 0 {
				return errMaxElapsed
			}
			stretch = min(stretch, left)
		}
		timer.Reset(stretch)
	waiting:
		for {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-closed:
				return errClosed
			case <-changed:
				if ready, changed = t.conn.Ready(); ready {
					return nil
				}
			case <-timer.C:
				break waiting
			}
		}
	}
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
	t.over = true
	if h := t.r.hooks.OnDone; h != nil {
		h(ctx, DoneEvent{Method: t.method, Target: t.targetName(), Attempts: attempts, TotalWait: t.waited, Reason: c, Err: err})
	}
}

// succeededHooks tells OnDone, once, that the call succeeded, when it retried.
func (t *tracker) succeededHooks(ctx context.Context) {
	if t.over {
		return
	}
	t.over = true
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

// jitterUp returns hint*(1+u*j) for a draw u from [0, 1): never less than the hint.
func jitterUp(hint time.Duration, j, u float64) time.Duration {
	if j <= 0 {
		return hint
	}
	// The extra alone is computed: hint*(1+j) can round up past the true bound in float.
	hi := j * float64(hint)
	extra := time.Duration(math.Round(hi * u))
	if float64(extra) > hi {
		extra = time.Duration(math.Floor(hi))
	}
	return hint + extra
}

func stopCause(ctxErr error) StopReason {
	if errors.Is(ctxErr, context.DeadlineExceeded) {
		return StopDeadline
	}
	return StopCancelled
}
