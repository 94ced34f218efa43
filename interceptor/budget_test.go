package interceptor_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/retry"
)

// TestBudget: 50 concurrent callers, 20 calls each, against a server that always answers
// UNAVAILABLE. The budget shared by the interceptor bounds the retries of all of them;
// without a budget every call makes MaxAttempts attempts.
func TestBudget(t *testing.T) {
	const (
		callers     = 50
		perCaller   = 20
		calls       = callers * perCaller
		maxAttempts = 5
	)
	tokens, err := retry.NewTokenBucket(10, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		budget func() retry.Budget // built inside the bubble: budgets read the clock
		// maxRetries bounds the retries of all calls together, given the virtual time the
		// run took; -1: exactly MaxAttempts-1 per call.
		maxRetries func(elapsed time.Duration) int
	}{
		{
			name:   "default ratio budget",
			budget: func() retry.Budget { return retry.DefaultBudget() },
			// 20% of the calls in the 10 s window plus 10 per second of window: with the whole
			// run inside one window, 0.2*calls + 100.
			maxRetries: func(elapsed time.Duration) int {
				if elapsed >= 9*time.Second {
					t.Fatalf("run took %v of virtual time, want one budget window", elapsed)
				}
				return calls/5 + 100
			},
		},
		{
			name:   "gRFC A6 token bucket",
			budget: func() retry.Budget { return tokens },
			// 10 tokens, retries allowed above 5: every failure takes one token, so at most 4
			// retries before the bucket is at half.
			maxRetries: func(time.Duration) int { return 4 },
		},
		{
			name:       "no budget",
			budget:     func() retry.Budget { return nil },
			maxRetries: func(time.Duration) int { return -1 },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := retry.DefaultPolicy()
				p.MaxAttempts, p.InitialBackoff, p.Jitter = maxAttempts, 10*time.Millisecond, 0
				e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(p, retry.WithBudget(tc.budget())))))
				e.srv.FailAlways(getSandbox, unavailable())

				var mu sync.Mutex
				perCall := make(map[int]int) // attempts -> calls
				causes := make(map[retry.StopReason]int)
				start := time.Now()
				var wg sync.WaitGroup
				for range callers {
					wg.Go(func() {
						for range perCaller {
							_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
							var re *retry.Error
							if !errors.As(err, &re) || !errors.Is(err, errs.ErrSandboxUnavailable) {
								t.Errorf("GetSandbox error = %v (%T), want a *retry.Error of SandboxUnavailableError", err, err)
								return
							}
							mu.Lock()
							perCall[re.Attempts()]++
							causes[re.StopReason()]++
							mu.Unlock()
						}
					})
				}
				wg.Wait()
				elapsed := time.Since(start)

				total := e.srv.Calls(getSandbox)
				retries := total - calls
				t.Logf("%d calls, %d attempts (%.3f per call) in %v virtual; calls by attempts %v; stop causes %v",
					calls, total, float64(total)/calls, elapsed, perCall, causes)
				sum := 0
				for n, c := range perCall {
					sum += n * c
				}
				if sum != total {
					t.Errorf("attempts reported by the errors = %d, server calls = %d", sum, total)
				}
				switch max := tc.maxRetries(elapsed); {
				case max < 0:
					if perCall[maxAttempts] != calls || total != calls*maxAttempts {
						t.Errorf("calls by attempts = %v, server calls = %d; want all %d calls with %d attempts",
							perCall, total, calls, maxAttempts)
					}
				case retries > max:
					t.Errorf("retries = %d, want <= %d", retries, max)
				case causes[retry.StopBudget] == 0:
					t.Errorf("no call stopped for the budget: %v", causes)
				}
			})
		})
	}
}
