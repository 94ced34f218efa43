package retry

import (
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Outcome is how one attempt ended, as a [Budget] is told.
type Outcome uint8

const (
	// OutcomeSucceeded: the attempt succeeded.
	OutcomeSucceeded Outcome = iota
	// OutcomeRetryable: the attempt failed in a way the policy retries.
	OutcomeRetryable
	// OutcomeFinal: the attempt failed in a way the policy does not retry.
	OutcomeFinal
	// OutcomeNotSent: the attempt failed before it reached the server (the connection was
	// not ready, the stream was never created): no load on the server and no evidence of
	// overload. Its retry spends nothing.
	OutcomeNotSent
)

// A Budget limits retries across calls, so that a failing server is not hit by every
// caller's every retry. One budget is shared by all calls through a [Retrier] (and through
// one interceptor). Implementations must be safe for concurrent use, and Record must be
// cheap and allocation-free: it runs on every call, including successful ones.
type Budget interface {
	// Record reports how an attempt ended; first is true for a call's first attempt (a
	// call is deposited once: a stream that succeeded, for the budget, when its first
	// response reached the caller, and failed later, has that failure recorded with first
	// false).
	Record(first bool, o Outcome)
	// Allow asks to spend budget on one retry; false means the retry is not made. It is
	// asked only for a retry of an attempt that reached (or may have reached) the server:
	// repeating an attempt that was never sent spends nothing.
	Allow() bool
}

// ratioBudget is the budget NewRatioBudget returns.
type ratioBudget struct {
	ratio   float64
	reserve float64 // MinPerSecond x window
	width   time.Duration

	pending atomic.Int64 // first attempts that succeeded, not yet credited to the window

	mu          sync.Mutex
	start       time.Time
	last        int64 // index of the newest bucket
	deposits    [budgetBuckets]float64
	withdrawals [budgetBuckets]float64
	succeeded   [budgetBuckets]float64 // attempts that succeeded
	failed      [budgetBuckets]float64 // attempts the server failed with a retryable failure
}

const budgetBuckets = 10

// NewRatioBudget returns a budget that lets retries add at most a fraction of recent
// traffic, plus a floor, in the style of Finagle's and Linkerd's retry budgets: over a
// sliding window, retries may not exceed ratio x calls + minPerSecond x window length.
// Calls deposit, retries withdraw; failures that are not retried spend nothing, and neither
// does repeating an attempt that was never sent.
//
// The floor lets a quiet, healthy client retry a stray failure; it closes while the client
// is failing ("failures pay", in the spirit of gRFC A6's token bucket): it pays for a retry
// only while, over the last two tenths of the window, the attempts the server answered with
// a retryable failure outnumber those that succeeded by at most two. The ratio part always
// applies, and what the floor paid counts against it. So each client's budget keeps a fleet
// of clients within the ratio during an overload by itself: the ratio composes across
// clients, a floor per client would not (overload.md).
//
// A call's deposit on success is one atomic add. The window is brought up to date under a
// mutex on the error path only (a failure, or a retry asking): the calls counted since the
// previous update are spread evenly over the time since then, and the share that falls
// outside the window is dropped, so a long healthy period does not turn into a burst of
// retries when an outage starts.
//
// Errors: ratio outside [0, 1000] or NaN, minPerSecond negative, NaN or above 1e6, window
// below 10ms or above 1h.
func NewRatioBudget(ratio, minPerSecond float64, window time.Duration) (Budget, error) {
	switch {
	case !(ratio >= 0 && ratio <= 1000):
		return nil, fmt.Errorf("retry: budget ratio is %v, want in [0, 1000]", ratio)
	case !(minPerSecond >= 0 && minPerSecond <= 1e6):
		return nil, fmt.Errorf("retry: budget floor is %v retries per second, want in [0, 1e6]", minPerSecond)
	case window < 10*time.Millisecond || window > time.Hour:
		return nil, fmt.Errorf("retry: budget window is %v, want in [10ms, 1h]", window)
	}
	return &ratioBudget{
		ratio:   ratio,
		reserve: minPerSecond * window.Seconds(),
		width:   window / budgetBuckets,
		start:   time.Now(),
	}, nil
}

// DefaultBudget returns a new budget of 20% of the calls in a 10 s window plus 10 retries
// per second while the client is not failing ([NewRatioBudget]).
func DefaultBudget() Budget {
	b, err := NewRatioBudget(0.2, 10, 10*time.Second)
	if err != nil {
		panic(err) // constants
	}
	return b
}

// Record counts a call's first attempt as a deposit, and the outcomes the floor's health
// check reads: attempts that succeeded, and attempts the server failed with a retryable
// failure (an attempt that was never sent, or failed in a way not retried, is neither).
func (b *ratioBudget) Record(first bool, o Outcome) {
	if first && o == OutcomeSucceeded {
		b.pending.Add(1) // every successful call's path: kept to one atomic add
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	i := b.advance() % budgetBuckets
	if first {
		b.deposits[i]++
	}
	switch o {
	case OutcomeSucceeded:
		b.succeeded[i]++
	case OutcomeRetryable:
		b.failed[i]++
	}
}

// Allow withdraws one retry if the window has room for it.
func (b *ratioBudget) Allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.advance()
	var dep, wd float64
	for i := range budgetBuckets {
		dep += b.deposits[i]
		wd += b.withdrawals[i]
	}
	room := dep*b.ratio - wd
	if b.healthy(now) {
		room += b.reserve
	}
	if room < 1 {
		return false
	}
	b.withdrawals[now%budgetBuckets]++
	return true
}

// floorSlack is how many more retryable failures than successes the recent attempts may
// have while the floor stays open: a client that just started, or had a quiet spell, may
// retry a few failures before the floor closes.
const floorSlack = 2

// healthy reports whether the client is not failing: over the current and the previous
// bucket, retryable failures outnumber successes by at most floorSlack.
func (b *ratioBudget) healthy(now int64) bool {
	cur, prev := now%budgetBuckets, (now+budgetBuckets-1)%budgetBuckets
	return b.failed[cur]+b.failed[prev] <= b.succeeded[cur]+b.succeeded[prev]+floorSlack
}

// advance moves the window to the current bucket, credits the pending successful calls, and
// returns the current bucket's index (not reduced modulo the bucket count).
func (b *ratioBudget) advance() int64 {
	now := int64(time.Since(b.start) / b.width)
	if now < b.last { // the monotonic clock does not go back; be safe anyway
		now = b.last
	}
	gap := now - b.last
	for i := int64(1); i <= min(gap, budgetBuckets); i++ {
		j := (b.last + i) % budgetBuckets
		b.deposits[j], b.withdrawals[j], b.succeeded[j], b.failed[j] = 0, 0, 0, 0
	}
	// The pending calls succeeded in buckets last..now; spread them evenly and keep the
	// share that is still inside the window.
	p := float64(b.pending.Swap(0))
	share := p / float64(gap+1)
	for i := max(b.last, now-budgetBuckets+1); i <= now; i++ {
		b.deposits[i%budgetBuckets] += share
		b.succeeded[i%budgetBuckets] += share
	}
	b.last = now
	return now
}

// tokenBucket is the budget NewTokenBucket returns.
type tokenBucket struct {
	max   int64 // in thousandths of a token
	ratio int64
	milli atomic.Int64
}

// NewTokenBucket returns gRPC's retry throttling (gRFC A6) as a budget: a full bucket of
// maxTokens tokens; each retryable failure the server sent takes one, each success gives
// back ratio; retries are allowed while more than half the tokens remain (the failures pay,
// not the retries). Both numbers are kept to three decimal places, as gRFC A6 says, and at
// least 0.001. Errors: maxTokens outside (0, 1000] or ratio outside (0, 1] (the ranges gRFC
// A6 allows), or NaN.
func NewTokenBucket(maxTokens, ratio float64) (Budget, error) {
	switch {
	case !(maxTokens > 0 && maxTokens <= 1000):
		return nil, fmt.Errorf("retry: token bucket size is %v, want in (0, 1000]", maxTokens)
	case !(ratio > 0 && ratio <= 1):
		return nil, fmt.Errorf("retry: token ratio is %v, want in (0, 1]", ratio)
	}
	// Rounding must not make a tiny size or ratio zero: a zero ratio would never refill.
	t := &tokenBucket{max: max(1, int64(math.Round(maxTokens*1000))), ratio: max(1, int64(math.Round(ratio*1000)))}
	t.milli.Store(t.max)
	return t, nil
}

// Record takes a token for a retryable failure and gives back a fraction for a success;
// an attempt that was never sent, or failed in a way not retried, changes nothing.
func (t *tokenBucket) Record(_ bool, o Outcome) {
	switch o {
	case OutcomeSucceeded:
		for {
			cur := t.milli.Load()
			if cur >= t.max {
				return
			}
			if t.milli.CompareAndSwap(cur, min(t.max, cur+t.ratio)) {
				return
			}
		}
	case OutcomeRetryable:
		for {
			cur := t.milli.Load()
			if cur <= 0 {
				return
			}
			if t.milli.CompareAndSwap(cur, max(0, cur-1000)) {
				return
			}
		}
	}
}

// Allow reports whether more than half the tokens remain. It takes nothing: in gRFC A6 the
// failures pay, not the retries.
func (t *tokenBucket) Allow() bool { return t.milli.Load()*2 > t.max }
