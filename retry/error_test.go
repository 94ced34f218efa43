package retry_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/retry"
)

const canary = "s3cr3t-canary"

// TestFinalError checks decision 6: the final error answers what the last attempt's error
// answered, and adds attempts, wait and cause.
func TestFinalError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := faultlinetest.Status(codes.Unavailable, "runner unavailable",
			faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_RUNNER_UNAVAILABLE", map[string]string{"token": canary}))
		first := rpcUnavailable(0)
		last := classify.Classify(st.Err())
		op := newScript(first, first, last)
		err := retry.Do(t.Context(), noJitter(3), op.op)

		got, ok := status.FromError(err)
		if !ok || got != st {
			t.Errorf("status.FromError(err) = %p, %v; want the last attempt's status %p, true", got, ok, st)
		}
		if !proto.Equal(got.Proto(), st.Proto()) {
			t.Errorf("status.FromError(err).Proto() = %v, want %v", got.Proto(), st.Proto())
		}
		if status.Code(err) != codes.Unavailable {
			t.Errorf("status.Code(err) = %v, want %v", status.Code(err), codes.Unavailable)
		}
		for _, k := range []errs.Kind{errs.ErrSandboxUnavailable, errs.ErrSandboxNotRunning, errs.ErrSandbox, errs.ErrCWSandbox} {
			if !errors.Is(err, k) {
				t.Errorf("errors.Is(err, %v) = false, want true", k)
			}
		}
		for _, k := range []errs.Kind{errs.ErrSandboxNotFound, errs.ErrSnapshotBackendThrottled, errs.ErrSandboxResourceExhausted} {
			if errors.Is(err, k) {
				t.Errorf("errors.Is(err, %v) = true, want false", k)
			}
		}
		var e *errs.Error
		if !errors.As(err, &e) || e != last {
			t.Errorf("errors.As(err, *errs.Error) = %p, want the last attempt's error %p", e, last)
		} else if e.Reason() != "CWSANDBOX_RUNNER_UNAVAILABLE" || e.Metadata()["token"] != canary {
			t.Errorf("the last error's details: reason %q, metadata %v; want them intact", e.Reason(), e.Metadata())
		}
		re := asRetryError(t, err)
		if re.Attempts() != 3 || re.StopReason() != retry.StopExhausted || re.TotalWait() != 600*time.Millisecond {
			t.Errorf("Attempts, Cause, TotalWait = %d, %v, %v; want 3, %v, 600ms", re.Attempts(), re.StopReason(), re.TotalWait(), retry.StopExhausted)
		}
		if re.Last() != last {
			t.Errorf("Last() = %v, want the last attempt's error", re.Last())
		}
		if u := re.Unwrap(); len(u) != 1 || u[0] != last {
			t.Errorf("Unwrap() = %v, want [last]", u)
		}
		if got, want := err.Error(), last.Error()+" [3 attempts, attempts exhausted]"; got != want {
			t.Errorf("Error() = %q, want %q", got, want)
		}
		if strings.Contains(err.Error(), canary) {
			t.Errorf("Error() = %q contains ErrorInfo metadata", err.Error())
		}
	})
}

func TestFinalErrorLastAttemptWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		op := newScript(errs.New(errs.ErrSandboxResourceExhausted, "quota", errs.WithRetryDelay(time.Millisecond)), rpcUnavailable(0), notFound())
		err := retry.Do(t.Context(), noJitter(5), op.op)
		if status.Code(err) != codes.NotFound {
			t.Errorf("status.Code(err) = %v, want %v (the last attempt's)", status.Code(err), codes.NotFound)
		}
		if errors.Is(err, errs.ErrSandboxUnavailable) || errors.Is(err, errs.ErrSandboxResourceExhausted) {
			t.Errorf("err %v matches an earlier attempt's kind, want only the last one's", err)
		}
		re := asRetryError(t, err)
		if re.Attempts() != 3 || re.StopReason() != retry.StopNotRetryable {
			t.Errorf("Attempts, Cause = %d, %v; want 3, %v", re.Attempts(), re.StopReason(), retry.StopNotRetryable)
		}
		if !strings.HasSuffix(err.Error(), " [3 attempts, not retryable]") {
			t.Errorf("Error() = %q, want it to end with the attempts and the cause", err.Error())
		}
	})
}

