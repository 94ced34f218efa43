package interceptor_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

// lines returns "line a\n" .. "line b-1\n".
func lines(a, b int) []string {
	var out []string
	for i := a; i < b; i++ {
		out = append(out, fmt.Sprintf("line %d\n", i))
	}
	return out
}

// logEnv serves a sandbox "sb-1" whose log has n lines, with scripts for the first calls.
func logEnv(t *testing.T, n int, opts []interceptor.Option, scripts ...sandboxtest.StreamLogsScript) *env {
	t.Helper()
	srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"), sandboxtest.WithLog(n, 0))
	e := serve(t, srv, interceptor.DialOptions(append([]interceptor.Option{noBudget(retry.DefaultPolicy(), retry.WithBudget(nil))}, opts...)...))
	srv.ScriptStreamLogs(scripts...)
	return e
}

// TestResumeAfterK: a stream that fails after k lines is resumed from the last line's cursor:
// the caller sees every line once, in order; the resumed request carries the cursor and no
// history selection, and keeps everything else.
func TestResumeAfterK(t *testing.T) {
	for k := 1; k <= 5; k++ {
		t.Run(fmt.Sprint(k), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := logEnv(t, 6, []interceptor.Option{noBudget(secondsPolicy())},
					sandboxtest.StreamLogsScript{Entries: k, Err: unavailable()})
				since := timestamppb.New(time.Unix(1000, 0))
				req := &sandboxpb.StreamLogsRequest{SandboxId: "sb-1", Follow: true, TailLines: 100, SinceTime: since, Container: "main"}
				st, err := e.sb.StreamLogs(context.Background(), req)
				if err != nil {
					t.Fatal(err)
				}
				ctx := st.Context()
				got, err := recvLogs(st)
				if err != nil || fmt.Sprint(got) != fmt.Sprint(lines(0, 6)) {
					t.Fatalf("stream = %q, %v; want %q once each", got, err, lines(0, 6))
				}
				if ctx != st.Context() {
					t.Errorf("Context() changed across the resume")
				}
				reqs := e.srv.Requests(streamLogs)
				if len(reqs) != 2 {
					t.Fatalf("server calls = %d, want 2", len(reqs))
				}
				want := proto.CloneOf(req)
				want.TailLines, want.SinceTime = 0, nil
				want.ResumeLogSessionId, want.ResumeLogOffset = "logs-sb-1", uint64(k)
				if !proto.Equal(reqs[1], want) {
					t.Errorf("resumed request = %v, want %v", reqs[1], want)
				}
				if !proto.Equal(req, want) && req.GetResumeLogOffset() != 0 {
					t.Errorf("caller's request changed: %v", req)
				}
				if got := headerValues(t, e.srv.Metadata(streamLogs), attemptHeader); fmt.Sprint(got) != "[ 1]" {
					t.Errorf("attempt headers = %q, want [\"\" \"1\"]", got)
				}
			})
		})
	}
}

// TestResumeBursts: attempts count per burst of failures: a stream may be resumed more times
// than MaxAttempts when each resumed attempt delivers data, while a burst that delivers
// nothing exhausts the policy.
func TestResumeBursts(t *testing.T) {
	fail := func(n int) sandboxtest.StreamLogsScript {
		return sandboxtest.StreamLogsScript{Entries: n, Err: unavailable()}
	}
	t.Run("each burst delivers", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := logEnv(t, 10, []interceptor.Option{noBudget(attempts(secondsPolicy(), 2))},
				fail(2), fail(2), fail(2), fail(2))
			st, err := e.sb.StreamLogs(context.Background(), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1", Follow: true})
			if err != nil {
				t.Fatal(err)
			}
			got, err := recvLogs(st)
			if err != nil || fmt.Sprint(got) != fmt.Sprint(lines(0, 10)) {
				t.Fatalf("stream = %q, %v; want %q once each", got, err, lines(0, 10))
			}
			if n := e.srv.Calls(streamLogs); n != 5 {
				t.Errorf("server calls = %d, want 5 (4 resumes)", n)
			}
		})
	})
	t.Run("a burst without data exhausts the policy", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := logEnv(t, 10, []interceptor.Option{noBudget(attempts(secondsPolicy(), 3))},
				fail(2), fail(0), fail(0), fail(0))
			st, err := e.sb.StreamLogs(context.Background(), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
			if err != nil {
				t.Fatal(err)
			}
			got, err := recvLogs(st)
			if fmt.Sprint(got) != fmt.Sprint(lines(0, 2)) {
				t.Errorf("received %q, want %q", got, lines(0, 2))
			}
			if cause, n := stopOf(err); cause != retry.StopExhausted || n != 3 {
				t.Errorf("stop = %v after %d attempts, want %v after 3 (err %v)", cause, n, retry.StopExhausted, err)
			}
			if n := e.srv.Calls(streamLogs); n != 3 {
				t.Errorf("server calls = %d, want 3", n)
			}
		})
	})
}

