package retry_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/retry"
)

// TestServerHint checks decision 1: a positive RetryInfo hint is the wait, never shorter,
// plus up to HintJitter more; no hint (absent, zero, negative) means the backoff.
func TestServerHint(t *testing.T) {
	tests := []struct {
		name       string
		policy     retry.Policy
		err        error
		wantWait   time.Duration // exact wait, when HintJitter is 0
		wantHint   bool
		wantCalls  int
		wantPassed time.Duration
	}{
		{
			name: "hint 30s honoured twice", policy: noJitter(5), err: withHint(30 * time.Second),
			wantWait: 30 * time.Second, wantHint: true, wantCalls: 3, wantPassed: 60 * time.Second,
		},
		{
			name: "hint from a real status", policy: noJitter(5), err: rpcUnavailable(30 * time.Second),
			wantWait: 30 * time.Second, wantHint: true, wantCalls: 3, wantPassed: 60 * time.Second,
		},
		{
			name: "hint shorter than the backoff wins",
			policy: func() retry.Policy {
				p := noJitter(5)
				p.InitialBackoff, p.MaxBackoff = 10*time.Second, 10*time.Second
				return p
			}(),
			err: withHint(time.Second), wantWait: time.Second, wantHint: true, wantCalls: 3, wantPassed: 2 * time.Second,
		},
		{
			name: "hint longer than the backoff wins", policy: noJitter(5), err: withHint(5 * time.Second),
			wantWait: 5 * time.Second, wantHint: true, wantCalls: 3, wantPassed: 10 * time.Second,
		},
		{
			name: "hint equal to MaxRetryDelay is honoured", policy: noJitter(5), err: withHint(30 * time.Second),
			wantWait: 30 * time.Second, wantHint: true, wantCalls: 3, wantPassed: 60 * time.Second,
		},
		{
			name: "hint 1ns", policy: noJitter(5), err: withHint(1),
			wantWait: 1, wantHint: true, wantCalls: 3, wantPassed: 2,
		},
		{
			name: "hint zero means backoff", policy: noJitter(5), err: withHint(0),
			wantWait: 200 * time.Millisecond, wantCalls: 2, wantPassed: 200 * time.Millisecond,
		},
		{
			name: "hint negative means backoff", policy: noJitter(5), err: withHint(-5 * time.Second),
			wantWait: 200 * time.Millisecond, wantCalls: 2, wantPassed: 200 * time.Millisecond,
		},
		{
			name: "no hint means backoff", policy: noJitter(5), err: unavailable(),
			wantWait: 200 * time.Millisecond, wantCalls: 2, wantPassed: 200 * time.Millisecond,
		},
		{
			name: "no hint on a real status means backoff", policy: noJitter(5), err: rpcUnavailable(0),
			wantWait: 200 * time.Millisecond, wantCalls: 2, wantPassed: 200 * time.Millisecond,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				op := failThen(tt.wantCalls-1, tt.err)
				var ev events
				start := time.Now()
				if err := retry.Do(t.Context(), tt.policy, op.op, retry.WithHooks(ev.hooks())); err != nil {
					t.Fatalf("Do() = %v, want nil", err)
				}
				if got := time.Since(start); got != tt.wantPassed {
					t.Errorf("virtual time passed = %v, want %v", got, tt.wantPassed)
				}
				if got := op.calls(); got != tt.wantCalls {
					t.Errorf("op calls = %d, want %d", got, tt.wantCalls)
				}
				for i, g := range op.gaps() {
					if i == 0 && g != tt.wantWait {
						t.Errorf("wait before attempt %d = %v, want %v", i+2, g, tt.wantWait)
					}
					if tt.wantHint && g != tt.wantWait {
						t.Errorf("wait before attempt %d = %v, want the hint %v", i+2, g, tt.wantWait)
					}
				}
				for i, e := range ev.retries {
					if e.FromHint != tt.wantHint {
						t.Errorf("RetryEvent[%d].FromHint = %v, want %v", i, e.FromHint, tt.wantHint)
					}
				}
			})
		})
	}
}