// TestFinalErrorStatusLikeInner checks that status.Code and status.FromError of the final
// error agree with those of the last attempt's error, whatever that error is.
func TestFinalErrorStatusLikeInner(t *testing.T) {
	tests := []struct {
		name string
		err  error
		opts []retry.Option
	}{
		{"client-made", unavailable(), nil},
		{"classified status", rpcUnavailable(0), nil},
		{"wrapped status", fmt.Errorf("poll: %w", status.Error(codes.Unavailable, "down")), []retry.Option{retry.WithClassifyFunc(classify.Classify)}},
		{"bare status", status.Error(codes.Unavailable, "down"), []retry.Option{retry.WithClassifyFunc(classify.Classify)}},
		{"no status", fmt.Errorf("poll: %w", errs.ErrSandboxUnavailable), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				err := retry.Do(t.Context(), noJitter(2), failThen(5, tt.err).op, tt.opts...)
				asRetryError(t, err)
				wantSt, wantOK := status.FromError(tt.err)
				gotSt, gotOK := status.FromError(err)
				if gotOK != wantOK || gotSt.Code() != wantSt.Code() {
					t.Errorf("status.FromError(err) = %v, %v; want %v, %v", gotSt.Code(), gotOK, wantSt.Code(), wantOK)
				}
				if wantOK && !proto.Equal(gotSt.Proto(), wantSt.Proto()) {
					t.Errorf("status.FromError(err) = %v, want %v", gotSt.Proto(), wantSt.Proto())
				}
				if status.Code(err) != status.Code(tt.err) {
					t.Errorf("status.Code(err) = %v, want %v", status.Code(err), status.Code(tt.err))
				}
			})
		})
	}
}

// TestErrorBounded checks that Error() stays short (and valid UTF-8) whatever the inner
// error's length, and names the attempts and the cause.
func TestErrorBounded(t *testing.T) {
	for _, tt := range []struct {
		name string
		text string
	}{
		{"ascii", strings.Repeat("x", 10000)},
		{"two-byte runes", "x" + strings.Repeat("é", 5000)},
		{"three-byte runes", "xx" + strings.Repeat("世", 4000)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				inner := fmt.Errorf("%s: %w", tt.text, errs.ErrSandboxUnavailable)
				err := retry.Do(t.Context(), noJitter(2), failThen(5, inner).op)
				msg := err.Error()
				if len(msg) > 1024 {
					t.Errorf("len(Error()) = %d, want <= 1024 (safety.md section 5)", len(msg))
				}
				if !utf8.ValidString(msg) {
					t.Errorf("Error() = %q is not valid UTF-8", msg[1000:])
				}
				if !strings.HasSuffix(msg, "[2 attempts, attempts exhausted]") {
					t.Errorf("Error() ends %q, want the attempts and the cause", msg[len(msg)-40:])
				}
			})
		})
	}
}

func TestStopReasonString(t *testing.T) {
	tests := []struct {
		c    retry.StopReason
		want string
	}{
		{retry.StopNotRetryable, "not retryable"},
		{retry.StopExhausted, "attempts exhausted"},
		{retry.StopHintTooLong, "server retry delay above the limit"},
		{retry.StopDeadline, "deadline"},
		{retry.StopMaxElapsed, "max elapsed time"},
		{retry.StopBudget, "retry budget exhausted"},
		{retry.StopCancelled, "cancelled"},
		{retry.StopNoServerSignal, "no server signal"},
		{retry.StopUnsafe, "not safe to repeat"},
		{retry.StopLocalFailure, "local failure"},
		{retry.StopNotResumable, "not resumable"},
		{0, "StopReason(0)"},
		{200, "StopReason(200)"},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.want {
			t.Errorf("StopReason(%d).String() = %q, want %q", uint8(tt.c), got, tt.want)
		}
	}
}

