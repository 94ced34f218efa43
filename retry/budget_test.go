package retry_test

import (
	"context"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/retry"
)

func TestNewRatioBudget(t *testing.T) {
	tests := []struct {
		name    string
		ratio   float64
		floor   float64
		window  time.Duration
		wantErr string // "" for no error
	}{
		{"default values", 0.2, 10, 10 * time.Second, ""},
		{"lower bounds", 0, 0, 10 * time.Millisecond, ""},
		{"upper bounds", 1000, 1e6, time.Hour, ""},
		{"ratio negative", -0.1, 10, 10 * time.Second, "ratio"},
		{"ratio above 1000", 1000.5, 10, 10 * time.Second, "ratio"},
		{"ratio NaN", math.NaN(), 10, 10 * time.Second, "ratio"},
		{"ratio +Inf", math.Inf(1), 10, 10 * time.Second, "ratio"},
		{"floor negative", 0.2, -1, 10 * time.Second, "floor"},
		{"floor above 1e6", 0.2, 1e6 + 1, 10 * time.Second, "floor"},
		{"floor NaN", 0.2, math.NaN(), 10 * time.Second, "floor"},
		{"floor +Inf", 0.2, math.Inf(1), 10 * time.Second, "floor"},
		{"window too short", 0.2, 10, 10*time.Millisecond - 1, "window"},
		{"window zero", 0.2, 10, 0, "window"},
		{"window negative", 0.2, 10, -time.Second, "window"},
		{"window too long", 0.2, 10, time.Hour + 1, "window"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := retry.NewRatioBudget(tt.ratio, tt.floor, tt.window)
			if tt.wantErr == "" {
				if err != nil || b == nil {
					t.Errorf("NewRatioBudget(%v, %v, %v) = %v, %v; want a budget", tt.ratio, tt.floor, tt.window, b, err)
				}
				return
			}
			if err == nil || b != nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewRatioBudget(%v, %v, %v) = %v, %v; want nil and an error about the %s", tt.ratio, tt.floor, tt.window, b, err, tt.wantErr)
			}
		})
	}
}

func TestNewTokenBucket(t *testing.T) {
	tests := []struct {
		name    string
		max     float64
		ratio   float64
		wantErr string
	}{
		{"typical", 10, 0.1, ""},
		{"upper bounds", 1000, 1, ""},
		{"small", 0.001, 0.001, ""},
		{"below a thousandth", 0.0001, 0.0001, ""},
		{"size zero", 0, 0.1, "size"},
		{"size negative", -1, 0.1, "size"},
		{"size above 1000", 1000.5, 0.1, "size"},
		{"size NaN", math.NaN(), 0.1, "size"},
		{"size +Inf", math.Inf(1), 0.1, "size"},
		{"ratio zero", 10, 0, "ratio"},
		{"ratio negative", 10, -0.1, "ratio"},
		{"ratio above 1", 10, 1.1, "ratio"},
		{"ratio NaN", 10, math.NaN(), "ratio"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := retry.NewTokenBucket(tt.max, tt.ratio)
			if tt.wantErr == "" {
				if err != nil || b == nil {
					t.Fatalf("NewTokenBucket(%v, %v) = %v, %v; want a bucket", tt.max, tt.ratio, b, err)
				}
				want := max(0.001, math.Round(tt.max*1000)/1000) // three decimals, at least 0.001
				if retry.Tokens(b) != want {
					t.Errorf("NewTokenBucket(%v, %v).Tokens() = %v, want %v (full)", tt.max, tt.ratio, retry.Tokens(b), want)
				}
				// A failure takes a token; a success must give some back, however small
				// the ratio.
				b.Record(true, retry.OutcomeRetryable)
				before := retry.Tokens(b)
				b.Record(true, retry.OutcomeSucceeded)
				if retry.Tokens(b) <= before {
					t.Errorf("NewTokenBucket(%v, %v): a success left Tokens() at %v, want a refill", tt.max, tt.ratio, retry.Tokens(b))
				}
				return
			}
			if err == nil || b != nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("NewTokenBucket(%v, %v) = %v, %v; want nil and an error about the %s", tt.max, tt.ratio, b, err, tt.wantErr)
			}
		})
	}
}

