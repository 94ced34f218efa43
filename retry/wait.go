package retry

import (
	"context"
	"errors"
	"time"

	"github.com/cenkalti/backoff/v4"
)

var (
	errClosed     = errors.New("retry: connection closed")
	errMaxElapsed = errors.New("retry: max elapsed time while waiting for the connection")
)

// wait waits d from now before the next attempt, then, while the connection is not ready,
// for it to become ready: each further stretch of the policy's backoff schedule it waits is
// an attempt of the burst spent, bounded by MaxElapsed and the caller's deadline. When only
// the last attempt of the schedule is left, that attempt is made whatever the connection's
// state: a server that is gone fails the call within the schedule, after at most
// MaxAttempts attempts, with the connection's own error, and every retry the hooks were
// told of is an attempt made. It returns nil to go on; ctx's error when ctx ended;
// errClosed when the connection was closed; errMaxElapsed when MaxElapsed ran out.
func (t *tracker) wait(ctx context.Context, d time.Duration, now time.Time) error {
	var closed <-chan struct{}
	if t.conn != nil {
		closed = t.conn.Closed()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		t.waited += time.Since(now)
		return ctx.Err()
	case <-closed:
		t.waited += time.Since(now)
		return errClosed
	case <-timer.C:
		t.waited += d
	}
	if t.conn == nil {
		return nil
	}
	if ready, _ := t.conn.Ready(); ready {
		return nil
	}
	start := time.Now()
	defer func() { t.waited += time.Since(start) }()
	for {
		// While the connection would fail the attempt fast, or make it wait to connect,
		// spend the schedule's next stretch waiting for it instead of an attempt.
		if ready, _ := t.conn.Ready(); ready || t.attempt+t.skipped+1 >= t.r.policy.MaxAttempts {
			return nil
		}
		t.skipped++
		stretch, err := t.stretch()
		if err != nil {
			return err
		}
		timer.Reset(stretch)
		if ready, err := t.waitReady(ctx, closed, timer.C); ready || err != nil {
			return err
		}
	}
}

// stretch returns the next stretch of the schedule to spend waiting for the connection:
// the backoff's next wait, within MaxElapsed; errMaxElapsed when MaxElapsed is spent.
func (t *tracker) stretch() (time.Duration, error) {
	stretch := max(t.bo.NextBackOff(), 1)
	if p := &t.r.policy; p.MaxElapsed > 0 {
		left := p.MaxElapsed - time.Since(t.start)
		if left <= 0 {
			return 0, errMaxElapsed
		}
		stretch = min(stretch, left)
	}
	return stretch, nil
}

// waitReady waits until the connection is ready (true), or the stretch's timer fires
// (false), or ctx ends or the connection is closed (their errors).
func (t *tracker) waitReady(ctx context.Context, closed <-chan struct{}, stretch <-chan time.Time) (bool, error) {
	ready, changed := t.conn.Ready()
	for !ready {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-closed:
			return false, errClosed
		case <-changed:
			ready, changed = t.conn.Ready()
		case <-stretch:
			return false, nil
		}
	}
	return true, nil
}

// newBackoff returns the policy's backoff sequence, computed by cenkalti/backoff: before
// retry n, min(Initial*Multiplier^(n-1), Max), multiplied by a random factor in
// [1-Jitter, 1+Jitter] (the library's rounding may move a wait by 1ns).
func (r *Retrier) newBackoff() *backoff.ExponentialBackOff {
	p := &r.policy
	b := &backoff.ExponentialBackOff{
		InitialInterval:     p.InitialBackoff,
		RandomizationFactor: p.Jitter,
		Multiplier:          p.Multiplier,
		MaxInterval:         p.MaxBackoff,
		MaxElapsedTime:      0, // the loop keeps its own time
		Stop:                backoff.Stop,
		Clock:               backoff.SystemClock,
	}
	b.Reset()
	return b
}
