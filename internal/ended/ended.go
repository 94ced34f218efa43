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
