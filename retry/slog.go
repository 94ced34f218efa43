package retry

import (
	"context"
	"errors"
	"log/slog"

	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
)

// SlogHooks returns hooks that report to l: a scheduled retry at Info ("retry scheduled")
// and a stop at Warn ("retry stopped"), with the attempt, delay and its source, code, kind,
// operation and the error's one-line text as attributes. ErrorInfo metadata is never logged.
// A nil l uses slog.Default().
func SlogHooks(l *slog.Logger) Hooks {
	if l == nil {
		l = slog.Default()
	}
	return Hooks{
		OnRetry: func(ctx context.Context, ev RetryEvent) {
			source := "backoff"
			if ev.FromHint {
				source = "server hint"
			}
			l.LogAttrs(ctx, slog.LevelInfo, "retry scheduled", append(errAttrs(ev.Err),
				slog.Int("attempt", ev.Attempt), slog.Duration("delay", ev.Delay), slog.String("delay_source", source))...)
		},
		OnStop: func(ctx context.Context, ev StopEvent) {
			l.LogAttrs(ctx, slog.LevelWarn, "retry stopped", append(errAttrs(ev.Err),
				slog.Int("attempts", ev.Attempts), slog.String("cause", ev.Cause.String()),
				slog.Duration("total_wait", ev.TotalWait))...)
		},
	}
}

func errAttrs(err error) []slog.Attr {
	attrs := []slog.Attr{slog.String("code", status.Code(err).String())}
	var e *errs.Error
	if errors.As(err, &e) {
		attrs = append(attrs, slog.String("kind", e.Kind().String()))
		if op := e.Operation(); op != "" {
			attrs = append(attrs, slog.String("operation", op))
		}
	}
	return append(attrs, slog.String("error", errText(err)))
}