// TestTokenBucketUnit checks gRFC A6 arithmetic on the bucket itself.
func TestTokenBucketUnit(t *testing.T) {
	b, err := retry.NewTokenBucket(10, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	step := func(name string, f func(), wantTokens float64, wantAllow bool) {
		t.Helper()
		f()
		if got := retry.Tokens(b); math.Abs(got-wantTokens) > 1e-9 {
			t.Errorf("%s: Tokens() = %v, want %v", name, got, wantTokens)
		}
		if got := b.Allow(); got != wantAllow {
			t.Errorf("%s: Allow() = %v, want %v", name, got, wantAllow)
		}
	}
	times := func(n int, first bool, o retry.Outcome) func() {
		return func() {
			for range n {
				b.Record(first, o)
			}
		}
	}
	step("full", func() {}, 10, true)
	step("success when full", times(3, true, retry.OutcomeSucceeded), 10, true)
	step("final failures cost nothing", times(20, true, retry.OutcomeFinal), 10, true)
	step("4 retryable failures", times(4, true, retry.OutcomeRetryable), 6, true)
	step("Allow takes nothing", func() { b.Allow(); b.Allow() }, 6, true)
	step("exactly half left", times(1, false, retry.OutcomeRetryable), 5, false)
	step("one success", times(1, false, retry.OutcomeSucceeded), 5.1, true)
	step("down to zero", times(20, false, retry.OutcomeRetryable), 0, false)
	step("refill by 10 successes", times(10, true, retry.OutcomeSucceeded), 1, false)
	step("refill past half", times(41, true, retry.OutcomeSucceeded), 5.1, true)
	step("refill to the top", times(1000, true, retry.OutcomeSucceeded), 10, true)
}

// TestTokenBucketRetries checks the bucket through a Retrier: retries stop once half the
// tokens are gone, and successes refill it.
func TestTokenBucketRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b, err := retry.NewTokenBucket(10, 0.1)
		if err != nil {
			t.Fatal(err)
		}
		r, err := retry.New(noJitter(100), retry.WithBudget(b))
		if err != nil {
			t.Fatal(err)
		}
		call := func(op *script) (attempts int, cause retry.StopReason) {
			err := r.Do(t.Context(), op.op)
			if err == nil {
				return op.calls(), 0
			}
			re := asRetryError(t, err)
			return re.Attempts(), re.StopReason()
		}
		// 10 tokens; each failure takes one; a retry needs more than 5.
		if n, c := call(failThen(100, unavailable())); n != 5 || c != retry.StopBudget {
			t.Errorf("first failing call: %d attempts, %v; want 5, %v", n, c, retry.StopBudget)
		}
		if retry.Tokens(b) != 5 {
			t.Errorf("Tokens() = %v, want 5", retry.Tokens(b))
		}
		if n, c := call(failThen(100, unavailable())); n != 1 || c != retry.StopBudget {
			t.Errorf("second failing call: %d attempts, %v; want 1, %v", n, c, retry.StopBudget)
		}
		for range 20 {
			if n, c := call(failThen(100, notFound())); n != 1 || c != retry.StopNotRetryable {
				t.Fatalf("not-found call: %d attempts, %v; want 1, %v", n, c, retry.StopNotRetryable)
			}
		}
		if retry.Tokens(b) != 4 {
			t.Errorf("after non-retryable failures Tokens() = %v, want 4 (they cost nothing)", retry.Tokens(b))
		}
		for range 31 {
			if n, _ := call(failThen(0, nil)); n != 1 {
				t.Fatalf("successful call made %d attempts, want 1", n)
			}
		}
		if math.Abs(retry.Tokens(b)-7.1) > 1e-9 {
			t.Errorf("after 31 successes Tokens() = %v, want 7.1", retry.Tokens(b))
		}
		// 7.1 -> 6.1 (retry) -> 5.1 (retry) -> 4.1 (stop).
		if n, c := call(failThen(100, unavailable())); n != 3 || c != retry.StopBudget {
			t.Errorf("failing call after refill: %d attempts, %v; want 3, %v", n, c, retry.StopBudget)
		}
	})
}