// TestHooks checks decision 11: OnRetry once per scheduled retry, with the failed
// attempt's number, error, delay and source; OnDone once with the cause and the final error;
// for a success after retries, OnDone without an error. No text carries ErrorInfo metadata.
func TestHooks(t *testing.T) {
	type key struct{}
	secret := errs.WithErrorInfo("cwsandbox.com", "CWSANDBOX_RUNNER_UNAVAILABLE", map[string]string{"token": canary})
	rpcSecret := classify.Classify(faultlinetest.Status(codes.Unavailable, "runner unavailable",
		faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_RUNNER_UNAVAILABLE", map[string]string{"token": canary}),
		faultlinetest.RetryInfo(2*time.Second)).Err())
	e1 := errs.New(errs.ErrSandboxUnavailable, "backend restarting", secret, errs.WithRetryDelay(time.Second))
	// A RESOURCE_EXHAUSTED with a trusted transient reason and no hint: retried, after the
	// backoff.
	e2 := classify.Classify(faultlinetest.Status(codes.ResourceExhausted, "inflight limit",
		faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_FSS_INFLIGHT_LIMIT", map[string]string{"token": canary})).Err())
	e3 := rpcSecret

	t.Run("gives up", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx := context.WithValue(t.Context(), key{}, "caller")
			var retries []retry.RetryEvent
			var stops []retry.DoneEvent
			h := retry.Hooks{
				OnRetry: func(ctx context.Context, ev retry.RetryEvent) {
					if ctx.Value(key{}) != "caller" {
						t.Errorf("OnRetry got another context than the caller's")
					}
					retries = append(retries, ev)
				},
				OnDone: func(ctx context.Context, ev retry.DoneEvent) {
					if ctx.Value(key{}) != "caller" {
						t.Errorf("OnDone got another context than the caller's")
					}
					stops = append(stops, ev)
				},
			}
			op := newScript(e1, e2, e3, e2)
			err := retry.Do(ctx, noJitter(4), op.op, retry.WithHooks(h))
			want := []retry.RetryEvent{
				{Attempt: 1, Err: e1, Delay: time.Second, FromHint: true},
				{Attempt: 2, Err: e2, Delay: 400 * time.Millisecond, FromHint: false},
				{Attempt: 3, Err: e3, Delay: 2 * time.Second, FromHint: true},
			}
			if len(retries) != len(want) {
				t.Fatalf("OnRetry called %d times, want %d", len(retries), len(want))
			}
			for i := range want {
				if retries[i] != want[i] {
					t.Errorf("RetryEvent[%d] = %+v, want %+v", i, retries[i], want[i])
				}
			}
			wantStop := retry.DoneEvent{Attempts: 4, Err: err, Reason: retry.StopExhausted, TotalWait: 3400 * time.Millisecond}
			if len(stops) != 1 || stops[0] != wantStop {
				t.Fatalf("OnDone events = %+v, want [%+v]", stops, wantStop)
			}
			texts := []string{err.Error(), fmt.Sprint(stops[0]), fmt.Sprintf("%+v", stops[0])}
			for _, ev := range retries {
				texts = append(texts, fmt.Sprint(ev), fmt.Sprintf("%+v", ev))
			}
			for _, s := range texts {
				if strings.Contains(s, canary) {
					t.Errorf("%q contains ErrorInfo metadata", s)
				}
			}
		})
	})
	t.Run("succeeds after retries", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var ev events
			op := failThen(2, e2)
			if err := retry.Do(t.Context(), noJitter(4), op.op, retry.WithHooks(ev.hooks())); err != nil {
				t.Fatalf("Do() = %v, want nil", err)
			}
			if len(ev.retries) != 2 || len(ev.stops) != 0 {
				t.Errorf("%d OnRetry, %d failed OnDone calls; want 2, 0", len(ev.retries), len(ev.stops))
			}
		})
	})
	t.Run("not retryable", func(t *testing.T) {
		var ev events
		err := retry.Do(context.Background(), noJitter(4), failThen(2, notFound()).op, retry.WithHooks(ev.hooks()))
		if len(ev.retries) != 0 || len(ev.stops) != 1 || ev.stops[0].Reason != retry.StopNotRetryable || ev.stops[0].Attempts != 1 {
			t.Errorf("OnRetry %v, OnStop %v; want none, one (1 attempt, not retryable)", ev.retries, ev.stops)
		}
		if ev.stops[0].Err != err {
			t.Errorf("DoneEvent.Err = %v, want the call's error", ev.stops[0].Err)
		}
	})
	t.Run("nil hooks", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			if err := retry.Do(t.Context(), noJitter(3), failThen(2, e2).op, retry.WithHooks(retry.Hooks{})); err != nil {
				t.Errorf("Do() = %v, want nil", err)
			}
		})
	})
}

