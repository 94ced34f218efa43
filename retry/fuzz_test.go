package retry_test

import (
	"context"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/retry"
)

// fuzzPolicy maps arbitrary inputs onto a policy that should pass Validate, covering the
// whole allowed range: backoffs in [1ns, 24h], any finite positive multiplier (a mult in
// (-1, 0) gives |mult|, below 1; any other 1+|mult|), jitters in [0, 1], MaxRetryDelay in
// [1ns, 24h], 1 to 64 attempts.
func fuzzPolicy(initial, maxBackoff int64, mult, jitter, hintJitter float64, maxDelay int64, attempts uint8) retry.Policy {
	const day = uint64(24 * time.Hour)
	unit := func(x float64) float64 {
		if math.IsNaN(x) {
			return 0
		}
		return min(math.Abs(x), 1)
	}
	p := retry.DefaultPolicy()
	p.MaxAttempts = int(attempts%64) + 1
	ini := uint64(initial)%day + 1
	p.InitialBackoff = time.Duration(ini)
	p.MaxBackoff = time.Duration(ini + uint64(maxBackoff)%(day-ini+1))
	switch {
	case math.IsNaN(mult):
		p.Multiplier = 2
	case mult > -1 && mult < 0:
		p.Multiplier = -mult
	case math.IsInf(1+math.Abs(mult), 0):
		p.Multiplier = math.MaxFloat64
	default:
		p.Multiplier = 1 + math.Abs(mult)
	}
	p.Jitter, p.HintJitter = unit(jitter), unit(hintJitter)
	p.MaxRetryDelay = time.Duration(uint64(maxDelay)%day + 1)
	return p
}

