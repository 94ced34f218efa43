package retry_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/retry"
)

func TestAttempts(t *testing.T) {
	tests := []struct {
		name       string
		policy     retry.Policy
		op         *script
		opts       []retry.Option
		wantCalls  int
		wantErr    bool
		wantCause  retry.StopReason
		wantKind   errs.Kind // errors.Is(err, wantKind) when wantErr
		wantNoKind errs.Kind // !errors.Is(err, wantNoKind) when set
	}{
		{name: "success first time", policy: noJitter(5), op: failThen(0, unavailable()), wantCalls: 1},
		{name: "fail once then succeed", policy: noJitter(5), op: failThen(1, unavailable()), wantCalls: 2},
		{name: "fail 3 times then succeed", policy: noJitter(5), op: failThen(3, unavailable()), wantCalls: 4},
		{name: "fail 4 times then succeed on the last attempt", policy: noJitter(5), op: failThen(4, unavailable()), wantCalls: 5},
		{
			name: "exhausted", policy: noJitter(5), op: failThen(5, unavailable()),
			wantCalls: 5, wantErr: true, wantCause: retry.StopExhausted, wantKind: errs.ErrSandboxUnavailable,
		},
		{
			name: "MaxAttempts 1 makes no retry", policy: noJitter(1), op: failThen(1, unavailable()),
			wantCalls: 1, wantErr: true, wantCause: retry.StopExhausted, wantKind: errs.ErrSandboxUnavailable,
		},
		{
			name: "resource exhausted with a server hint is retried", policy: noJitter(3),
			op:        failThen(3, errs.New(errs.ErrSandboxResourceExhausted, "quota", errs.WithRetryDelay(time.Second))),
			wantCalls: 3, wantErr: true, wantCause: retry.StopExhausted, wantKind: errs.ErrSandboxResourceExhausted,
		},
		{
			name: "bare resource exhausted is not retried", policy: noJitter(3),
			op:        failThen(3, errs.New(errs.ErrSandboxResourceExhausted, "quota")),
			wantCalls: 1, wantErr: true, wantCause: retry.StopNoServerSignal, wantKind: errs.ErrSandboxResourceExhausted,
		},
		{
			name: "not retryable stops at once", policy: noJitter(5), op: failThen(1, notFound()),
			wantCalls: 1, wantErr: true, wantCause: retry.StopNotRetryable, wantKind: errs.ErrSandboxNotFound,
		},
		{
			name: "parent of a retried kind is not retried", policy: noJitter(5),
			op:        failThen(1, errs.New(errs.ErrSandboxNotRunning, "starting")),
			wantCalls: 1, wantErr: true, wantCause: retry.StopNotRetryable,
			wantKind: errs.ErrSandboxNotRunning, wantNoKind: errs.ErrSandboxUnavailable,
		},
		{
			name: "command timeout is never retried by default", policy: noJitter(5),
			op:        failThen(1, errs.New(errs.ErrSandboxCommandTimeout, "sleep 100")),
			wantCalls: 1, wantErr: true, wantCause: retry.StopNotRetryable, wantKind: errs.ErrSandboxCommandTimeout,
		},
		{
			name: "not retryable after retryable ones", policy: noJitter(5),
			op:        newScript(unavailable(), unavailable(), notFound()),
			wantCalls: 3, wantErr: true, wantCause: retry.StopNotRetryable,
			wantKind: errs.ErrSandboxNotFound, wantNoKind: errs.ErrSandboxUnavailable,
		},
		{
			name: "child kind matches RetryOn", policy: noJitter(5),
			op:        failThen(2, errs.New(errs.ErrSnapshotBackendThrottled, "slow down")),
			wantCalls: 3,
		},
		{
			name: "user error wrapping a kind", policy: noJitter(5),
			op:        failThen(2, fmt.Errorf("poll sb-1: %w", errs.ErrSandboxUnavailable)),
			wantCalls: 3,
		},
		{
			name: "user error wrapping an *errs.Error", policy: noJitter(5),
			op:        failThen(2, fmt.Errorf("poll sb-1: %w", unavailable())),
			wantCalls: 3,
		},
		{
			name: "classified gRPC status", policy: noJitter(5),
			op:        failThen(2, rpcUnavailable(0)),
			wantCalls: 3,
		},
		{
			name: "raw gRPC status without classifier is not retried", policy: noJitter(5),
			op:        failThen(2, status.Error(codes.Unavailable, "down")),
			wantCalls: 1, wantErr: true, wantCause: retry.StopNotRetryable,
		},
		{
			name: "raw gRPC status with classifier", policy: noJitter(5),
			op:        failThen(2, status.Error(codes.Unavailable, "down")),
			opts:      []retry.Option{retry.WithClassifyFunc(classify.Classify)},
			wantCalls: 3,
		},
		{
			name: "raw not-found status with classifier", policy: noJitter(5),
			op:        failThen(2, status.Error(codes.NotFound, "gone")),
			opts:      []retry.Option{retry.WithClassifyFunc(classify.Classify)},
			wantCalls: 1, wantErr: true, wantCause: retry.StopNotRetryable,
		},
		{
			name: "plain error", policy: noJitter(5), op: failThen(2, errors.New("boom")),
			wantCalls: 1, wantErr: true, wantCause: retry.StopNotRetryable,
		},
		{
			name: "kind outside a custom RetryOn is not retried",
			policy: func() retry.Policy {
				p := noJitter(5)
				p.RetryOn = retry.On(errs.ErrSandboxResourceExhausted)
				return p
			}(),
			op:        failThen(2, unavailable()),
			wantCalls: 1, wantErr: true, wantCause: retry.StopNotRetryable, wantKind: errs.ErrSandboxUnavailable,
		},
		{
			name: "custom RetryOn",
			policy: func() retry.Policy {
				p := noJitter(5)
				p.RetryOn = retry.On(errs.ErrSandboxNotRunning)
				return p
			}(),
			op:        failThen(2, errs.New(errs.ErrSandboxNotRunning, "starting")),
			wantCalls: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				err := retry.Do(t.Context(), tt.policy, tt.op.op, tt.opts...)
				if got := tt.op.calls(); got != tt.wantCalls {
					t.Errorf("op calls = %d, want %d", got, tt.wantCalls)
				}
				if !tt.wantErr {
					if err != nil {
						t.Fatalf("Do() = %v, want nil", err)
					}
					return
				}
				re := asRetryError(t, err)
				if got := re.Attempts(); got != tt.wantCalls {
					t.Errorf("Attempts() = %d, want %d", got, tt.wantCalls)
				}
				if got := re.StopReason(); got != tt.wantCause {
					t.Errorf("StopReason() = %v, want %v", got, tt.wantCause)
				}
				if last := tt.op.errs[tt.wantCalls-1]; re.Last() != last {
					t.Errorf("Last() = %v, want the last attempt's error %v", re.Last(), last)
				}
				if tt.wantKind != 0 && !errors.Is(err, tt.wantKind) {
					t.Errorf("errors.Is(%v, %v) = false, want true", err, tt.wantKind)
				}
				if tt.wantNoKind != 0 && errors.Is(err, tt.wantNoKind) {
					t.Errorf("errors.Is(%v, %v) = true, want false", err, tt.wantNoKind)
				}
			})
		})
	}
}

