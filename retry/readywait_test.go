package retry_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/retry"
)

// TestReadyWaitEndsAtDeadline (overload.md, rule 2): a retry that waits for a connection
// that is not ready may wait until the caller's deadline (the connection may come back
// before it), unlike a backoff wait, which is not started when it would end at or after
// the deadline. The call then ends at the deadline with its status (DEADLINE_EXCEEDED), and
// the last real failure stays in the error tree and its text.
func TestReadyWaitEndsAtDeadline(t *testing.T) {
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
		if took := time.Since(start); took != 2500*time.Millisecond {
			t.Errorf("the wait ended after %v, want 2.5s: at the deadline", took)
		}
		if e.StopReason() != retry.StopDeadline || status.Code(e) != codes.DeadlineExceeded ||
			!errors.Is(e, context.DeadlineExceeded) || !errors.Is(e, errs.ErrSandboxUnavailable) {
			t.Errorf("final = %v (reason %v, code %v), want the deadline's, holding the UNAVAILABLE", e, e.StopReason(), status.Code(e))
		}
	})
}
