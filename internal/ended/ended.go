// Package ended tells whether a call's context has ended, for the retry loop and the
// interceptors alike.
package ended

import (
	"context"
	"time"
)

// Err returns ctx's error, or context.DeadlineExceeded once its deadline has passed even if
// its timer has not fired yet: a server that resets an expired stream can report the
// deadline to the client a moment before the client's own timer does. It is nil while ctx
// is alive.
func Err(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
		return context.DeadlineExceeded
	}
	return nil
}

// Slack is how much earlier than a deadline a server may enforce it: a transport sends a
// deadline as a timeout, which may be truncated to a coarser unit (connect-go sends whole
// milliseconds on the Connect protocol; grpc-go and gRPC-Web, the smallest unit that fits),
// and the server counts it from when the call arrived.
const Slack = time.Millisecond

// Near reports whether deadline d has passed or is less than Slack away: a
// DEADLINE_EXCEEDED that comes back then is d's.
func Near(d time.Time) bool { return !time.Now().Before(d.Add(-Slack)) }

// Caller returns the caller's context error when a failure is the caller's doing: ctx has
// ended (see Err), or the failure is a DEADLINE_EXCEEDED (deadlineExceeded) that came back
// near ctx's deadline (the server ended the call at the deadline the caller sent, a moment
// before the caller's own timer). Otherwise nil.
func Caller(ctx context.Context, deadlineExceeded bool) error {
	if err := Err(ctx); err != nil {
		return err
	}
	if d, ok := ctx.Deadline(); ok && deadlineExceeded && Near(d) {
		return context.DeadlineExceeded
	}
	return nil
}