// TestNotRetryableText checks that a call that failed once and was not retried reads as
// its own error.
func TestNotRetryableText(t *testing.T) {
	inner := notFound()
	err := retry.Do(context.Background(), retry.DefaultPolicy(), func(context.Context) error { return inner })
	if got, want := err.Error(), inner.Error(); got != want {
		t.Errorf("Do().Error() = %q, want the inner error's text %q", got, want)
	}
	re := asRetryError(t, err)
	if re.Attempts() != 1 || re.StopReason() != retry.StopNotRetryable || re.TotalWait() != 0 {
		t.Errorf("Do() = %d attempts, cause %v, wait %v; want 1, not retryable, 0", re.Attempts(), re.StopReason(), re.TotalWait())
	}
}

// TestClassifierOnlyForRawErrors checks that WithClassifier is consulted for raw errors
// and not for errors that already are *errs.Error, and that the caller gets the raw error
// unchanged.
func TestClassifierOnlyForRawErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var seen []error
		cl := func(err error) *errs.Error {
			seen = append(seen, err)
			return classify.Classify(err)
		}
		// A RESOURCE_EXHAUSTED with a server hint, so that it is retried.
		raw := faultlinetest.Status(codes.ResourceExhausted, "slow down", faultlinetest.RetryInfo(time.Millisecond)).Err()
		op := newScript(unavailable(), raw, raw)
		err := retry.Do(t.Context(), noJitter(3), op.op, retry.WithClassifyFunc(cl))
		if len(seen) != 2 || seen[0] != raw || seen[1] != raw {
			t.Errorf("classifier saw %v, want the raw error twice", seen)
		}
		re := asRetryError(t, err)
		if re.Last() != raw {
			t.Errorf("Last() = %v (%T), want the raw error unchanged", re.Last(), re.Last())
		}
		if re.StopReason() != retry.StopExhausted {
			t.Errorf("StopReason() = %v, want %v", re.StopReason(), retry.StopExhausted)
		}
		var e *errs.Error
		if errors.As(err, &e) {
			t.Errorf("errors.As(err, *errs.Error) = true (%v), want false: the caller gets the raw error", e)
		}
		if status.Code(err) != codes.ResourceExhausted {
			t.Errorf("status.Code(err) = %v, want %v", status.Code(err), codes.ResourceExhausted)
		}
	})
}

