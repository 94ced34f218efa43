package otelfaultline_test

import (
	"context"
	"testing"
	"time"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/retry"
)

// BenchmarkHooks measures what the adapter costs per event, on the SDK, with and without a
// recording span in the context. Only calls that retried or failed reach it.
func BenchmarkHooks(b *testing.B) {
	tm := newTelemetry()
	h := tm.hooks()
	failure := errs.New(errs.ErrSandboxUnavailable, "backend restarting")
	final := retry.DoneEvent{Method: getSandbox, Target: target, Attempts: 3, TotalWait: time.Second,
		Reason: retry.StopExhausted, Err: failure}
	for _, withSpan := range []bool{false, true} {
		ctx := context.Background()
		name := "no span"
		if withSpan {
			c, s := tm.tp.Tracer("bench").Start(ctx, "caller")
			defer s.End()
			ctx, name = c, "recording span"
		}
		b.Run("OnRetry/"+name, func(b *testing.B) {
			b.ReportAllocs()
			ev := retry.RetryEvent{Method: getSandbox, Target: target, Attempt: 1, Err: failure, Delay: time.Second, FromHint: true}
			for b.Loop() {
				h.OnRetry(ctx, ev)
			}
		})
		b.Run("OnDone success after retries/"+name, func(b *testing.B) {
			b.ReportAllocs()
			ev := retry.DoneEvent{Method: getSandbox, Target: target, Attempts: 3, TotalWait: time.Second}
			for b.Loop() {
				h.OnDone(ctx, ev)
			}
		})
		b.Run("OnDone failure/"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				h.OnDone(ctx, final)
			}
		})
	}
}