// TestHintJitter checks that a hint is never shortened and grows by at most HintJitter,
// and that the jitter does vary (clients with the same hint do not return in lockstep).
func TestHintJitter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const hint = 30 * time.Second
		p := retry.DefaultPolicy()
		p.MaxAttempts = 41
		op := failThen(40, withHint(hint))
		if err := retry.Do(t.Context(), p, op.op); err != nil {
			t.Fatalf("Do() = %v, want nil", err)
		}
		maxWait := hint + time.Duration(float64(hint)*p.HintJitter)
		distinct := map[time.Duration]bool{}
		for i, g := range op.gaps() {
			if g < hint || g > maxWait {
				t.Errorf("wait %d = %v, want in [%v, %v]", i+1, g, hint, maxWait)
			}
			distinct[g] = true
		}
		if len(distinct) < 10 {
			t.Errorf("40 hinted waits took %d distinct values, want jitter to spread them", len(distinct))
		}
	})
}

// TestHintTooLong checks decision 2: a hint above MaxRetryDelay is returned at once, with
// its retry delay readable.
func TestHintTooLong(t *testing.T) {
	tests := []struct {
		name string
		err  *errs.Error
		max  time.Duration
	}{
		{"client-made", withHint(31 * time.Second), 30 * time.Second},
		{"real status", rpcUnavailable(time.Hour), 30 * time.Second},
		{"MaxRetryDelay 1ns refuses every longer hint", withHint(2), 1},
		{"hint too large for time.Duration", withHint(math.MaxInt64), 30 * time.Second},
		{"hint too large for time.Duration, longest MaxRetryDelay", withHint(math.MaxInt64), 24 * time.Hour},
		{"hint from a RetryInfo too large for time.Duration", rpcHugeHint(), 24 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := retry.DefaultPolicy()
				p.MaxRetryDelay = tt.max
				op := failThen(1, tt.err)
				var ev events
				start := time.Now()
				err := retry.Do(t.Context(), p, op.op, retry.WithHooks(ev.hooks()))
				if got := time.Since(start); got != 0 {
					t.Errorf("virtual time passed = %v, want 0", got)
				}
				re := asRetryError(t, err)
				if re.Attempts() != 1 || op.calls() != 1 {
					t.Errorf("Attempts() = %d, op calls %d; want 1, 1", re.Attempts(), op.calls())
				}
				if re.StopReason() != retry.StopHintTooLong {
					t.Errorf("StopReason() = %v, want %v", re.StopReason(), retry.StopHintTooLong)
				}
				want, _ := tt.err.RetryDelay()
				var e *errs.Error
				if !errors.As(err, &e) {
					t.Fatalf("errors.As(%v, *errs.Error) = false, want true", err)
				}
				if d, ok := e.RetryDelay(); !ok || d != want {
					t.Errorf("RetryDelay() = %v, %v; want %v, true", d, ok, want)
				}
				if len(ev.retries) != 0 || len(ev.stops) != 1 || ev.stops[0].Reason != retry.StopHintTooLong {
					t.Errorf("hooks: %d retries, stops %v; want 0 retries, one stop (hint too long)", len(ev.retries), ev.stops)
				}
			})
		})
	}
}