// longest returns a classified error whose message is as long as errs allows (1 KiB).
func longest(t *testing.T) *errs.Error {
	t.Helper()
	var vs []errs.FieldViolation
	for i := range 8 {
		vs = append(vs, errs.FieldViolation{Field: fmt.Sprintf("f%d.", i) + strings.Repeat("x", 80), Description: strings.Repeat("d", 200)})
	}
	e := errs.New(errs.ErrSandboxUnavailable, strings.Repeat("m", 400),
		errs.WithResource(errs.Resource{Operation: "GetSandbox"}), errs.WithResource(errs.Resource{SandboxID: strings.Repeat("s", 200)}), errs.WithResource(errs.Resource{FilePath: strings.Repeat("p", 200)}),
		errs.WithFieldViolations(vs...))
	if n := len(e.Error()); n < 1000 || n > 1024 {
		t.Fatalf("len(longest().Error()) = %d, want a message of nearly 1 KiB", n)
	}
	return e
}

// TestErrorOneKiB checks safety.md section 5: the final error of a retried call, with its
// attempt count and stop reason, is one line of at most 1 KiB, whatever stopped it.
func TestErrorOneKiB(t *testing.T) {
	tests := []struct {
		name   string
		policy retry.Policy
		err    func(*testing.T) error
		ctx    func(context.Context) (context.Context, context.CancelFunc)
		suffix string
	}{
		{"exhausted", noJitter(2), func(t *testing.T) error { return longest(t) }, nil, "[2 attempts, attempts exhausted]"},
		{"no server signal", noJitter(2), func(*testing.T) error {
			return errs.New(errs.ErrSandboxResourceExhausted, strings.Repeat("q", 2000), errs.WithResource(errs.Resource{SandboxID: strings.Repeat("s", 200)}))
		}, nil, "[1 attempt, no server signal]"},
		{"cancelled during a wait", noJitter(5), func(t *testing.T) error { return longest(t) },
			func(ctx context.Context) (context.Context, context.CancelFunc) {
				ctx, cancel := context.WithCancel(ctx)
				time.AfterFunc(100*time.Millisecond, cancel)
				return ctx, cancel
			}, "[1 attempt, cancelled: context canceled]"},
		{"plain error of several lines", noJitter(2), func(*testing.T) error {
			return fmt.Errorf("first line\nsecond line\r\n%s: %w", strings.Repeat("x", 3000), errs.ErrSandboxUnavailable)
		}, nil, "[2 attempts, attempts exhausted]"},
		{"plain error, not retryable", noJitter(2), func(*testing.T) error {
			return errors.New("first line\nsecond line " + strings.Repeat("y", 3000))
		}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				if tt.ctx != nil {
					var cancel context.CancelFunc
					ctx, cancel = tt.ctx(ctx)
					defer cancel()
				}
				err := retry.Do(ctx, tt.policy, failThen(5, tt.err(t)).op)
				msg := err.Error()
				if len(msg) > 1024 {
					t.Errorf("len(Error()) = %d, want <= 1024", len(msg))
				}
				if strings.ContainsAny(msg, "\n\r") {
					t.Errorf("Error() = %.80q..., want one line", msg)
				}
				if !utf8.ValidString(msg) {
					t.Errorf("Error() is not valid UTF-8")
				}
				if !strings.HasSuffix(msg, tt.suffix) {
					t.Errorf("Error() ends %q, want %q", msg[max(0, len(msg)-60):], tt.suffix)
				}
			})
		})
	}
}