// TestRatioBudgetUnit checks the ratio, the floor and the window on the budget itself.
func TestRatioBudgetUnit(t *testing.T) {
	allows := func(b retry.Budget, limit int) int {
		n := 0
		for n < limit && b.Allow() {
			n++
		}
		return n
	}
	record := func(b retry.Budget, n int, first bool) {
		for range n {
			b.Record(first, retry.OutcomeRetryable)
		}
	}
	t.Run("ratio", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b, _ := retry.NewRatioBudget(0.5, 0, 10*time.Second)
			if n := allows(b, 100); n != 0 {
				t.Errorf("empty budget allowed %d retries, want 0", n)
			}
			record(b, 10, true)
			record(b, 50, false) // retries are not calls
			if n := allows(b, 100); n != 5 {
				t.Errorf("after 10 calls allowed %d retries, want 5", n)
			}
			record(b, 4, true)
			if n := allows(b, 100); n != 2 {
				t.Errorf("after 4 more calls allowed %d retries, want 2", n)
			}
		})
	})
	t.Run("floor and window", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b, _ := retry.NewRatioBudget(0, 1, 10*time.Second) // 10 retries per 10s window
			if n := allows(b, 100); n != 10 {
				t.Errorf("floor allowed %d retries, want 10", n)
			}
			time.Sleep(5 * time.Second)
			if n := allows(b, 100); n != 0 {
				t.Errorf("5s later allowed %d retries, want 0 (still in the window)", n)
			}
			time.Sleep(5 * time.Second)
			if n := allows(b, 100); n != 10 {
				t.Errorf("10s later allowed %d retries, want 10 (the first ones left the window)", n)
			}
		})
	})
	t.Run("deposits leave the window", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b, _ := retry.NewRatioBudget(1, 0, 10*time.Second)
			record(b, 10, true)
			if !b.Allow() {
				t.Fatalf("Allow() after 10 calls = false, want true")
			}
			time.Sleep(11 * time.Second)
			if n := allows(b, 100); n != 0 {
				t.Errorf("11s after the calls allowed %d retries, want 0", n)
			}
		})
	})
	t.Run("no burst after a healthy period", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b, _ := retry.NewRatioBudget(0.2, 0, 10*time.Second)
			// 100s of healthy traffic, 100 calls a second, and no retry asked for: the
			// deposits stay pending.
			for range 100 {
				time.Sleep(time.Second)
				for range 100 {
					b.Record(true, retry.OutcomeSucceeded)
				}
			}
			// The outage: only the last window's share may be spent (20% of ~1000 calls),
			// not 20% of the 10000 calls since the start.
			n := allows(b, 10000)
			t.Logf("retries allowed at the start of the outage: %d (a burst would be 2000)", n)
			if n < 180 || n > 200 {
				t.Errorf("allowed %d retries, want about 0.2 x 1000 calls of the last window (180..200)", n)
			}
		})
	})
	t.Run("concurrent use", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			b := retry.DefaultBudget()
			var wg sync.WaitGroup
			var allowed atomic.Int64
			for range 8 {
				wg.Go(func() {
					for range 1000 {
						b.Record(true, retry.OutcomeRetryable)
						if b.Allow() {
							allowed.Add(1)
						}
					}
				})
			}
			wg.Wait()
			// 8000 calls at one virtual instant, every one failing: 20% of them, and no floor
			// (it closes while the client is failing).
			if n := allowed.Load(); n > 1600 || n < 1599 {
				t.Errorf("allowed %d retries for 8000 failing calls, want 1599..1600", n)
			}
		})
	})
}

