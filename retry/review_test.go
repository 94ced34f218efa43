package retry_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/retry"
)

// TestReviewReadyWaitSleepsIntoDeadline: the package promises that a wait that would end at
// or after the caller's deadline is not started and the last error returns at once. The
// stretches spent waiting for a connection that is not ready ignore that: the call sleeps
// until its deadline and ends with DEADLINE_EXCEEDED instead of the last UNAVAILABLE.
func TestReviewReadyWaitSleepsIntoDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := retry.DefaultPolicy()
		p.InitialBackoff, p.MaxBackoff, p.Jitter, p.HintJitter = time.Second, 8*time.Second, 0, 0
		r := retry.MustNew(p, retry.WithBudget(nil))
		ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
		defer cancel()
		tr := track(r, "/x.S/M", newFakeConn(false))
		start := time.Now()
		e := final(t, tr.Failed(ctx, errs.New(errs.ErrSandboxUnavailable, "down"), engine.Facts{NotSent: true}))
		if e == nil {
			t.Fatal("Failed retried")
		}
		t.Logf("after %v: %v (reason %v, code %v)", time.Since(start), e, e.StopReason(), status.Code(e))
		if status.Code(e) != codes.Unavailable || time.Since(start) >= 2500*time.Millisecond {
			t.Errorf("slept %v into the deadline and returned %v; want the last UNAVAILABLE before the deadline", time.Since(start), status.Code(e))
		}
	})
}
