package retry_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/retry"
)

// kindOf returns the kind of err's *errs.Error, for printing.
func kindOf(err error) errs.Kind {
	var e *errs.Error
	if errors.As(err, &e) {
		return e.Kind()
	}
	return 0
}

// millisecondPolicy is the default policy with backoffs of 1 ms, then 2 ms, and no jitter,
// for examples on the real clock (their output does not depend on the waits).
func millisecondPolicy() retry.Policy {
	p := retry.DefaultPolicy()
	p.InitialBackoff, p.MaxBackoff, p.Jitter, p.HintJitter = time.Millisecond, 2*time.Millisecond, 0, 0
	return p
}

// Poll a sandbox until it is RUNNING: a sandbox still starting is reported as
// SandboxUnavailableError, which the default policy retries.
func ExampleDo() {
	states := []string{"PENDING", "CREATING", "RUNNING"}
	polls := 0
	getState := func(context.Context) (string, error) {
		s := states[min(polls, len(states)-1)]
		polls++
		return s, nil
	}

	hooks := retry.Hooks{OnRetry: func(_ context.Context, ev retry.RetryEvent) {
		fmt.Printf("attempt %d: %v, retrying\n", ev.Attempt, kindOf(ev.Err))
	}}
	err := retry.Do(context.Background(), millisecondPolicy(), func(ctx context.Context) error {
		state, err := getState(ctx)
		if err != nil {
			return err
		}
		if state != "RUNNING" {
			return errs.New(errs.ErrSandboxUnavailable, "sandbox is "+state, errs.WithResource(errs.Resource{SandboxID: "sb-1"}))
		}
		return nil
	}, retry.WithHooks(hooks))
	fmt.Println("polls:", polls, "err:", err)
	// Output:
	// attempt 1: SandboxUnavailableError, retrying
	// attempt 2: SandboxUnavailableError, retrying
	// polls: 3 err: <nil>
}

// When retrying stops, the error says why, after how many attempts, and still matches the
// last attempt's kind.
func ExampleDo_giveUp() {
	p := millisecondPolicy()
	p.MaxAttempts = 3
	err := retry.Do(context.Background(), p, func(context.Context) error {
		return errs.New(errs.ErrSandboxUnavailable, "backend restarting")
	})
	var re *retry.Error
	if errors.As(err, &re) {
		fmt.Println("attempts:", re.Attempts())
		fmt.Println("cause:", re.StopReason())
	}
	fmt.Println("unavailable:", errors.Is(err, errs.ErrSandboxUnavailable))

	// A kind the policy does not retry stops at once.
	err = retry.Do(context.Background(), p, func(context.Context) error {
		return errs.New(errs.ErrSandboxNotFound, "no such sandbox")
	})
	if errors.As(err, &re) {
		fmt.Println("attempts:", re.Attempts(), "cause:", re.StopReason())
	}
	// Output:
	// attempts: 3
	// cause: attempts exhausted
	// unavailable: true
	// attempts: 1 cause: not retryable
}

// A server hint above MaxRetryDelay is not waited for: the error comes back at once,
// carrying the delay for the caller to decide.
func ExampleDo_hintTooLong() {
	err := retry.Do(context.Background(), millisecondPolicy(), func(context.Context) error {
		return errs.New(errs.ErrSandboxResourceExhausted, "quota", errs.WithRetryDelay(time.Hour))
	})
	var re *retry.Error
	var e *errs.Error
	if errors.As(err, &re) && errors.As(err, &e) {
		d, _ := e.RetryDelay()
		fmt.Println(re.Attempts(), re.StopReason(), d)
	}
	// Output:
	// 1 server retry delay above the limit 1h0m0s
}

// A Retrier shares one policy, budget and hooks across calls.
func ExampleNew() {
	r, err := retry.New(millisecondPolicy(), retry.WithBudget(retry.DefaultBudget()))
	if err != nil {
		fmt.Println(err)
		return
	}
	attempts := 0
	err = r.Do(context.Background(), func(context.Context) error {
		attempts++
		if attempts < 2 {
			return errs.New(errs.ErrSnapshotBackendThrottled, "slow down") // a SandboxUnavailableError
		}
		return nil
	})
	fmt.Println("attempts:", attempts, "err:", err)
	// Output:
	// attempts: 2 err: <nil>
}

