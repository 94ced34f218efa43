package interceptor_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

// eventLog records "kind method target" for every hook call.
type eventLog struct {
	mu  sync.Mutex
	log []string
}

func (l *eventLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.log = append(l.log, s)
}

func (l *eventLog) hooks() retry.Hooks {
	return retry.Hooks{
		OnRetry: func(_ context.Context, ev retry.RetryEvent) { l.add("retry " + ev.Method + " " + ev.Target) },
		OnDone:  func(_ context.Context, ev retry.DoneEvent) { l.add("done " + ev.Method + " " + ev.Target) },
	}
}

// TestHookEventsNameTheCall checks that the hooks' events carry the full method and the
// connection's canonical target, for unary calls and streams.
func TestHookEventsNameTheCall(t *testing.T) {
	var l eventLog
	e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(millisecondPolicy(), retry.WithHooks(l.hooks())))))
	target := e.conn.CanonicalTarget()
	if target != "passthrough:///bufconn" {
		t.Fatalf("CanonicalTarget() = %q, want passthrough:///bufconn", target)
	}
	ctx := context.Background()

	e.srv.FailNext(getSandbox, 1, unavailable())
	if _, err := e.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}); err != nil {
		t.Fatalf("GetSandbox: %v", err)
	}
	e.srv.FailNext(getSandbox, 1, faultlinetest.Status(codes.NotFound, "gone"))
	if _, err := e.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}); err == nil {
		t.Fatal("GetSandbox = nil error, want NOT_FOUND")
	}
	e.srv.FailNext(streamLogs, 1, unavailable())
	e.srv.ScriptStreamLogs(sandboxtest.StreamLogsScript{Entries: 1})
	st, err := e.sb.StreamLogs(ctx, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
	if err != nil {
		t.Fatalf("StreamLogs: %v", err)
	}
	if _, err := recvLogs(st); err != nil {
		t.Fatalf("StreamLogs receive: %v", err)
	}

	want := []string{
		"retry " + getSandbox + " " + target,
		"done " + getSandbox + " " + target,
		"done " + getSandbox + " " + target,
		"retry " + streamLogs + " " + target,
		"done " + streamLogs + " " + target,
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if diff := cmp.Diff(want, l.log); diff != "" {
		t.Errorf("hook events (-want +got):\n%s", diff)
	}
}

// TestHooksWithoutConn checks that an interceptor called without a connection (as in a
// unit test of a chain) emits events with an empty Target instead of failing.
func TestHooksWithoutConn(t *testing.T) {
	var l eventLog
	u := interceptor.Unary(interceptor.WithRetrier(retry.MustNew(millisecondPolicy(), retry.WithHooks(l.hooks()))))
	calls := 0
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
		calls++
		if calls == 1 {
			return unavailable().Err()
		}
		return nil
	}
	if err := u(context.Background(), getSandbox, &sandboxpb.GetSandboxRequest{}, &sandboxpb.Sandbox{}, nil, invoker); err != nil {
		t.Fatalf("call = %v, want nil after one retry", err)
	}
	want := []string{"retry " + getSandbox + " ", "done " + getSandbox + " "}
	if diff := cmp.Diff(want, l.log); diff != "" {
		t.Errorf("hook events (-want +got):\n%s", diff)
	}
}

// TestOneAttemptCallsReported: a call that makes one attempt (a one-attempt policy, or
// WithoutRetry) and fails still reaches OnDone, once, and still returns its classified
// error itself; with a throttle, such calls are shed like any other while the server
// rejects work for overload.
func TestOneAttemptCallsReported(t *testing.T) {
	one := millisecondPolicy()
	one.MaxAttempts = 1
	for _, tc := range []struct {
		name     string
		policy   retry.Policy
		callOpts []grpc.CallOption
	}{
		{name: "one-attempt policy", policy: one},
		{name: "WithoutRetry", policy: millisecondPolicy(), callOpts: []grpc.CallOption{interceptor.WithoutRetry()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var dones []retry.DoneEvent
				hooks := retry.Hooks{OnDone: func(_ context.Context, ev retry.DoneEvent) { dones = append(dones, ev) }}
				e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(tc.policy, retry.WithBudget(nil), retry.WithHooks(hooks)))))
				e.srv.FailNext(getSandbox, 1, unavailable())
				_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}, tc.callOpts...)
				if _, ok := err.(*errs.Error); !ok {
					t.Errorf("GetSandbox = %v (%T), want the attempt's *errs.Error itself", err, err)
				}
				if len(dones) != 1 || dones[0].Attempts != 1 || dones[0].Err == nil {
					t.Errorf("OnDone events = %+v, want one, for the failed call of 1 attempt", dones)
				}
			})
		})
	}
	t.Run("throttled", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := retry.MustNew(one, retry.WithBudget(nil), retry.WithThrottle(retry.DefaultThrottle()))
			e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(r)))
			e.srv.FailAlways(getSandbox, unavailable())
			shed := 0
			for range 50 {
				_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
				if errors.Is(err, retry.ErrThrottled) {
					shed++
				}
			}
			// With every attempt rejected, call i is shed with probability i/(i+1) once the
			// first rejection is in: fewer than 10 sheds in 50 calls has a chance below 1e-20.
			if shed < 10 || e.srv.Calls(getSandbox)+shed != 50 {
				t.Errorf("shed %d of 50 calls, server saw %d; want most shed, the rest sent", shed, e.srv.Calls(getSandbox))
			}
		})
	})
}