// TestDeadlineFirst checks decision 3: a wait that would end at or after the caller's
// deadline is not started; the caller gets the real error at once.
func TestDeadlineFirst(t *testing.T) {
	tests := []struct {
		name       string
		deadline   time.Duration
		policy     retry.Policy
		err        error
		wantCalls  int
		wantPassed time.Duration
		wantCause  retry.StopReason // 0: success
	}{
		{
			name: "hint 20s, deadline 10s", deadline: 10 * time.Second, policy: noJitter(5),
			err: rpcUnavailable(20 * time.Second), wantCalls: 1, wantPassed: 0, wantCause: retry.StopDeadline,
		},
		{
			name: "hint ending exactly at the deadline", deadline: 10 * time.Second, policy: noJitter(5),
			err: rpcUnavailable(10 * time.Second), wantCalls: 1, wantPassed: 0, wantCause: retry.StopDeadline,
		},
		{
			name: "hint ending just before the deadline", deadline: 10 * time.Second, policy: noJitter(2),
			err: rpcUnavailable(10*time.Second - 1), wantCalls: 2, wantPassed: 10*time.Second - 1, wantCause: retry.StopExhausted,
		},
		{
			name: "backoff would pass the deadline", deadline: 2500 * time.Millisecond,
			policy: func() retry.Policy {
				p := noJitter(5)
				p.InitialBackoff = time.Second
				return p
			}(),
			err: rpcUnavailable(0), wantCalls: 2, wantPassed: time.Second, wantCause: retry.StopDeadline,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), tt.deadline)
				defer cancel()
				op := failThen(100, tt.err)
				start := time.Now()
				err := retry.Do(ctx, tt.policy, op.op)
				if got := time.Since(start); got != tt.wantPassed {
					t.Errorf("virtual time passed = %v, want %v", got, tt.wantPassed)
				}
				if op.calls() != tt.wantCalls {
					t.Errorf("op calls = %d, want %d", op.calls(), tt.wantCalls)
				}
				re := asRetryError(t, err)
				if re.StopReason() != tt.wantCause {
					t.Errorf("StopReason() = %v, want %v", re.StopReason(), tt.wantCause)
				}
				if got := status.Code(err); got != codes.Unavailable {
					t.Errorf("status.Code(err) = %v, want %v (the real error, not DeadlineExceeded)", got, codes.Unavailable)
				}
				if errors.Is(err, context.DeadlineExceeded) {
					t.Errorf("errors.Is(err, context.DeadlineExceeded) = true, want false: the deadline has not passed")
				}
				if re.Last() != tt.err {
					t.Errorf("Last() = %v, want the op's error", re.Last())
				}
			})
		})
	}
}

// TestCallerContextNeverRetried checks that a failure after the caller's context ended is
// not retried, whatever its kind.
func TestCallerContextNeverRetried(t *testing.T) {
	for _, tt := range []struct {
		name      string
		end       func(context.Context) (context.Context, context.CancelFunc)
		wantCause retry.StopReason
		wantIs    error
	}{
		{
			name:      "cancelled",
			end:       func(ctx context.Context) (context.Context, context.CancelFunc) { return context.WithCancel(ctx) },
			wantCause: retry.StopCancelled, wantIs: context.Canceled,
		},
		{
			name: "deadline",
			end: func(ctx context.Context) (context.Context, context.CancelFunc) {
				return context.WithTimeout(ctx, time.Hour)
			},
			wantCause: retry.StopDeadline, wantIs: context.DeadlineExceeded,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx, cancel := tt.end(t.Context())
				defer cancel()
				if tt.wantCause == retry.StopCancelled {
					time.AfterFunc(time.Minute, cancel)
				}
				calls := 0
				// A misbehaving op that reports a retryable kind when its context ends.
				op := func(ctx context.Context) error {
					calls++
					<-ctx.Done()
					return unavailable()
				}
				err := retry.Do(ctx, retry.DefaultPolicy(), op)
				if calls != 1 {
					t.Errorf("op calls = %d, want 1", calls)
				}
				re := asRetryError(t, err)
				if re.StopReason() != tt.wantCause {
					t.Errorf("StopReason() = %v, want %v", re.StopReason(), tt.wantCause)
				}
				if !errors.Is(err, tt.wantIs) {
					t.Errorf("errors.Is(err, %v) = false, want true", tt.wantIs)
				}
				if !errors.Is(err, errs.ErrSandboxUnavailable) {
					t.Errorf("errors.Is(err, ErrSandboxUnavailable) = false, want true")
				}
			})
		})
	}
}

