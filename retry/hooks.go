package retry

import (
	"context"
	"time"
)

// Hooks are called by the retry loop. They run on the caller's goroutine, so they must be
// quick; a nil hook is skipped. The library never logs: hooks are how to observe it.
// [WithHooks] combines several sets (a logger and metrics, say). Every event names its call:
// the full method and, for calls a transport makes (package interceptor), the connection's
// canonical target. ctx is the caller's context, so a hook can reach the caller's trace
// span.
type Hooks struct {
	// OnRetry is called when an attempt failed and a retry is scheduled, before the wait.
	OnRetry func(ctx context.Context, ev RetryEvent)
	// OnDone is called once when a call that retried or failed is over, whatever its
	// outcome: with the final error and why retrying stopped when it failed, with a nil Err
	// when it succeeded after retries. A call that succeeded on its first attempt reports
	// nothing (and allocates nothing). For a stream, it runs when the stream ends, not when
	// it commits. It is what call-level metrics and "retry stopped" logs need.
	OnDone func(ctx context.Context, ev DoneEvent)
}

// joinHooks returns hooks that call each set's hooks in order. Nil hooks are skipped; with
// one set (or none) it returns that set (or the zero Hooks) as it is.
func joinHooks(sets ...Hooks) Hooks {
	var retries []func(context.Context, RetryEvent)
	var dones []func(context.Context, DoneEvent)
	for _, h := range sets {
		if h.OnRetry != nil {
			retries = append(retries, h.OnRetry)
		}
		if h.OnDone != nil {
			dones = append(dones, h.OnDone)
		}
	}
	return Hooks{OnRetry: join(retries), OnDone: join(dones)}
}

// join calls fns in order; nil for none, the function itself for one.
func join[E any](fns []func(context.Context, E)) func(context.Context, E) {
	switch len(fns) {
	case 0:
		return nil
	case 1:
		return fns[0]
	}
	return func(ctx context.Context, ev E) {
		for _, f := range fns {
			f(ctx, ev)
		}
	}
}

// RetryEvent reports a scheduled retry.
type RetryEvent struct {
	Method   string        // the full method name ("/pkg.Service/Method"); "" for Do
	Target   string        // the connection's canonical target ("dns:///host:443"), or the server's address under connect-go; "" for Do
	Attempt  int           // the attempt that failed, 1 for the first, resumes counted
	Err      error         // its error
	Delay    time.Duration // the wait before the next attempt
	FromHint bool          // whether Delay came from the server's RetryInfo (else backoff)
	Resumed  bool          // whether the next attempt resumes a stream where it stopped
}

// DoneEvent reports that a call that retried or failed is over.
type DoneEvent struct {
	Method    string        // as RetryEvent's
	Target    string        // as RetryEvent's
	Attempts  int           // attempts made, including the first, resumes counted
	TotalWait time.Duration // time spent waiting between attempts
	Reason    StopReason    // why retrying stopped; 0 when the call succeeded
	Err       error         // the call's final error (a *Error after retries); nil when it succeeded
}
