package integration_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

// TestServerDeadlineRace covers a race between a deadline on the client and the
// same deadline on the server. grpc-go's server resets a stream whose deadline (from
// grpc-timeout) passed with RST_STREAM CANCEL, and grpc-go's client reports that reset as
// DEADLINE_EXCEEDED when the stream's deadline has passed by the wall clock, which can be
// before the context's timer has fired, so ctx.Err() can still be nil. The retry loop must
// go by the deadline itself: a per-attempt timeout is still retried, and the caller's
// deadline still stops with StopDeadline and errors.Is(err, context.DeadlineExceeded).
//
// The server here is the real sandboxtest server stalling until its context ends.
//
// Whether the stalled attempt was retried is read from the retry hooks, not from the call's
// outcome: the attempts after it may time out too on a loaded machine (20ms is short), which
// says nothing about the rule.
func TestServerDeadlineRace(t *testing.T) {
	srv, addr := startServer(t, sandboxtest.WithSandboxes("sb-1"))
	p := fastPolicy(5)
	p.PerAttemptTimeout = 20 * time.Millisecond
	var rec recorder
	c := dial(t, addr, []interceptor.Option{interceptor.WithRetrier(retry.MustNew(p, retry.WithBudget(nil), retry.WithHooks(rec.hooks())))})
	const n = 30
	notRetried, wrongCause := 0, 0
	for range n {
		srv.Reset()
		srv.Script(mGet, sandboxtest.Stall(), sandboxtest.Succeed())
		ctx, attempts := track(context.Background())
		_, _ = c.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
		if attempts() < 2 {
			notRetried++
		}

		srv.Reset()
		srv.Script(mGet, sandboxtest.Stall())
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := c.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}, interceptor.WithCallPolicy(fastPolicy(3)))
		cancel()
		var re *retry.Error
		if status.Code(err) != codes.DeadlineExceeded || !errors.As(err, &re) || re.StopReason() != retry.StopDeadline || !errors.Is(err, context.DeadlineExceeded) {
			wrongCause++
		}
	}
	if notRetried != 0 || wrongCause != 0 {
		t.Errorf("per-attempt timeouts not retried: %d/%d; caller deadlines not reported as StopDeadline with context.DeadlineExceeded: %d/%d, want 0, 0", notRetried, n, wrongCause, n)
	}
}