// FuzzWait checks the wait arithmetic through the public API, in virtual time: for random
// valid policies and server hints (attempt i carries the hint when bit i of hintMask is
// set), no wait is negative, a backoff never exceeds MaxBackoff*(1+Jitter) nor falls below
// InitialBackoff*(1-Jitter) (for a Multiplier below 1, InitialBackoff*Multiplier^(n-1)*(1-Jitter)
// before retry n, never below 1ns), a hinted wait is never shorter than the hint nor longer than
// hint*(1+HintJitter), the measured waits are the ones the hooks report, and the loop stops
// for the right reason.
func FuzzWait(f *testing.F) {
	day := int64(24 * time.Hour)
	f.Add(int64(200*time.Millisecond), int64(5*time.Second), 1.0, 0.2, 0.1, int64(30*time.Second), uint8(5), int64(0), uint64(0))
	f.Add(int64(200*time.Millisecond), int64(5*time.Second), 1.0, 0.2, 0.1, int64(30*time.Second), uint8(9), int64(30*time.Second), uint64(0b10101))
	f.Add(int64(0), day, 9.0, 1.0, 1.0, day, uint8(63), int64(time.Hour), uint64(0xAAAA))
	f.Add(int64(2), int64(7), 0.5, 0.5, 0.0, int64(0), uint8(20), int64(5), uint64(1))
	f.Add(day-1, day, math.MaxFloat64, 0.2, 0.1, day, uint8(63), int64(-1), uint64(math.MaxUint64))
	f.Add(int64(0), int64(0), 0.0, 0.3, 0.3, int64(10), uint8(40), int64(1), uint64(math.MaxUint64))
	f.Add(int64(time.Second), int64(time.Second), -0.5, 0.2, 0.1, int64(30*time.Second), uint8(9), int64(0), uint64(0))
	f.Add(int64(3), int64(3), -1e-300, 0.0, 0.0, int64(30*time.Second), uint8(9), int64(0), uint64(0))
	f.Fuzz(func(t *testing.T, initial, maxBackoff int64, mult, jitter, hintJitter float64, maxDelay int64, attempts uint8, hint int64, hintMask uint64) {
		p := fuzzPolicy(initial, maxBackoff, mult, jitter, hintJitter, maxDelay, attempts)
		if err := p.Validate(); err != nil {
			t.Fatalf("Validate(%+v) = %v, want nil", p, err)
		}
		hinted := func(i int) bool { return hintMask>>(i%64)&1 == 1 }
		h := time.Duration(hint)
		synctest.Test(t, func(t *testing.T) {
			var times []time.Time
			var evs []retry.RetryEvent
			op := func(context.Context) error {
				times = append(times, time.Now())
				if hinted(len(times) - 1) {
					return errs.New(errs.ErrSandboxUnavailable, "x", errs.WithRetryDelay(h))
				}
				return errs.New(errs.ErrSandboxUnavailable, "x")
			}
			hooks := retry.Hooks{OnRetry: func(_ context.Context, ev retry.RetryEvent) { evs = append(evs, ev) }}
			err := retry.Do(t.Context(), p, op, retry.WithHooks(hooks))
			re := asRetryError(t, err)
			n := len(times)
			if re.Attempts() != n || len(evs) != n-1 {
				t.Fatalf("%d attempts made, Attempts() = %d, %d OnRetry events; want %d, %d", n, re.Attempts(), len(evs), n, n-1)
			}
			backoffMax := time.Duration(float64(p.MaxBackoff)*(1+p.Jitter)) + 1 // the backoff library's rounding
			backoffMin := float64(p.InitialBackoff)*(1-p.Jitter) - 1            // likewise
			var sum time.Duration
			for i, ev := range evs {
				d := ev.Delay
				if gap := times[i+1].Sub(times[i]); gap != d {
					t.Fatalf("wait %d: measured %v, OnRetry said %v", i+1, gap, d)
				}
				if ev.Attempt != i+1 {
					t.Fatalf("RetryEvent[%d].Attempt = %d, want %d", i, ev.Attempt, i+1)
				}
				if d < 0 {
					t.Fatalf("wait %d = %v, want >= 0", i+1, d)
				}
				sum += d
				if hinted(i) && h > 0 {
					if !ev.FromHint {
						t.Fatalf("wait %d: FromHint false for hint %v", i+1, h)
					}
					if h > p.MaxRetryDelay {
						t.Fatalf("wait %d: hint %v above MaxRetryDelay %v was honoured", i+1, h, p.MaxRetryDelay)
					}
					if d < h || float64(d-h) > p.HintJitter*float64(h) {
						t.Fatalf("wait %d = %v for hint %v, want in [hint, hint*(1+%v)]", i+1, d, h, p.HintJitter)
					}
					continue
				}
				if ev.FromHint {
					t.Fatalf("wait %d: FromHint true without a positive hint", i+1)
				}
				lo := backoffMin
				if p.Multiplier < 1 { // the backoff shrinks: before retry i+1, Initial*Multiplier^i, truncated at each step
					lo = max(1, float64(p.InitialBackoff)*math.Pow(p.Multiplier, float64(i))*(1-p.Jitter)-float64(i)-1)
				}
				if d > backoffMax || float64(d) < lo {
					t.Fatalf("wait %d = %v, want a backoff in [%v, %v] (policy %+v)", i+1, d, time.Duration(lo), backoffMax, p)
				}
			}
			if re.TotalWait() != sum {
				t.Fatalf("TotalWait() = %v, want %v", re.TotalWait(), sum)
			}
			switch {
			case n == p.MaxAttempts:
				if re.StopReason() != retry.StopExhausted {
					t.Fatalf("StopReason() = %v after %d attempts, want %v", re.StopReason(), n, retry.StopExhausted)
				}
			case hinted(n-1) && h > p.MaxRetryDelay:
				if re.StopReason() != retry.StopHintTooLong {
					t.Fatalf("StopReason() = %v, want %v", re.StopReason(), retry.StopHintTooLong)
				}
			default:
				t.Fatalf("stopped after %d of %d attempts with %v", n, p.MaxAttempts, re.StopReason())
			}
		})
	})
}