// TestBudgetUnderOutage checks decision 7: under a fully failing server, 50 concurrent
// callers through one Retrier with the default budget make about 1.2 attempts per call;
// with the budget off, MaxAttempts per call.
func TestBudgetUnderOutage(t *testing.T) {
	const (
		callers        = 50
		callsPerCaller = 100
		latency        = 50 * time.Millisecond // each attempt takes this long to fail
	)
	run := func(t *testing.T, r *retry.Retrier) (calls, attempts int64, elapsed time.Duration, perCall []int) {
		var nAttempts atomic.Int64
		perCall = make([]int, callers*callsPerCaller)
		start := time.Now()
		var wg sync.WaitGroup
		for c := range callers {
			wg.Go(func() {
				for i := range callsPerCaller {
					n := 0
					op := func(context.Context) error {
						n++
						nAttempts.Add(1)
						time.Sleep(latency)
						return errs.New(errs.ErrSandboxUnavailable, "backend down")
					}
					if err := r.Do(context.Background(), op); err == nil {
						t.Errorf("Do() = nil, want an error")
					}
					perCall[c*callsPerCaller+i] = n
				}
			})
		}
		wg.Wait()
		return callers * callsPerCaller, nAttempts.Load(), time.Since(start), perCall
	}

	t.Run("default budget", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r, err := retry.New(retry.DefaultPolicy()) // DefaultBudget: 20% of calls in 10s + 10/s
			if err != nil {
				t.Fatal(err)
			}
			calls, attempts, elapsed, perCall := run(t, r)
			for i, n := range perCall {
				if n < 1 || n > 5 {
					t.Fatalf("call %d made %d attempts, want 1..5", i, n)
				}
			}
			// Bound: the window is 10 buckets of 1s. Cut the run into disjoint 10-bucket
			// windows; in each, retries <= 0.2 x the calls credited to it + 100 (the floor,
			// 10/s x 10s). So retries <= 0.2 x calls + 100 x windows.
			buckets := int64(elapsed/time.Second) + 1
			windows := (buckets + 9) / 10
			maxRetries := 0.2*float64(calls) + 100*float64(windows)
			perCallBound := 1 + maxRetries/float64(calls)
			got := float64(attempts) / float64(calls)
			t.Logf("%d calls, %d attempts in %v virtual: %.4f attempts per call (bound %.4f, %d windows)",
				calls, attempts, elapsed, got, perCallBound, windows)
			if got > perCallBound {
				t.Errorf("attempts per call = %.4f, want <= %.4f", got, perCallBound)
			}
			if got < 1.15 {
				t.Errorf("attempts per call = %.4f, want >= 1.15: the budget should be spent", got)
			}
		})
	})
	t.Run("budget off", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r, err := retry.New(retry.DefaultPolicy(), retry.WithBudget(nil))
			if err != nil {
				t.Fatal(err)
			}
			calls, attempts, _, perCall := run(t, r)
			for i, n := range perCall {
				if n != 5 {
					t.Fatalf("call %d made %d attempts, want 5 (MaxAttempts)", i, n)
				}
			}
			if attempts != 5*calls {
				t.Errorf("attempts = %d, want %d", attempts, 5*calls)
			}
		})
	})
	t.Run("Do has no budget", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var total atomic.Int64
			var wg sync.WaitGroup
			for range callers {
				wg.Go(func() {
					for range 10 {
						op := func(context.Context) error { total.Add(1); return unavailable() }
						_ = retry.Do(context.Background(), retry.DefaultPolicy(), op)
					}
				})
			}
			wg.Wait()
			if got := total.Load(); got != callers*10*5 {
				t.Errorf("attempts = %d, want %d (MaxAttempts for every call)", got, callers*10*5)
			}
		})
	})
}

// TestBudgetSpentOnlyByRetries checks that non-retryable failures, and failures that stop
// for another reason, do not spend the budget.
func TestBudgetSpentOnlyByRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		// No floor (it closes while a call keeps failing): 2.5% of the 201 calls below, 5 retries.
		b, _ := retry.NewRatioBudget(0.025, 0, 10*time.Second)
		r, err := retry.New(noJitter(10), retry.WithBudget(b))
		if err != nil {
			t.Fatal(err)
		}
		for range 100 {
			_ = r.Do(t.Context(), failThen(1, notFound()).op)
			_ = r.Do(t.Context(), failThen(1, withHint(time.Hour)).op) // hint too long
		}
		op := failThen(100, unavailable())
		err = r.Do(t.Context(), op.op)
		if re := asRetryError(t, err); re.Attempts() != 6 || re.StopReason() != retry.StopBudget {
			t.Errorf("Attempts, Cause = %d, %v; want 6 (5 retries), %v", re.Attempts(), re.StopReason(), retry.StopBudget)
		}
	})
}
