package retry

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
)

// SlogHooks returns hooks that report to l (slog.Default() when nil):
//
//   - "retry scheduled" at Info, when a failed attempt is to be retried: attempt, delay and
//     delay_source ("server hint" or "backoff");
//   - "retry succeeded" at Info, when a call that retried succeeded: attempts, total_wait;
//   - "retry stopped", when a call ended with an error: attempts, cause and total_wait. Its
//     level says whether retrying gave up: Warn when a failure the policy retries was not
//     retried further (attempts exhausted, the budget, the deadline, a server delay above the
//     limit, MaxElapsed); Info when the caller cancelled, or when a failure that is not
//     retried ended a call after retries; Debug when the call's only failure was never
//     retryable (its kind, its idempotency, a RESOURCE_EXHAUSTED without server signal, a
//     local failure): an expected NOT_FOUND is the caller's to report, and must not flood a
//     log at Warn.
//
// Every record also carries, when known, the method and target, and the error's code,
// kind, reason, domain, operation and one-line text. ErrorInfo metadata is never logged.
func SlogHooks(l *slog.Logger) Hooks {
	if l == nil {
		l = slog.Default()
	}
	return Hooks{
		OnRetry: func(ctx context.Context, ev RetryEvent) {
			if !l.Enabled(ctx, slog.LevelInfo) {
				return
			}
			source := "backoff"
			if ev.FromHint {
				source = "server hint"
			}
			l.LogAttrs(ctx, slog.LevelInfo, "retry scheduled", append(callAttrs(ev.Method, ev.Target, ev.Err),
				slog.Int("attempt", ev.Attempt), slog.Duration("delay", ev.Delay), slog.String("delay_source", source))...)
		},
		OnDone: func(ctx context.Context, ev DoneEvent) {
			if ev.Err != nil {
				level := stopLevel(ev.Reason, ev.Attempts)
				if !l.Enabled(ctx, level) {
					return
				}
				last := ev.Err // the error itself: attempts and cause are attributes of their own
				if e, ok := ev.Err.(*Error); ok {
					last = e.err
				}
				l.LogAttrs(ctx, level, "retry stopped", append(callAttrs(ev.Method, ev.Target, last),
					slog.Int("attempts", ev.Attempts), slog.String("stop_reason", ev.Reason.String()),
					slog.Duration("total_wait", ev.TotalWait))...)
				return
			}
			if l.Enabled(ctx, slog.LevelInfo) {
				l.LogAttrs(ctx, slog.LevelInfo, "retry succeeded", append(callAttrs(ev.Method, ev.Target, nil),
					slog.Int("attempts", ev.Attempts), slog.Duration("total_wait", ev.TotalWait))...)
			}
		},
	}
}

// stopLevel is the level of a "retry stopped" record (see SlogHooks).
func stopLevel(c StopReason, attempts int) slog.Level {
	switch c {
	case StopNotRetryable, StopUnsafe, StopNoServerSignal, StopLocalFailure:
		if attempts == 1 {
			return slog.LevelDebug
		}
		return slog.LevelInfo
	case StopCancelled:
		return slog.LevelInfo
	}
	return slog.LevelWarn
}

// callAttrs returns the attributes naming a call and, when err is not nil, its error.
func callAttrs(method, target string, err error) []slog.Attr {
	attrs := make([]slog.Attr, 0, 12)
	if method != "" {
		attrs = append(attrs, slog.String("method", method))
	}
	if target != "" {
		attrs = append(attrs, slog.String("target", target))
	}
	if err == nil {
		return attrs
	}
	attrs = append(attrs, slog.String("code", status.Code(err).String()))
	if e, ok := errors.AsType[*errs.Error](err); ok {
		attrs = append(attrs, slog.String("kind", e.Kind().String()))
		if r := e.Reason(); r != "" {
			attrs = append(attrs, slog.String("reason", r), slog.String("domain", e.Domain()))
		}
		if op := e.Resource().Operation; op != "" {
			attrs = append(attrs, slog.String("operation", op))
		}
	}
	return append(attrs, slog.String("error", errText(err)))
}
