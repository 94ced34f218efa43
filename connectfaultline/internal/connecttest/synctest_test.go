package connecttest_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"

	"github.com/faultline-go/faultline/connectfaultline/internal/connecttest"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
)

// inBubble runs f inside a synctest bubble for every HTTP version and protocol, with an
// in-memory env made inside the bubble.
func inBubble(t *testing.T, f func(t *testing.T, e *env), opts ...sandboxtest.Option) {
	t.Helper()
	for _, v := range connecttest.HTTPVersions() {
		for _, p := range connecttest.Protocols() {
			t.Run(fmt.Sprintf("%v/%v", v, p), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) { f(t, newEnv(t, memory, v, p, opts...)) })
			})
		}
	}
}

// retryDelay returns the RetryInfo delay of a connect error, if it has one.
func retryDelay(err error) (time.Duration, bool) {
	ce, ok := errors.AsType[*connect.Error](err)
	if !ok {
		return 0, false
	}
	for _, d := range ce.Details() {
		if v, err := d.Value(); err == nil {
			if ri, ok := v.(*errdetails.RetryInfo); ok {
				return ri.GetRetryDelay().AsDuration(), true
			}
		}
	}
	return 0, false
}

// TestSynctestDelayAndDeadline checks that a Delay and a client deadline run on the
// bubble's virtual clock, on every HTTP version and protocol: a 10 s delay takes exactly
// 10 s of virtual time, and a 3 s deadline ends a 10 s delay after exactly 3 s, before the
// service saw the call.
func TestSynctestDelayAndDeadline(t *testing.T) {
	inBubble(t, func(t *testing.T, e *env) {
		e.srv.Inject(mGet, connecttest.Delay(10*time.Second), connecttest.Delay(10*time.Second))
		start := time.Now()
		if err := getSandbox(t.Context(), e, "sb-1"); err != nil {
			t.Fatalf("GetSandbox with a 10s delay = %v, want nil", err)
		}
		if got := time.Since(start); got != 10*time.Second {
			t.Errorf("GetSandbox with a 10s delay took %v, want 10s", got)
		}

		ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
		defer cancel()
		start = time.Now()
		err := getSandbox(ctx, e, "sb-1")
		if got := time.Since(start); got != 3*time.Second {
			t.Errorf("GetSandbox with a 3s deadline took %v, want 3s", got)
		}
		if c := codeOf(err); c != connect.CodeDeadlineExceeded {
			t.Errorf("GetSandbox with a 3s deadline = %v, want DEADLINE_EXCEEDED", err)
		}
		if a, c := e.srv.Arrived(mGet), e.srv.Calls(mGet); a != 2 || c != 1 {
			t.Errorf("Arrived, Calls(GetSandbox) = %d, %d, want 2, 1", a, c)
		}
	})
}

// TestSynctestRetryInfo is the shape of a RetryInfo test of a connect interceptor: the
// server asks for 5 s twice, the caller waits what it says, and 10 s of virtual time pass.
func TestSynctestRetryInfo(t *testing.T) {
	inBubble(t, func(t *testing.T, e *env) {
		e.srv.FailNext(mGet, 2, faultlinetest.Status(codes.Unavailable, "restarting",
			faultlinetest.ErrorInfo(sandboxtest.Domain, "CWSANDBOX_RUNNER_UNAVAILABLE", nil),
			faultlinetest.RetryInfo(5*time.Second)))
		start := time.Now()
		for attempt := 1; ; attempt++ {
			err := getSandbox(t.Context(), e, "sb-1")
			if err == nil {
				break
			}
			d, ok := retryDelay(err)
			if !ok || attempt > 3 {
				t.Fatalf("GetSandbox attempt %d = %v, want UNAVAILABLE with a RetryInfo", attempt, err)
			}
			time.Sleep(d)
		}
		if got := time.Since(start); got != 10*time.Second {
			t.Errorf("three attempts with two 5s hints took %v, want 10s", got)
		}
		if got := e.srv.Calls(mGet); got != 3 {
			t.Errorf("Calls(GetSandbox) = %d, want 3", got)
		}
	})
}

// TestSynctestStallAndLog checks the server's own timers in the bubble: a stalled call
// ends at the client's deadline, and a log of 4 entries one second apart takes 4 s.
func TestSynctestStallAndLog(t *testing.T) {
	inBubble(t, func(t *testing.T, e *env) {
		e.srv.Script(mGet, sandboxtest.Stall())
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		start := time.Now()
		err := getSandbox(ctx, e, "sb-1")
		if c := codeOf(err); c != connect.CodeDeadlineExceeded || time.Since(start) != 2*time.Second {
			t.Errorf("stalled GetSandbox = %v after %v, want DEADLINE_EXCEEDED after 2s", err, time.Since(start))
		}
		if got := e.srv.Handled(mGet); got != 0 {
			t.Errorf("Handled(GetSandbox) = %d, want 0", got)
		}

		start = time.Now()
		got, err := recvLogs(t.Context(), e, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
		if err != nil || len(got) != 4 {
			t.Errorf("StreamLogs = %d entries, %v, want 4, nil", len(got), err)
		}
		if d := time.Since(start); d != 4*time.Second {
			t.Errorf("StreamLogs of 4 entries 1s apart took %v, want 4s", d)
		}
	}, sandboxtest.WithLog(4, time.Second))
}

// TestSynctestReset checks that resets work in the bubble too, and leave nothing behind.
func TestSynctestReset(t *testing.T) {
	inBubble(t, func(t *testing.T, e *env) {
		for _, how := range resets {
			e.srv.Inject(mCreate, connecttest.ResetAfter(how, 0).After(time.Second))
			start := time.Now()
			_, err := e.sb.CreateSandbox(t.Context(), connect.NewRequest(&sandboxpb.CreateSandboxRequest{}))
			checkTransportError(t, "CreateSandbox "+how.String(), err, resetCodes(memory, e.ep.HTTP, how, false))
			if d := time.Since(start); d != time.Second {
				t.Errorf("CreateSandbox reset after a 1s delay took %v, want 1s", d)
			}
		}
		if got := e.srv.SandboxesCreated(); got != 2 {
			t.Errorf("SandboxesCreated() = %d, want 2", got)
		}
	})
}

// TestDelayRealClock is the one real-clock check of Delay, on TCP.
func TestDelayRealClock(t *testing.T) {
	e := newEnv(t, tcp, connecttest.HTTP2, connecttest.Connect)
	e.srv.Inject(mGet, connecttest.Delay(30*time.Millisecond))
	start := time.Now()
	if err := getSandbox(callCtx(t), e, "sb-1"); err != nil {
		t.Fatalf("GetSandbox = %v, want nil", err)
	}
	if d := time.Since(start); d < 30*time.Millisecond {
		t.Errorf("GetSandbox with a 30ms delay took %v, want at least 30ms", d)
	}
}
