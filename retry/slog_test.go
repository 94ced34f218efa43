package retry_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/retry"
)

// recordHandler keeps every record it handles, at every level.
type recordHandler struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *recordHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *recordHandler) WithGroup(string) slog.Handler            { return h }
func (h *recordHandler) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.recs = append(h.recs, r)
	return nil
}

// lines returns "LEVEL msg key=value ..." for each record, without durations' values.
func (h *recordHandler) lines() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for _, r := range h.recs {
		parts := []string{r.Level.String(), r.Message}
		r.Attrs(func(a slog.Attr) bool {
			parts = append(parts, a.Key+"="+a.Value.String())
			return true
		})
		out = append(out, strings.Join(parts, " "))
	}
	return out
}

// rpcError returns a classified gRPC error of code c with a trusted ErrorInfo reason and
// metadata that must never be logged.
func rpcError(c codes.Code, reason string) *errs.Error {
	st := faultlinetest.Status(c, "server says no",
		faultlinetest.ErrorInfo(classify.DefaultDomain, reason, map[string]string{"token": "s3cr3t"}))
	return classify.New().Classify(st.Err(), classify.Call{Method: "/coreweave.sandbox.v1.SandboxService/GetSandbox", Resource: errs.Resource{SandboxID: "sb-1"}})
}

func TestSlogHooks(t *testing.T) {
	const method = "/pkg.Service/Get" // as track names it
	unavail := rpcError(codes.Unavailable, "CWSANDBOX_RUNNER_UNAVAILABLE")
	common := "method=" + method + " target=dns:///sandbox.example:443 code=Unavailable kind=" + unavail.Kind().String() +
		" reason=CWSANDBOX_RUNNER_UNAVAILABLE domain=cwsandbox.com operation=GetSandbox error=" + unavail.Error()
	notFound := rpcError(codes.NotFound, "CWSANDBOX_SANDBOX_NOT_FOUND")
	nfCommon := "method=" + method + " target=dns:///sandbox.example:443 code=NotFound kind=" + notFound.Kind().String() +
		" reason=CWSANDBOX_SANDBOX_NOT_FOUND domain=cwsandbox.com operation=GetSandbox error=" + notFound.Error()
	tests := []struct {
		name string
		s    func() *script
		want []string
	}{
		{name: "first-try success logs nothing", s: func() *script { return newScript(nil) }},
		{name: "retried success", s: func() *script { return failThen(1, unavail) }, want: []string{
			"INFO retry scheduled " + common + " attempt=1 delay=200ms delay_source=backoff",
			"INFO retry succeeded method=" + method + " target=dns:///sandbox.example:443 attempts=2 total_wait=200ms",
		}},
		{name: "never retryable is debug", s: func() *script { return newScript(notFound) }, want: []string{
			"DEBUG retry stopped " + nfCommon + " attempts=1 stop_reason=not retryable total_wait=0s",
		}},
		{name: "not retryable after retries is info", s: func() *script { return newScript(unavail, notFound) }, want: []string{
			"INFO retry scheduled " + common + " attempt=1 delay=200ms delay_source=backoff",
			"INFO retry stopped " + nfCommon + " attempts=2 stop_reason=not retryable total_wait=200ms",
		}},
		{name: "exhausted is a warning", s: func() *script { return newScript(unavail) }, want: []string{
			"INFO retry scheduled " + common + " attempt=1 delay=200ms delay_source=backoff",
			"WARN retry stopped " + common + " attempts=2 stop_reason=attempts exhausted total_wait=200ms",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				h := &recordHandler{}
				r, err := retry.New(noJitter(2), retry.WithBudget(nil), retry.WithHooks(retry.SlogHooks(slog.New(h))))
				if err != nil {
					t.Fatal(err)
				}
				_ = drive(context.Background(), r, &conn{}, tt.s())
				got := h.lines()
				if diff := cmp.Diff(tt.want, got); diff != "" {
					t.Errorf("records (-want +got):\n%s", diff)
				}
				for _, line := range got {
					if strings.Contains(line, "s3cr3t") || strings.Contains(line, "token") {
						t.Errorf("record %q carries ErrorInfo metadata", line)
					}
				}
			})
		})
	}
}

// TestSlogStopLevels checks the level of "retry stopped" for every cause, after one
// attempt and after several.
func TestSlogStopLevels(t *testing.T) {
	tests := []struct {
		cause     retry.StopReason
		first     slog.Level // after one attempt
		afterMore slog.Level
	}{
		{retry.StopNotRetryable, slog.LevelDebug, slog.LevelInfo},
		{retry.StopUnsafe, slog.LevelDebug, slog.LevelInfo},
		{retry.StopNoServerSignal, slog.LevelDebug, slog.LevelInfo},
		{retry.StopLocalFailure, slog.LevelDebug, slog.LevelInfo},
		{retry.StopCancelled, slog.LevelInfo, slog.LevelInfo},
		{retry.StopExhausted, slog.LevelWarn, slog.LevelWarn},
		{retry.StopHintTooLong, slog.LevelWarn, slog.LevelWarn},
		{retry.StopDeadline, slog.LevelWarn, slog.LevelWarn},
		{retry.StopMaxElapsed, slog.LevelWarn, slog.LevelWarn},
		{retry.StopBudget, slog.LevelWarn, slog.LevelWarn},
		{retry.StopNotResumable, slog.LevelWarn, slog.LevelWarn},
	}
	for _, tt := range tests {
		t.Run(tt.cause.String(), func(t *testing.T) {
			for attempts, want := range map[int]slog.Level{1: tt.first, 3: tt.afterMore} {
				h := &recordHandler{}
				retry.SlogHooks(slog.New(h)).OnDone(context.Background(),
					retry.DoneEvent{Attempts: attempts, Reason: tt.cause, Err: notFound(), TotalWait: time.Second})
				if len(h.recs) != 1 || h.recs[0].Level != want {
					t.Errorf("OnDone(%v after %d attempts) logged %v, want one record at %v", tt.cause, attempts, h.lines(), want)
				}
			}
		})
	}
}