// The gRFC A6 token bucket: each retryable failure takes a token, each success gives back
// the ratio, and retries are allowed while more than half the tokens remain.
func ExampleNewTokenBucket() {
	b, err := retry.NewTokenBucket(10, 0.5)
	if err != nil {
		fmt.Println(err)
		return
	}
	p := millisecondPolicy()
	p.MaxAttempts = 100
	r, err := retry.New(p, retry.WithBudget(b))
	if err != nil {
		fmt.Println(err)
		return
	}
	failing := func(context.Context) error { return errs.New(errs.ErrSandboxUnavailable, "down") }
	var re *retry.Error
	err = r.Do(context.Background(), failing) // 10 tokens: each failure takes one
	if errors.As(err, &re) {
		fmt.Println("attempts:", re.Attempts(), "cause:", re.StopReason(), "allow:", b.Allow())
	}
	for range 4 {
		_ = r.Do(context.Background(), func(context.Context) error { return nil }) // +0.5 each
	}
	fmt.Println("after 4 successes, allow:", b.Allow())
	err = r.Do(context.Background(), failing)
	if errors.As(err, &re) {
		fmt.Println("attempts:", re.Attempts(), "cause:", re.StopReason())
	}
	// Output:
	// attempts: 5 cause: retry budget exhausted allow: false
	// after 4 successes, allow: true
	// attempts: 2 cause: retry budget exhausted
}

// A ratio budget lets retries add at most a fraction of the calls of the last window,
// plus a floor.
func ExampleNewRatioBudget() {
	b, err := retry.NewRatioBudget(0.25, 0, 10*time.Second)
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 20 {
		b.Record(true, retry.OutcomeSucceeded) // 20 calls
	}
	allowed := 0
	for b.Allow() {
		allowed++
	}
	fmt.Println("retries allowed:", allowed)

	_, err = retry.NewRatioBudget(0.2, -1, 10*time.Second)
	fmt.Println(err)
	// Output:
	// retries allowed: 5
	// retry: budget floor is -1 retries per second, want in [0, 1e6]
}

func ExamplePolicy_Validate() {
	p := retry.DefaultPolicy()
	p.Multiplier = 0
	err := p.Validate()
	fmt.Println(err)
	fmt.Println(errors.Is(err, retry.ErrInvalidPolicy))

	_, err = retry.New(p)
	fmt.Println(errors.Is(err, retry.ErrInvalidPolicy))
	// Output:
	// retry: invalid policy: Multiplier is 0, want a finite number > 0
	// true
	// true
}

// RetryOn takes kinds; their children are retried too.
func ExampleOn() {
	p := retry.DefaultPolicy()
	p.RetryOn = retry.On(errs.ErrSandboxUnavailable)
	p.InitialBackoff = time.Millisecond
	fmt.Println(p.RetryOn)
	for _, fail := range []*errs.Error{
		errs.New(errs.ErrSnapshotBackendThrottled, "slow down"), // a child of SandboxUnavailableError
		errs.New(errs.ErrSandboxResourceExhausted, "quota"),
	} {
		attempts := 0
		_ = retry.Do(context.Background(), p, func(context.Context) error {
			attempts++
			if attempts == 1 {
				return fail
			}
			return nil
		}, retry.WithIdempotency(retry.Idempotent))
		fmt.Println(fail.Kind(), "attempts:", attempts)
	}
	// Output:
	// {SandboxUnavailableError}
	// SnapshotBackendThrottledError attempts: 2
	// SandboxResourceExhaustedError attempts: 1
}

// Client-side throttling sheds calls, first attempts included, while the server rejects
// work for overload, and lets them through again within its window once it accepts.
func ExampleWithThrottle() {
	r := retry.MustNew(millisecondPolicy(), retry.WithBudget(nil), retry.WithThrottle(retry.DefaultThrottle()))
	overloaded := func(context.Context) error {
		return errs.New(errs.ErrSandboxResourceExhausted, "server overloaded",
			errs.WithCode(codes.ResourceExhausted), errs.WithRetryDelay(time.Millisecond))
	}
	// The server rejects everything: soon the throttle sheds calls before they are sent.
	var shed error
	for range 1000 {
		if err := r.Do(context.Background(), overloaded); errors.Is(err, retry.ErrThrottled) {
			shed = err
			break
		}
	}
	var re *retry.Error
	errors.As(shed, &re)
	fmt.Println(shed != nil, status.Code(shed), re.Attempts(), re.StopReason())
	// Output:
	// true Unavailable 0 throttled
}