// TestCancelDuringWait checks decision 5: cancellation during a wait returns at that
// instant with codes.Canceled, context.Canceled and the last RPC error reachable.
func TestCancelDuringWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		const cancelAt = 7 * time.Second
		time.AfterFunc(cancelAt, cancel)
		rpcErr := rpcUnavailable(30 * time.Second)
		op := failThen(100, rpcErr)
		var ev events
		start := time.Now()
		err := retry.Do(ctx, retry.DefaultPolicy(), op.op, retry.WithHooks(ev.hooks()))
		if got := time.Since(start); got != cancelAt {
			t.Errorf("Do returned after %v, want %v (the cancel instant)", got, cancelAt)
		}
		if op.calls() != 1 {
			t.Errorf("op calls = %d, want 1", op.calls())
		}
		if got := status.Code(err); got != codes.Canceled {
			t.Errorf("status.Code(err) = %v, want %v", got, codes.Canceled)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("errors.Is(err, context.Canceled) = false, want true")
		}
		if !errors.Is(err, errs.ErrSandboxUnavailable) {
			t.Errorf("errors.Is(err, ErrSandboxUnavailable) = false, want true")
		}
		re := asRetryError(t, err)
		if re.Last() != rpcErr {
			t.Errorf("Last() = %v, want the RPC error", re.Last())
		}
		if re.StopReason() != retry.StopCancelled || re.Attempts() != 1 || re.TotalWait() != cancelAt {
			t.Errorf("StopReason, Attempts, TotalWait = %v, %d, %v; want %v, 1, %v",
				re.StopReason(), re.Attempts(), re.TotalWait(), retry.StopCancelled, cancelAt)
		}
		if status.Code(re.Last()) != codes.Unavailable {
			t.Errorf("status.Code(Last()) = %v, want %v", status.Code(re.Last()), codes.Unavailable)
		}
		if len(ev.stops) != 1 || ev.stops[0].Reason != retry.StopCancelled {
			t.Errorf("OnStop events = %v, want one with cause cancelled", ev.stops)
		}
	})
}

// TestMaxElapsed checks that a wait that would end at or past MaxElapsed, counted from the
// first failure, is not started.
func TestMaxElapsed(t *testing.T) {
	tests := []struct {
		name       string
		maxElapsed time.Duration
		multiplier float64
		opTakes    time.Duration
		wantCalls  int
		wantPassed time.Duration
	}{
		// Waits 1s, 2s, 4s: the third would end at 7s > 5s.
		{name: "third wait too long", maxElapsed: 5 * time.Second, multiplier: 2, wantCalls: 3, wantPassed: 3 * time.Second},
		// The second wait would end exactly at 3s: at MaxElapsed is too late.
		{name: "wait ending exactly at MaxElapsed", maxElapsed: 3 * time.Second, multiplier: 2, wantCalls: 2, wantPassed: time.Second},
		// Attempts take 2s, waits 1s; first failure at 2s. Second wait ends at 6s, 4s after
		// the first failure (< 5s); the third would end at 9s, 7s after it.
		{name: "counted from the first failure", maxElapsed: 5 * time.Second, multiplier: 1, opTakes: 2 * time.Second, wantCalls: 3, wantPassed: 8 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := noJitter(10)
				p.InitialBackoff, p.MaxBackoff, p.Multiplier, p.MaxElapsed = time.Second, time.Minute, tt.multiplier, tt.maxElapsed
				calls := 0
				op := func(context.Context) error {
					calls++
					time.Sleep(tt.opTakes)
					return unavailable()
				}
				start := time.Now()
				err := retry.Do(t.Context(), p, op)
				if got := time.Since(start); got != tt.wantPassed {
					t.Errorf("virtual time passed = %v, want %v", got, tt.wantPassed)
				}
				re := asRetryError(t, err)
				if calls != tt.wantCalls || re.Attempts() != tt.wantCalls {
					t.Errorf("op calls %d, Attempts() %d; want %d", calls, re.Attempts(), tt.wantCalls)
				}
				if re.StopReason() != retry.StopMaxElapsed {
					t.Errorf("StopReason() = %v, want %v", re.StopReason(), retry.StopMaxElapsed)
				}
			})
		})
	}
}

