package connectfaultline_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/connectfaultline"
	"github.com/faultline-go/faultline/connectfaultline/internal/connecttest"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

// TestRetryInfoWaited: the server's RetryInfo is the wait (5s, twice), exactly, in virtual
// time; without a hint the backoff (1s, 2s) is.
func TestRetryInfoWaited(t *testing.T) {
	inBubble(t, func(t *testing.T, c client) {
		var rec recorder
		e := c.env(t, []connectfaultline.Option{noBudget(secondsPolicy(), retry.WithHooks(rec.hooks()))})
		e.srv.FailNext(mGet, 2, withHint(5*time.Second))
		start := time.Now()
		if err := getSandbox(t.Context(), e); err != nil {
			t.Fatalf("GetSandbox() error = %v", err)
		}
		if got := time.Since(start); got != 10*time.Second {
			t.Errorf("two 5s hints took %v, want 10s", got)
		}
		e.srv.FailNext(mGet, 2, unavailable())
		start = time.Now()
		if err := getSandbox(t.Context(), e); err != nil {
			t.Fatalf("GetSandbox() error = %v", err)
		}
		if got := time.Since(start); got != 3*time.Second {
			t.Errorf("two backoffs took %v, want 1s + 2s", got)
		}
		retries, dones := rec.events()
		var hinted []bool
		for _, r := range retries {
			hinted = append(hinted, r.FromHint)
		}
		if !slices.Equal(hinted, []bool{true, true, false, false}) {
			t.Errorf("retries from the hint = %v, want [true true false false]", hinted)
		}
		if len(dones) != 2 || dones[0].Attempts != 3 || dones[0].TotalWait != 10*time.Second {
			t.Errorf("done events = %+v, want two calls of 3 attempts, the first waiting 10s", dones)
		}
	})
}

// TestDeadlineFirst: a wait that would end at or after the caller's deadline is not started:
// the last real error returns at once (not a DEADLINE_EXCEEDED later); a hint above
// MaxRetryDelay is not waited either.
func TestDeadlineFirst(t *testing.T) {
	inBubble(t, func(t *testing.T, c client) {
		e := c.env(t, []connectfaultline.Option{noBudget(secondsPolicy())})
		e.srv.FailNext(mGet, 1, withHint(2*time.Second))
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		start := time.Now()
		err := getSandbox(ctx, e)
		if time.Since(start) != 0 || status.Code(err) != codes.Unavailable || !errors.Is(err, errs.ErrSandboxUnavailable) {
			t.Errorf("GetSandbox = %v after %v, want UNAVAILABLE at once", err, time.Since(start))
		}
		if stop, _ := stopOf(err); stop != retry.StopDeadline {
			t.Errorf("stop reason = %v, want %v", stop, retry.StopDeadline)
		}
		if d, ok := asErrs(t, "GetSandbox", err).RetryDelay(); !ok || d != 2*time.Second {
			t.Errorf("RetryDelay() = %v, %v, want the server's 2s", d, ok)
		}

		e.srv.FailNext(mGet, 1, withHint(31*time.Second))
		start = time.Now()
		err = getSandbox(t.Context(), e)
		if stop, _ := stopOf(err); stop != retry.StopHintTooLong || time.Since(start) != 0 {
			t.Errorf("GetSandbox with a 31s hint: %v after %v, want hint too long at once", err, time.Since(start))
		}
	})
}

// TestCancelDuringWait: the caller's cancellation ends a wait between attempts at once: the
// error is CANCELED with errors.Is(err, context.Canceled), the last failure reachable.
func TestCancelDuringWait(t *testing.T) {
	inBubble(t, func(t *testing.T, c client) {
		e := c.env(t, []connectfaultline.Option{noBudget(secondsPolicy())})
		e.srv.FailNext(mGet, 1, withHint(20*time.Second))
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(3*time.Second, cancel)
		start := time.Now()
		err := getSandbox(ctx, e)
		if time.Since(start) != 3*time.Second || !errors.Is(err, context.Canceled) || status.Code(err) != codes.Canceled {
			t.Errorf("GetSandbox = %v after %v, want CANCELED after 3s", err, time.Since(start))
		}
		if !errors.Is(err, errs.ErrSandboxUnavailable) {
			t.Errorf("error %v: the last failure (UNAVAILABLE) is not reachable", err)
		}
	})
}

// TestPerAttemptTimeout: an attempt that ran out of the policy's PerAttemptTimeout while the
// caller's context lives is retried; the call's own deadline is not.
func TestPerAttemptTimeout(t *testing.T) {
	inBubble(t, func(t *testing.T, c client) {
		p := secondsPolicy()
		p.PerAttemptTimeout = 2 * time.Second
		e := c.env(t, []connectfaultline.Option{noBudget(p)})
		e.srv.Script(mGet, sandboxtest.Stall())
		start := time.Now()
		if err := getSandbox(t.Context(), e); err != nil {
			t.Fatalf("GetSandbox() error = %v", err)
		}
		if got := time.Since(start); got != 3*time.Second {
			t.Errorf("a stalled attempt, then a retry took %v, want 2s + 1s", got)
		}
		if got := e.srv.Calls(mGet); got != 2 {
			t.Errorf("server saw %d attempts, want 2", got)
		}
	})
}

// TestStreamRetryInfoWaited: a stream's retry before commit and a resume after it wait as
// the server says.
func TestStreamRetryInfoWaited(t *testing.T) {
	inBubble(t, func(t *testing.T, c client) {
		e := c.env(t, []connectfaultline.Option{noBudget(secondsPolicy())})
		e.srv.FailNext(mLogs, 1, withHint(4*time.Second))
		e.srv.ScriptStreamLogs(sandboxtest.StreamLogsScript{Entries: 3, Err: withHint(6 * time.Second)})
		start := time.Now()
		got, err := recvLogs(t.Context(), e, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
		if err != nil || !slices.Equal(got, upTo(logLines)) {
			t.Errorf("StreamLogs = %v, %v; want every line once", got, err)
		}
		if d := time.Since(start); d != 10*time.Second {
			t.Errorf("StreamLogs took %v, want 4s + 6s", d)
		}
	})
}

// TestStreamExhausted: a stream that keeps failing before commit gives up after the policy's
// attempts with a *retry.Error from Receive; Send then reports io.EOF.
func TestStreamExhausted(t *testing.T) {
	inBubble(t, func(t *testing.T, c client) {
		e := c.env(t, []connectfaultline.Option{noBudget(secondsPolicy())})
		e.srv.FailAlways(mLogs, unavailable())
		_, err := recvLogs(t.Context(), e, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
		if stop, n := stopOf(err); stop != retry.StopExhausted || n != 5 || connect.CodeOf(err) != connect.CodeUnavailable {
			t.Errorf("StreamLogs = %v (stop %v, %d attempts), want UNAVAILABLE exhausted after 5", err, stop, n)
		}
		if c.v == connecttest.HTTP2 {
			e.srv.FailAlways(mStreamExec, unavailable())
			_, err := execStream(t.Context(), e, "a")
			if stop, n := stopOf(err); stop != retry.StopUnsafe || n != 1 {
				t.Errorf("StreamExec = %v (stop %v, %d attempts), want not safe to repeat after 1", err, stop, n)
			}
		}
	})
}