// TestResumeRefused: a stream is not resumed when there is no cursor, when the failure is
// not one the policy retries, or is a CANCELLED or DEADLINE_EXCEEDED, when the method is not
// known to be idempotent, or when the caller's context ends; its final error says why (the
// policy's stop reason, else "not resumable"). (A resume after progress spends no budget:
// TestResumeBudget.)
func TestResumeRefused(t *testing.T) {
	refuse := func(req, last proto.Message) (proto.Message, bool) { return nil, false }
	for _, tc := range []struct {
		name  string
		opts  []interceptor.Option
		err   *status.Status
		code  codes.Code
		stop  retry.StopReason
		calls int
	}{
		{name: "no cursor", opts: []interceptor.Option{interceptor.WithResumer(streamLogs, refuse)}, err: unavailable(), code: codes.Unavailable,
			stop: retry.StopNotResumable, calls: 1},
		{name: "resumer off", opts: []interceptor.Option{interceptor.WithResumer(streamLogs, nil)}, err: unavailable(), code: codes.Unavailable,
			stop: retry.StopNotResumable, calls: 1},
		{name: "CANCELLED", err: faultlinetest.Status(codes.Canceled, "stopped"), code: codes.Canceled, stop: retry.StopNotRetryable, calls: 1},
		{name: "DEADLINE_EXCEEDED", err: faultlinetest.Status(codes.DeadlineExceeded, "slow"), code: codes.DeadlineExceeded,
			stop: retry.StopNotRetryable, calls: 1},
		{name: "CANCELLED with a transient reason", err: faultlinetest.Status(codes.Canceled, "stopped",
			faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_RUNNER_UNAVAILABLE", nil)), code: codes.Canceled,
			stop: retry.StopNotResumable, calls: 1},
		{name: "DEADLINE_EXCEEDED with a policy that retries it", opts: []interceptor.Option{noBudget(retryTimeouts())},
			err: faultlinetest.Status(codes.DeadlineExceeded, "slow"), code: codes.DeadlineExceeded, stop: retry.StopNotResumable, calls: 1},
		{name: "not idempotent", opts: []interceptor.Option{interceptor.WithIdempotency(streamLogs, retry.NotIdempotent)}, err: unavailable(), code: codes.Unavailable,
			stop: retry.StopUnsafe, calls: 1},
		{name: "idempotency unknown", opts: []interceptor.Option{interceptor.WithIdempotency(streamLogs, retry.IdempotencyUnknown)}, err: unavailable(),
			code: codes.Unavailable, stop: retry.StopNotResumable, calls: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				opts := append([]interceptor.Option{noBudget(secondsPolicy())}, tc.opts...)
				e := logEnv(t, 10, opts, sandboxtest.StreamLogsScript{Entries: 2, Err: tc.err})
				st, err := e.sb.StreamLogs(context.Background(), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
				if err != nil {
					t.Fatal(err)
				}
				got, err := recvLogs(st)
				if fmt.Sprint(got) != fmt.Sprint(lines(0, 2)) || status.Code(err) != tc.code {
					t.Errorf("stream = %q, %v; want %q then %v", got, err, lines(0, 2), tc.code)
				}
				if cause, _ := stopOf(err); cause != tc.stop {
					t.Errorf("stop = %v, want %v", cause, tc.stop)
				}
				if n := e.srv.Calls(streamLogs); n != tc.calls {
					t.Errorf("server calls = %d, want %d", n, tc.calls)
				}
			})
		})
	}
	t.Run("caller cancels during the wait", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := logEnv(t, 10, []interceptor.Option{noBudget(secondsPolicy())},
				sandboxtest.StreamLogsScript{Entries: 2, Err: unavailable()})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			st, err := e.sb.StreamLogs(ctx, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
			if err != nil {
				t.Fatal(err)
			}
			time.AfterFunc(500*time.Millisecond, cancel) // inside the 1 s wait
			start := time.Now()
			got, err := recvLogs(st)
			if fmt.Sprint(got) != fmt.Sprint(lines(0, 2)) || !errors.Is(err, context.Canceled) {
				t.Errorf("stream = %q, %v; want %q then context.Canceled", got, err, lines(0, 2))
			}
			if d := time.Since(start); d != 500*time.Millisecond {
				t.Errorf("returned after %v, want at the cancel", d)
			}
			if n := e.srv.Calls(streamLogs); n != 1 {
				t.Errorf("server calls = %d, want 1", n)
			}
		})
	})
}

// retryTimeouts is secondsPolicy retrying request timeouts and cancellations too.
func retryTimeouts() retry.Policy {
	p := secondsPolicy()
	p.RetryOn |= retry.On(errs.ErrSandboxRequestTimeout, errs.ErrSandboxNotRunning)
	return p
}

// refusingBudget allows no retry.
type refusingBudget struct{}

func (refusingBudget) Record(bool, retry.Outcome) {}
func (refusingBudget) Allow() bool                { return false }