// TestRetrierShared checks that a Retrier keeps no per-call state: calls through one
// Retrier each get the full number of attempts, and WithPolicy derives another policy.
func TestRetrierShared(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, err := retry.New(noJitter(3), retry.WithBudget(nil))
		if err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			op := failThen(10, unavailable())
			err := r.Do(t.Context(), op.op)
			if op.calls() != 3 || asRetryError(t, err).Attempts() != 3 {
				t.Errorf("call %d: %d op calls, err %v; want 3 attempts", i, op.calls(), err)
			}
		}
		r2, err := r.WithPolicy(noJitter(2))
		if err != nil {
			t.Fatal(err)
		}
		op := failThen(10, unavailable())
		if err := r2.Do(t.Context(), op.op); op.calls() != 2 {
			t.Errorf("WithPolicy(noJitter(2)).Do(): %d op calls (%v), want 2", op.calls(), err)
		}
		op = failThen(10, unavailable())
		if err := r.Do(t.Context(), op.op); op.calls() != 3 {
			t.Errorf("after WithPolicy, r.Do(): %d op calls (%v), want 3 (unchanged)", op.calls(), err)
		}
	})
}

// TestTracker checks the step-wise form transports drive (internal/engine): the same
// decisions as Do, with the attempt counter visible.
func TestTracker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, err := retry.New(noJitter(4), retry.WithBudget(nil))
		if err != nil {
			t.Fatal(err)
		}
		tr := track(r, "", nil)
		var attempts []int
		var last *retry.Error
		for {
			attempts = append(attempts, tr.Attempt())
			if last = final(t, tr.Failed(t.Context(), unavailable(), engine.Facts{})); last != nil {
				break
			}
		}
		if fmt.Sprint(attempts) != "[1 2 3 4]" {
			t.Errorf("Attempt() values = %v, want [1 2 3 4]", attempts)
		}
		if last.Attempts() != 4 || last.StopReason() != retry.StopExhausted {
			t.Errorf("final = %d attempts, %v; want 4, %v", last.Attempts(), last.StopReason(), retry.StopExhausted)
		}
		if want := (200 + 400 + 800) * time.Millisecond; last.TotalWait() != want {
			t.Errorf("TotalWait() = %v, want %v", last.TotalWait(), want)
		}

		tr = track(r, "", nil)
		if f := tr.Failed(t.Context(), unavailable(), engine.Facts{}); f != nil {
			t.Fatalf("Failed(unavailable) on attempt 1 = %v, want nil (retry)", f)
		}
		tr.Succeeded(t.Context())
		if tr.Attempt() != 2 {
			t.Errorf("Attempt() after one retry = %d, want 2", tr.Attempt())
		}
		tr = track(r, "", nil)
		if f := final(t, tr.Failed(t.Context(), notFound(), engine.Facts{})); f == nil || f.StopReason() != retry.StopNotRetryable || f.Attempts() != 1 {
			t.Errorf("Failed(notFound) = %v, want a final error after 1 attempt, not retryable", f)
		}
	})
}

// lateCtx has a deadline that has passed while its Err is still nil: what a caller sees in
// the moment between a server's reset of an expired stream and the client's own timer.
type lateCtx struct {
	context.Context
	deadline time.Time
}

func (c lateCtx) Deadline() (time.Time, bool) { return c.deadline, true }

func TestDeadlinePassedBeforeTimer(t *testing.T) {
	ctx := lateCtx{Context: context.Background(), deadline: time.Now().Add(-time.Millisecond)}
	calls := 0
	err := retry.Do(ctx, retry.DefaultPolicy(), func(context.Context) error {
		calls++
		return classify.Classify(status.Error(codes.DeadlineExceeded, "stream reset by the server"))
	})
	var re *retry.Error
	if !errors.As(err, &re) || re.StopReason() != retry.StopDeadline || !errors.Is(err, context.DeadlineExceeded) || calls != 1 {
		t.Errorf("Do(ctx past its deadline) = %v (calls %d), want StopDeadline matching context.DeadlineExceeded after 1 call", err, calls)
	}
}
