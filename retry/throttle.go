package retry

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// AdaptiveThrottle is client-side throttling as Google's SRE book describes it ("Handling
// Overload"): while the server rejects attempts for overload, the client sheds attempts
// itself, first attempts included, so that a fleet whose traffic exceeds a degraded
// server's capacity backs off as a whole instead of spending the server's capacity on
// rejections. Each attempt is shed with probability
//
//	max(0, (requests - K*accepts) / (requests + 1))
//
// over a short sliding window, where requests are the attempts the client made or shed
// (those that never reached the server aside) and accepts those the server did not reject
// for overload. Only a RESOURCE_EXHAUSTED or UNAVAILABLE that the server itself sent
// counts as a rejection: a failure the client produced, an attempt that never reached the
// server, a connection that failed under a call (a reset, a read that hit EOF, a drain: the
// UNAVAILABLE grpc-go makes for them, package classify tells them apart by their words), a
// NOT_FOUND or a validation error are not evidence of overload. The short window makes it recover quickly
// once the server accepts again (within the window, 1 s by default).
//
// The formula needs traffic to mean anything: with few requests in the window, one
// rejection is enough to shed the retry of a client that made one call (1 request, 0
// accepts: half its first attempts, every retry). Turn throttling on for clients with
// steady traffic, as the fleets it is for have.
//
// A call whose first attempt is shed fails with an error matching [ErrThrottled], never
// retried by any faultline loop. While the throttle sheds first attempts, it sheds every
// retry (the least useful load on an overloaded server): the call ends with the last
// attempt's error and stop reason [StopThrottled]. Both reach the hooks.
//
// Build one with [NewAdaptiveThrottle] and give it to a [Retrier] with [WithThrottle]; it
// is safe for concurrent use, and on the success path it costs two clock reads and a few
// atomic operations, no allocation. Throttling is off unless a throttle is given.
type AdaptiveThrottle struct {
	k     float64
	width time.Duration // of one bin
	start time.Time
	bins  [throttleBins]throttleBin
}

const throttleBins = 10

type throttleBin struct {
	slice   atomic.Int64 // the time slice the counts belong to, plus sliceBase; 0 for none yet
	accepts atomic.Int64 // attempts the server did not reject for overload
	rejects atomic.Int64 // attempts the server rejected for overload
	shed    atomic.Int64 // attempts the throttle shed
}

// ErrThrottled is matched (errors.Is) by the error of a call whose first attempt an
// [AdaptiveThrottle] shed: nothing was sent. Its gRPC status is UNAVAILABLE.
var ErrThrottled = errors.New("retry: shed by client-side throttling")

// NewAdaptiveThrottle returns a throttle with multiplier k (the SRE book's K: the client
// sends up to k times as many attempts as the server accepts) over a sliding window.
// Errors: k not in [1, 100] or NaN, window not in [100ms, 1h].
func NewAdaptiveThrottle(k float64, window time.Duration) (*AdaptiveThrottle, error) {
	switch {
	case !(k >= 1 && k <= 100):
		return nil, fmt.Errorf("retry: throttle multiplier is %v, want in [1, 100]", k)
	case window < 100*time.Millisecond || window > time.Hour:
		return nil, fmt.Errorf("retry: throttle window is %v, want in [100ms, 1h]", window)
	}
	return &AdaptiveThrottle{k: k, width: window / throttleBins, start: time.Now()}, nil
}

// DefaultThrottle returns a new [AdaptiveThrottle] with K = 2 over a 1 s window.
func DefaultThrottle() *AdaptiveThrottle {
	t, err := NewAdaptiveThrottle(2, time.Second)
	if err != nil {
		panic(err) // constants
	}
	return t
}

// sliceBase is added to the number of every time slice, so that it is positive even for a
// clock that reads before the throttle's start: a throttle made outside a testing/synctest
// bubble and used inside sees the bubble's clock decades back. A time.Duration spans fewer
// than 2^40 slices of 10 ms, the shortest.
const sliceBase = 1 << 40

// bin returns the bin of the current time slice, cleared if it held an older slice's
// counts. Counts of a slice that races with the clearing may be lost: the throttle is a
// statistic, not a ledger.
func (t *AdaptiveThrottle) bin() *throttleBin {
	s := int64(time.Since(t.start)/t.width) + sliceBase
	b := &t.bins[s%throttleBins]
	if old := b.slice.Load(); old != s && old < s && b.slice.CompareAndSwap(old, s) {
		b.accepts.Store(0)
		b.rejects.Store(0)
		b.shed.Store(0)
	}
	return b
}

// admit reports whether an attempt may be sent, from the requests of the window before it:
// the attempts whose outcome is known (accepted, rejected for overload) and those shed. It
// sheds only while the server rejected attempts in the window: shedding alone does not
// keep it shedding once the server accepts again. A retry is shed whenever first attempts
// may be: it is the least useful load on an overloaded server.
func (t *AdaptiveThrottle) admit(retry bool) bool {
	b := t.bin()
	cur := b.slice.Load()
	var acc, rej, shed int64
	for i := range t.bins {
		o := &t.bins[i]
		if s := o.slice.Load(); s > cur-throttleBins && s <= cur {
			acc += o.accepts.Load()
			rej += o.rejects.Load()
			shed += o.shed.Load()
		}
	}
	if rej == 0 {
		return true // the server rejected nothing lately: shedding alone does not go on
	}
	req := float64(acc + rej + shed)
	if p := (req - t.k*float64(acc)) / (req + 1); p > 0 && (retry || rand.Float64() < p) {
		b.shed.Add(1)
		return false
	}
	return true
}

// record reports how an admitted attempt ended: sent and accepted, sent and rejected for
// overload, or never sent (not evidence either way: not a request).
func (t *AdaptiveThrottle) record(sent, rejected bool) {
	switch {
	case !sent:
	case rejected:
		t.bin().rejects.Add(1)
	default:
		t.bin().accepts.Add(1)
	}
}

// throttled is the error of an attempt the throttle shed.
type throttled struct{}

var throttledStatus = status.New(codes.Unavailable, "shed by client-side throttling: the server rejected most recent attempts for overload")

func (throttled) Error() string              { return throttledStatus.Message() }
func (throttled) GRPCStatus() *status.Status { return throttledStatus }
func (throttled) Is(target error) bool       { return target == ErrThrottled }

// Local marks the error as the client's own doing for classification: its kind is the
// family's base kind, never a transient one.
func (throttled) Local() bool { return true }
