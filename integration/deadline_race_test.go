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
func TestServerDeadlineRace(t *testing.T) {
	srv, addr := startServer(t, sandboxtest.WithSandboxes("sb-1"))
	// The attempt after the stalled one is answered at once, but on a loaded machine it may
	// itself take longer than 20ms: the policy allows more attempts, so that the call fails
	// only when a per-attempt timeout is not retried (the server's default answer after its
	// script is success).
	p := fastPolicy(5)
	p.PerAttemptTimeout = 20 * time.Millisecond
	c := dial(t, addr, []interceptor.Option{interceptor.WithPolicy(p), interceptor.WithBudget(nil)})
	const n = 30
	notRetried, wrongCause := 0, 0
	for range n {
		srv.Reset()
		srv.Script(mGet, sandboxtest.Stall(), sandboxtest.Succeed())
		if _, err := c.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}); err != nil {
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