// TestPerAttemptTimeout checks decision 4: an attempt that ran out of its own timeout while
// the caller's context is alive is retried; one cut by the caller's deadline is not.
func TestPerAttemptTimeout(t *testing.T) {
	// blocks until its context ends, then reports it as a gRPC op would.
	blocking := func(calls *int) func(context.Context) error {
		return func(ctx context.Context) error {
			*calls++
			<-ctx.Done()
			return status.FromContextError(ctx.Err()).Err()
		}
	}
	t.Run("own timeout is retried", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := noJitter(3)
			p.PerAttemptTimeout = time.Second
			calls := 0
			start := time.Now()
			err := retry.Do(t.Context(), p, blocking(&calls))
			// 3 attempts of 1s, waits 200ms and 400ms.
			if got, want := time.Since(start), 3600*time.Millisecond; got != want {
				t.Errorf("virtual time passed = %v, want %v", got, want)
			}
			re := asRetryError(t, err)
			if calls != 3 || re.Attempts() != 3 || re.StopReason() != retry.StopExhausted {
				t.Errorf("op calls %d, Attempts() %d, StopReason() %v; want 3, 3, %v", calls, re.Attempts(), re.StopReason(), retry.StopExhausted)
			}
			if status.Code(err) != codes.DeadlineExceeded {
				t.Errorf("status.Code(err) = %v, want %v", status.Code(err), codes.DeadlineExceeded)
			}
		})
	})
	t.Run("caller deadline is not retried", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := noJitter(5)
			p.PerAttemptTimeout = time.Second
			ctx, cancel := context.WithTimeout(t.Context(), 1500*time.Millisecond)
			defer cancel()
			calls := 0
			start := time.Now()
			err := retry.Do(ctx, p, blocking(&calls))
			// Attempt 1 times out at 1s (retried), wait 200ms, attempt 2 cut at 1.5s.
			if got, want := time.Since(start), 1500*time.Millisecond; got != want {
				t.Errorf("virtual time passed = %v, want %v", got, want)
			}
			re := asRetryError(t, err)
			if calls != 2 || re.Attempts() != 2 || re.StopReason() != retry.StopDeadline {
				t.Errorf("op calls %d, Attempts() %d, StopReason() %v; want 2, 2, %v", calls, re.Attempts(), re.StopReason(), retry.StopDeadline)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("errors.Is(err, context.DeadlineExceeded) = false, want true")
			}
		})
	})
	t.Run("caller deadline shorter than the attempt timeout", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := noJitter(5)
			p.PerAttemptTimeout = time.Minute
			ctx, cancel := context.WithTimeout(t.Context(), time.Second)
			defer cancel()
			calls := 0
			err := retry.Do(ctx, p, blocking(&calls))
			re := asRetryError(t, err)
			if calls != 1 || re.StopReason() != retry.StopDeadline {
				t.Errorf("op calls %d, StopReason() %v; want 1, %v", calls, re.StopReason(), retry.StopDeadline)
			}
		})
	})
	t.Run("each attempt gets its own deadline", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := noJitter(3)
			p.PerAttemptTimeout = time.Second
			var deadlines []time.Duration
			start := time.Now()
			op := func(ctx context.Context) error {
				d, ok := ctx.Deadline()
				if !ok {
					t.Errorf("attempt context has no deadline")
				}
				deadlines = append(deadlines, d.Sub(start))
				if len(deadlines) < 3 {
					return unavailable()
				}
				return nil
			}
			if err := retry.Do(t.Context(), p, op); err != nil {
				t.Fatalf("Do() = %v, want nil", err)
			}
			want := []time.Duration{time.Second, 1200 * time.Millisecond, 1600 * time.Millisecond}
			if fmt.Sprint(deadlines) != fmt.Sprint(want) {
				t.Errorf("attempt deadlines = %v, want %v", deadlines, want)
			}
		})
	})
	t.Run("fast non-retryable failure is not retried", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := noJitter(5)
			p.PerAttemptTimeout = time.Second
			op := failThen(5, notFound())
			err := retry.Do(t.Context(), p, op.op)
			if re := asRetryError(t, err); op.calls() != 1 || re.StopReason() != retry.StopNotRetryable {
				t.Errorf("op calls %d, StopReason() %v; want 1, %v", op.calls(), re.StopReason(), retry.StopNotRetryable)
			}
		})
	})
	// A server enforces the timeout the transport sent, perhaps truncated to a coarser
	// unit: its DEADLINE_EXCEEDED may come a little before the client's own deadline.
	serverDeadline := func(after time.Duration, calls *int) func(context.Context) error {
		return func(ctx context.Context) error {
			*calls++
			time.Sleep(after)
			return status.Error(codes.DeadlineExceeded, "deadline exceeded on the server")
		}
	}
	t.Run("a server's DEADLINE_EXCEEDED within a millisecond of the attempt's deadline is its own", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := noJitter(3)
			p.PerAttemptTimeout = time.Second
			calls := 0
			err := retry.Do(t.Context(), p, serverDeadline(999500*time.Microsecond, &calls))
			if re := asRetryError(t, err); calls != 3 || re.StopReason() != retry.StopExhausted {
				t.Errorf("op calls %d, StopReason() %v; want 3, %v", calls, re.StopReason(), retry.StopExhausted)
			}
		})
	})
	t.Run("a server's DEADLINE_EXCEEDED well before the attempt's deadline is not", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := noJitter(3)
			p.PerAttemptTimeout = time.Second
			calls := 0
			err := retry.Do(t.Context(), p, serverDeadline(998*time.Millisecond, &calls))
			if re := asRetryError(t, err); calls != 1 || re.StopReason() != retry.StopNotRetryable {
				t.Errorf("op calls %d, StopReason() %v; want 1, %v", calls, re.StopReason(), retry.StopNotRetryable)
			}
		})
	})
	t.Run("success first time", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := noJitter(5)
			p.PerAttemptTimeout = time.Second
			op := failThen(0, nil)
			if err := retry.Do(t.Context(), p, op.op); err != nil || op.calls() != 1 {
				t.Errorf("Do() = %v after %d calls, want nil after 1", err, op.calls())
			}
		})
	})
}

