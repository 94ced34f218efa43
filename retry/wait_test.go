package retry_test

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/retry"
)

// TestWaitForConnection (overload.md, rule 2): after its backoff, a retry whose connection
// is not ready waits for it instead of making an attempt that would fail fast; each further
// stretch of the schedule it waits counts as an attempt of the policy, its last attempt is
// made whatever the connection's state, and the call then stops as "connection not ready".
// No wait spends the budget.
func TestWaitForConnection(t *testing.T) {
	notSent := engine.Facts{Level: uint8(retry.Idempotent), NotSent: true}
	t.Run("ready during a stretch: the attempt is made at once", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			conn := newFakeConn(false)
			r := retry.MustNew(noJitter(5), retry.WithBudget(nil))
			time.AfterFunc(700*time.Millisecond, func() { conn.set(true) })
			start := time.Now()
			tr := track(r, "", conn)
			if err := tr.Failed(t.Context(), unavailable(), notSent); err != nil {
				t.Fatalf("Failed() = %v, want a retry", err)
			}
			// The 200 ms backoff, then the connection became ready 500 ms into the next
			// stretch (400 ms) or the one after it.
			if got := time.Since(start); got != 700*time.Millisecond {
				t.Errorf("the retry came after %v, want 700ms: when the connection became ready", got)
			}
			if tr.Attempt() != 2 {
				t.Errorf("Attempt() = %d, want 2: waiting is not an attempt", tr.Attempt())
			}
		})
	})
	t.Run("never ready: the schedule's last attempt, then not ready", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			conn := newFakeConn(false)
			b := &countingBudget{}
			r := retry.MustNew(noJitter(5), retry.WithBudget(b))
			start := time.Now()
			tr := track(r, "", conn)
			if err := tr.Failed(t.Context(), unavailable(), notSent); err != nil {
				t.Fatalf("Failed() = %v, want the schedule's last attempt", err)
			}
			// Attempt 1, then three stretches of waiting (200, 400, 800 ms backoff, then
			// 1.6 s): attempts 2 to 4 of five spent waiting, the fifth is made.
			if got := time.Since(start); got != 3*time.Second {
				t.Errorf("the last attempt came after %v, want 3s: the policy's backoff schedule", got)
			}
			final := final(t, tr.Failed(t.Context(), unavailable(), notSent))
			if final == nil || final.StopReason() != retry.StopNotReady || final.Attempts() != 2 {
				t.Fatalf("second Failed() = %v, want StopNotReady after 2 attempts", final)
			}
			if b.allows != 0 {
				t.Errorf("the budget was asked %d times, want 0: nothing reached a server", b.allows)
			}
		})
	})
	t.Run("never ready, but the last attempt was sent: exhausted", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			conn := newFakeConn(false)
			r := retry.MustNew(noJitter(3), retry.WithBudget(nil))
			tr := track(r, "", conn)
			if err := tr.Failed(t.Context(), unavailable(), notSent); err != nil {
				t.Fatalf("Failed() = %v, want the last attempt", err)
			}
			final := final(t, tr.Failed(t.Context(), unavailable(), engine.Facts{Level: uint8(retry.Idempotent)}))
			if final == nil || final.StopReason() != retry.StopExhausted {
				t.Fatalf("Failed(sent) = %v, want StopExhausted", final)
			}
		})
	})
}

// countingBudget allows every retry and counts the asks.
type countingBudget struct{ allows int }

func (b *countingBudget) Record(bool, retry.Outcome) {}
func (b *countingBudget) Allow() bool                { b.allows++; return true }
