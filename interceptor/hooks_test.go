package interceptor_test

import (
	"context"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

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