// TestBackoffSequence checks the backoff without jitter: min(Initial*Multiplier^(n-1), Max),
// measured as virtual time between attempts.
func TestBackoffSequence(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name         string
		initial, max time.Duration
		multiplier   float64
		want         []time.Duration
	}{
		{"default", 200 * ms, 5 * time.Second, 2, []time.Duration{200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 5000 * ms, 5000 * ms, 5000 * ms, 5000 * ms}},
		{"constant", time.Second, time.Second, 1, []time.Duration{time.Second, time.Second, time.Second, time.Second}},
		{"triple", 100 * ms, time.Second, 3, []time.Duration{100 * ms, 300 * ms, 900 * ms, 1000 * ms, 1000 * ms}},
		{"one and a half", 100 * ms, time.Second, 1.5, []time.Duration{100 * ms, 150 * ms, 225 * ms, 337500 * time.Microsecond, 506250 * time.Microsecond, 759375 * time.Microsecond, 1000 * ms}},
		{"huge multiplier", time.Second, time.Hour, math.MaxFloat64, []time.Duration{time.Second, time.Hour, time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := noJitter(len(tt.want) + 1)
				p.InitialBackoff, p.MaxBackoff, p.Multiplier = tt.initial, tt.max, tt.multiplier
				op := failThen(100, unavailable())
				var ev events
				err := retry.Do(t.Context(), p, op.op, retry.WithHooks(ev.hooks()))
				if fmt.Sprint(op.gaps()) != fmt.Sprint(tt.want) {
					t.Errorf("waits = %v, want %v", op.gaps(), tt.want)
				}
				var sum time.Duration
				for i, e := range ev.retries {
					sum += e.Delay
					if e.Delay != tt.want[i] || e.FromHint || e.Attempt != i+1 {
						t.Errorf("RetryEvent[%d] = attempt %d, delay %v, hint %v; want %d, %v, false", i, e.Attempt, e.Delay, e.FromHint, i+1, tt.want[i])
					}
				}
				if re := asRetryError(t, err); re.TotalWait() != sum {
					t.Errorf("TotalWait() = %v, want %v", re.TotalWait(), sum)
				}
			})
		})
	}
}

// TestBackoffAfterHint checks that the backoff keeps counting retries when some used a
// hint: the n-th retry's backoff is Initial*Multiplier^(n-1).
func TestBackoffAfterHint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		op := newScript(withHint(3*time.Second), unavailable(), withHint(time.Second), unavailable(), nil)
		if err := retry.Do(t.Context(), noJitter(5), op.op); err != nil {
			t.Fatalf("Do() = %v, want nil", err)
		}
		want := []time.Duration{3 * time.Second, 400 * time.Millisecond, time.Second, 1600 * time.Millisecond}
		if fmt.Sprint(op.gaps()) != fmt.Sprint(want) {
			t.Errorf("waits = %v, want %v", op.gaps(), want)
		}
	})
}

