package retry

import (
	"context"
	"strconv"
	"time"
)

// Hooks are called by the retry loop. They run on the caller's goroutine, so they must be
// quick; a nil hook is skipped. The library never logs: hooks are how to observe it.
// [JoinHooks] combines several sets (a logger and metrics, say). Every event names its call:
// the full method and, when the loop was told ([Tracker.SetTarget]; package interceptor
// does), the connection's canonical target. ctx is the caller's context, so a hook can
// reach the caller's trace span.
type Hooks struct {
	// OnRetry is called when an attempt failed and a retry is scheduled, before the wait.
	OnRetry func(ctx context.Context, ev RetryEvent)
	// OnStop is called when retrying stops with an error (not on success).
	OnStop func(ctx context.Context, ev StopEvent)
	// OnDone is called once when a call that retried or failed is over, whatever its
	// outcome; a call that succeeded on its first attempt reports nothing (and allocates
	// nothing). It is what call-level metrics need.
	OnDone func(ctx context.Context, ev DoneEvent)
}

// JoinHooks returns hooks that call each set's hooks in order. Nil hooks are skipped; with
// one set (or none) it returns that set (or the zero Hooks) as it is.
func JoinHooks(sets ...Hooks) Hooks {
	var retries []func(context.Context, RetryEvent)
	var stops []func(context.Context, StopEvent)
	var dones []func(context.Context, DoneEvent)
	for _, h := range sets {
		if h.OnRetry != nil {
			retries = append(retries, h.OnRetry)
		}
		if h.OnStop != nil {
			stops = append(stops, h.OnStop)
		}
		if h.OnDone != nil {
			dones = append(dones, h.OnDone)
		}
	}
	return Hooks{OnRetry: join(retries), OnStop: join(stops), OnDone: join(dones)}
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
	Method   string        // the full gRPC method name ("/pkg.Service/Method"), "" outside gRPC
	Target   string        // the connection's canonical target ("dns:///host:443"), "" outside gRPC
	Attempt  int           // the attempt that failed, 1 for the first
	Err      error         // its error
	Delay    time.Duration // the wait before the next attempt
	FromHint bool          // whether Delay came from the server's RetryInfo (else backoff)
	Resumed  bool          // whether the next attempt resumes a stream where it stopped
}

// String describes the event in one line, without error details beyond Err's own text.
func (ev RetryEvent) String() string {
	src := "backoff"
	if ev.FromHint {
		src = "server hint"
	}
	what := "retrying"
	if ev.Resumed {
		what = "resuming"
	}
	return methodPrefix(ev.Method) + "attempt " + strconv.Itoa(ev.Attempt) + " failed: " + errText(ev.Err) +
		"; " + what + " in " + ev.Delay.String() + " (" + src + ")"
}

// StopEvent reports that retrying stopped with an error.
type StopEvent struct {
	Method    string        // the full gRPC method name, "" outside gRPC
	Target    string        // the connection's canonical target, "" outside gRPC
	Attempts  int           // attempts made, including the first
	Err       error         // the last attempt's error
	Reason    StopReason    // why retrying stopped
	TotalWait time.Duration // time spent waiting between attempts
}

// String describes the event in one line.
func (ev StopEvent) String() string {
	return methodPrefix(ev.Method) + "stopped after " + strconv.Itoa(ev.Attempts) + " attempt(s), " + ev.Reason.String() +
		", waited " + ev.TotalWait.String() + ": " + errText(ev.Err)
}

// DoneEvent reports that a call that retried or failed is over.
type DoneEvent struct {
	Method    string        // the full gRPC method name, "" outside gRPC
	Target    string        // the connection's canonical target, "" outside gRPC
	Attempts  int           // attempts made, including the first
	TotalWait time.Duration // time spent waiting between attempts
	Reason    StopReason    // why retrying stopped; 0 when the call succeeded
	Err       error         // the call's final error; nil when it succeeded
}

// String describes the event in one line.
func (ev DoneEvent) String() string {
	outcome := "succeeded"
	if ev.Err != nil {
		outcome = "failed, " + ev.Reason.String() + ": " + errText(ev.Err)
	}
	return methodPrefix(ev.Method) + "done after " + strconv.Itoa(ev.Attempts) + " attempt(s), waited " +
		ev.TotalWait.String() + ", " + outcome
}

func methodPrefix(m string) string {
	if m == "" {
		return ""
	}
	return m + ": "
}
