package retry

import (
	"math"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/internal/seam"
)

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

// decide applies the policy's rules to a failure, in the order package doc gives: whether
// the failure may be repeated at all, then whether the schedule has room for it. It is a
// pure function of its arguments: the clock and the random draws are in s.
func (p *Policy) decide(fl failure, s schedule) decision {
	if c := p.refuses(fl); c != 0 {
		return decision{stop: c}
	}
	return p.fit(fl, s)
}

// refuses returns why the failure is not to be repeated, or 0 when it may be: a local
// failure, a kind the policy does not retry, a RESOURCE_EXHAUSTED without a server signal,
// a method that must not run twice (safety.md), a stream that cannot resume.
func (p *Policy) refuses(fl failure) StopReason {
	if fl.local {
		return StopLocalFailure
	}
	var code codes.Code
	var signal bool // the server declined the work: RetryInfo, or a trusted transient reason
	if fl.e != nil {
		_, hint := fl.e.RetryDelay()
		code, signal = fl.e.Code(), hint || transient(fl.e)
	}
	switch {
	case !fl.own && !p.retries(fl.err, fl.e, signal):
		return StopNotRetryable
	case code == codes.ResourceExhausted && !signal:
		return StopNoServerSignal
	case !fl.f.NotSent && mustNotRepeat(Idempotency(fl.f.Level), fl.f.Headers, signal):
		// (An attempt that never reached a transport ran nothing.)
		return StopUnsafe
	case fl.f.NotResumable:
		return StopNotResumable
	}
	return 0
}

// mustNotRepeat reports whether a failure that may have reached the server must not be repeated
// at level l: never for NeverRetry; for NotIdempotent, and for IdempotencyUnknown once the
// server answered with headers, unless the server declined the work (signal).
func mustNotRepeat(l Idempotency, headers, signal bool) bool {
	switch l {
	case NeverRetry:
		return true
	case NotIdempotent:
		return !signal
	case IdempotencyUnknown:
		return headers && !signal
	}
	return false
}

// fit returns the retry of a failure that may be repeated, with its wait (the server's hint
// or the backoff), or the reason the schedule has no room for it.
func (p *Policy) fit(fl failure, s schedule) decision {
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
	switch {
	case s.remaining >= 0 && d.wait >= s.remaining:
		return decision{stop: StopDeadline}
	case p.MaxElapsed > 0 && s.elapsed+d.wait >= p.MaxElapsed:
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