// TestJitterBounds checks that every wait is within [nominal*(1-Jitter),
// nominal*(1+Jitter)] of the nominal backoff, and that jitter is applied on both sides, also
// at nanosecond scale where rounding matters.
func TestJitterBounds(t *testing.T) {
	tests := []struct {
		name         string
		initial, max time.Duration
		multiplier   float64
		jitter       float64
	}{
		{"default jitter", 100 * time.Millisecond, 10 * time.Second, 1.5, 0.2},
		{"full jitter", 100 * time.Millisecond, 10 * time.Second, 2, 1},
		{"nanoseconds", 3, 3, 1, 0.5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := retry.DefaultPolicy()
				p.MaxAttempts, p.InitialBackoff, p.MaxBackoff, p.Multiplier, p.Jitter = 20, tt.initial, tt.max, tt.multiplier, tt.jitter
				var below, above, n int
				for range 50 {
					op := failThen(100, unavailable())
					_ = retry.Do(t.Context(), p, op.op)
					nominal := p.InitialBackoff
					for i, g := range op.gaps() {
						// cenkalti/backoff draws from [lo, hi+1ns) and truncates to whole
						// nanoseconds: its rounding may move a wait by 1ns either way.
						lo, hi := float64(nominal)*(1-p.Jitter)-1, float64(nominal)*(1+p.Jitter)+1
						if float64(g) < lo || float64(g) > hi || (g == 0 && p.Jitter < 1) {
							t.Fatalf("wait %d = %v, want in [%v, %v] (nominal %v)", i+1, g, lo, hi, nominal)
						}
						if g < nominal {
							below++
						} else if g > nominal {
							above++
						}
						n++
						nominal = min(time.Duration(float64(nominal)*p.Multiplier), p.MaxBackoff)
					}
				}
				t.Logf("%d waits: %d below nominal, %d above", n, below, above)
				if n != 50*19 || below < n/5 || above < n/5 {
					t.Errorf("%d waits, %d below and %d above nominal; want 950, jitter on both sides", n, below, above)
				}
			})
		})
	}
}

// TestNoOverflow checks the arithmetic at attempt 1000, on the 24h boundaries.
func TestNoOverflow(t *testing.T) {
	const day = 24 * time.Hour
	tests := []struct {
		name         string
		initial, max time.Duration
		multiplier   float64
		jitter       float64
	}{
		{"24h constant", day, day, 2, 0.2},
		{"1ns to 24h", 1, day, 10, 0.2},
		{"huge multiplier", time.Millisecond, day, math.MaxFloat64, 0.2},
		{"full jitter", time.Hour, day, 2, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := retry.DefaultPolicy()
				p.MaxAttempts, p.InitialBackoff, p.MaxBackoff, p.Multiplier, p.Jitter = 1000, tt.initial, tt.max, tt.multiplier, tt.jitter
				p.MaxRetryDelay = day
				op := failThen(1000, unavailable())
				start := time.Now()
				err := retry.Do(t.Context(), p, op.op)
				re := asRetryError(t, err)
				if re.Attempts() != 1000 || re.StopReason() != retry.StopExhausted {
					t.Fatalf("Attempts() = %d, StopReason() = %v; want 1000, %v", re.Attempts(), re.StopReason(), retry.StopExhausted)
				}
				limit := time.Duration(float64(p.MaxBackoff) * (1 + p.Jitter))
				var sum time.Duration
				for i, g := range op.gaps() {
					if g < 0 || (g == 0 && p.Jitter < 1) || g > limit {
						t.Fatalf("wait %d = %v, want in (0, %v]", i+1, g, limit)
					}
					sum += g
				}
				if re.TotalWait() != sum || time.Since(start) != sum {
					t.Errorf("TotalWait() = %v, elapsed %v; want both %v", re.TotalWait(), time.Since(start), sum)
				}
			})
		})
	}
}