// TestResumeBudget checks overload.md rule 1 for resumes: a resume after the stream delivered
// messages is a continuation (the cursor skips what was delivered; the server repeats no
// work), so it spends no budget; a resume after an attempt that delivered nothing is a retry
// and spends, as any retry.
func TestResumeBudget(t *testing.T) {
	fail := func(n int) sandboxtest.StreamLogsScript {
		return sandboxtest.StreamLogsScript{Entries: n, Err: unavailable()}
	}
	for _, tc := range []struct {
		name    string
		scripts []sandboxtest.StreamLogsScript
		lines   int
		code    codes.Code
		stop    retry.StopReason
		calls   int
	}{
		{name: "after progress, free", scripts: []sandboxtest.StreamLogsScript{fail(2), fail(3), fail(1)}, lines: 10, code: codes.OK, calls: 4},
		{name: "after an empty attempt, spends", scripts: []sandboxtest.StreamLogsScript{fail(2), fail(0)}, lines: 2,
			code: codes.Unavailable, stop: retry.StopBudget, calls: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				opts := []interceptor.Option{noBudget(secondsPolicy(), retry.WithBudget(refusingBudget{}))}
				e := logEnv(t, 10, opts, tc.scripts...)
				st, err := e.sb.StreamLogs(context.Background(), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1", Follow: true})
				if err != nil {
					t.Fatal(err)
				}
				got, err := recvLogs(st)
				if fmt.Sprint(got) != fmt.Sprint(lines(0, tc.lines)) || status.Code(err) != tc.code {
					t.Errorf("stream = %q, %v; want %q then %v", got, err, lines(0, tc.lines), tc.code)
				}
				if cause, _ := stopOf(err); cause != tc.stop {
					t.Errorf("stop = %v, want %v", cause, tc.stop)
				}
				if n := e.srv.Calls(streamLogs); n != tc.calls {
					t.Errorf("server calls = %d, want %d", n, tc.calls)
				}
			})
		})
	}
}

// TestResumeOneStream: hooks see the resume marked as one; Header stays the first attempt's.
func TestResumeOneStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var events []retry.RetryEvent
		hooks := retry.Hooks{OnRetry: func(_ context.Context, ev retry.RetryEvent) { events = append(events, ev) }}
		e := logEnv(t, 4, []interceptor.Option{noBudget(secondsPolicy(), retry.WithHooks(hooks))},
			sandboxtest.StreamLogsScript{Entries: 2, Err: unavailable()})
		st, err := e.sb.StreamLogs(context.Background(), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
		if err != nil {
			t.Fatal(err)
		}
		md1, err := st.Header()
		if err != nil || md1 == nil {
			t.Fatalf("Header() = %v, %v", md1, err)
		}
		if _, err := recvLogs(st); err != nil {
			t.Fatal(err)
		}
		md2, _ := st.Header()
		if fmt.Sprint(md2) != fmt.Sprint(md1) {
			t.Errorf("Header() after the resume = %v, want the first attempt's %v", md2, md1)
		}
		if len(events) != 1 || !events[0].Resumed || events[0].Method != streamLogs {
			t.Errorf("retry events = %+v, want one resume of %s", events, streamLogs)
		}
	})
}

func TestResumeStreamLogs(t *testing.T) {
	req := &sandboxpb.StreamLogsRequest{SandboxId: "sb-1", TailLines: 5}
	for _, tc := range []struct {
		name string
		last proto.Message
		ok   bool
	}{
		{name: "cursor", last: &sandboxpb.LogEntry{LogSessionId: "s", NextLogOffset: 7}, ok: true},
		{name: "no session id", last: &sandboxpb.LogEntry{NextLogOffset: 7}},
		{name: "no offset", last: &sandboxpb.LogEntry{LogSessionId: "s"}},
		{name: "in-band error entry", last: &sandboxpb.LogEntry{LogSessionId: "s", NextLogOffset: 7,
			Error: &sandboxpb.LogStreamError{Message: "truncated", Code: "STREAM_TRUNCATED"}}},
		{name: "nothing delivered", last: nil},
		{name: "another message", last: &sandboxpb.Sandbox{SandboxId: "x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, ok := interceptor.ResumeStreamLogs(req, tc.last)
			if ok != tc.ok {
				t.Fatalf("ResumeStreamLogs(%v) ok = %v, want %v", tc.last, ok, tc.ok)
			}
			if ok {
				n := next.(*sandboxpb.StreamLogsRequest)
				if n.GetResumeLogSessionId() != "s" || n.GetResumeLogOffset() != 7 || n.GetTailLines() != 0 || n.GetSandboxId() != "sb-1" {
					t.Errorf("next = %v, want sb-1 resumed at s/7 without tail_lines", n)
				}
			}
			if req.GetTailLines() != 5 || req.GetResumeLogOffset() != 0 {
				t.Errorf("request changed: %v", req)
			}
		})
	}
}
