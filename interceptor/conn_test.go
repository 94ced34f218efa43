package interceptor_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

// connected dials srv with the interceptors of r, waits until the connection is READY and
// returns it. Call inside a synctest bubble.
func connected(t *testing.T, srv *sandboxtest.Restartable, r *retry.Retrier) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///away", append(interceptor.DialOptions(interceptor.WithRetrier(r)),
		grpc.WithContextDialer(srv.Dial), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if _, err := sandboxpb.NewSandboxServiceClient(conn).GetSandbox(t.Context(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}); err != nil {
		t.Fatalf("warm-up GetSandbox: %v", err)
	}
	return conn
}

// retryCount counts OnRetry events.
type retryCount struct {
	mu sync.Mutex
	n  int
}

func (c *retryCount) hooks() retry.Hooks {
	return retry.Hooks{OnRetry: func(context.Context, retry.RetryEvent) { c.mu.Lock(); c.n++; c.mu.Unlock() }}
}

func (c *retryCount) get() int { c.mu.Lock(); defer c.mu.Unlock(); return c.n }

// TestServerGoneForGood: a server that is gone fails a call without a deadline within the
// policy's total backoff time, after at most MaxAttempts attempts, none of them spending
// the budget, with the connection's own error, stop reason StopNotReady, and one attempt
// made for every retry the hooks were told of (overload.md, rule 2).
func TestServerGoneForGood(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sb := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
		srv := sb.StartRestartable()
		p := retry.DefaultPolicy()
		b := &recordingBudget{}
		var rc retryCount
		conn := connected(t, srv, retry.MustNew(p, retry.WithBudget(b), retry.WithHooks(rc.hooks())))
		srv.Down()
		synctest.Wait() // the client has seen its connection close

		start := time.Now()
		_, err := sandboxpb.NewSandboxServiceClient(conn).GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
		took := time.Since(start)

		var re *retry.Error
		if !errors.As(err, &re) {
			t.Fatalf("GetSandbox() error = %v (%T), want a *retry.Error", err, err)
		}
		if re.StopReason() != retry.StopNotReady || status.Code(err) != codes.Unavailable {
			t.Errorf("GetSandbox() = %v (reason %v), want UNAVAILABLE, %v", err, re.StopReason(), retry.StopNotReady)
		}
		if re.Attempts() > p.MaxAttempts || re.Attempts() != rc.get()+1 {
			t.Errorf("Attempts() = %d, OnRetry events = %d; want at most %d attempts, one per retry event plus the first",
				re.Attempts(), rc.get(), p.MaxAttempts)
		}
		var schedule time.Duration // the policy's total backoff: every wait at its largest
		for d, i := p.InitialBackoff, 1; i < p.MaxAttempts; i++ {
			schedule += time.Duration(float64(d) * (1 + p.Jitter))
			d = min(time.Duration(float64(d)*p.Multiplier), p.MaxBackoff)
		}
		if took > schedule {
			t.Errorf("the call took %v, want at most the policy's total backoff %v", took, schedule)
		}
		if b.allows != 0 {
			t.Errorf("budget asked %d times, want 0: no attempt reached a server", b.allows)
		}
		t.Logf("server gone: %v after %d attempts (%d retry events), schedule %v: %v", took, re.Attempts(), rc.get(), schedule, err)
	})
}

// TestServerRestart: a call made while the server restarts waits for the connection
// instead of failing fast, and succeeds once it is back, spending no budget.
func TestServerRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sb := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
		srv := sb.StartRestartable()
		b := &recordingBudget{}
		var rc retryCount
		conn := connected(t, srv, retry.MustNew(retry.DefaultPolicy(), retry.WithBudget(b), retry.WithHooks(rc.hooks())))
		srv.Down()
		synctest.Wait() // the client has seen its connection close
		time.AfterFunc(500*time.Millisecond, srv.Up)
		defer srv.Down()

		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := sandboxpb.NewSandboxServiceClient(conn).GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}); err != nil {
			t.Fatalf("GetSandbox() across a 500ms restart = %v, want success", err)
		}
		if b.allows != 0 {
			t.Errorf("budget asked %d times, want 0: the failed attempts never reached a server", b.allows)
		}
		if n := sb.Calls(sandboxpb.SandboxService_GetSandbox_FullMethodName); n != 2 {
			t.Errorf("server GetSandbox calls = %d, want 2 (the warm-up and the call)", n)
		}
	})
}

// nilAddrConn is a connection whose remote address is nil, as a custom dialer's may be.
type nilAddrConn struct{ net.Conn }

func (nilAddrConn) RemoteAddr() net.Addr { return nil }

// TestNotSentIsProven (safety.md 1, "Not sent means not run"): an attempt counts as never
// sent only when grpc-go gave it no transport stream, not when the stream's peer has no
// address: an Exec that ran and failed on a connection whose remote address is nil, made
// while the connection was still connecting, is not repeated.
func TestNotSentIsProven(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
		lis, stop := srv.StartBufconn()
		defer stop()
		conn, err := grpc.NewClient("passthrough:///bufnet", append(interceptor.DialOptions(
			interceptor.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithBudget(nil)))),
			grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
				c, err := lis.DialContext(ctx)
				if err != nil {
					return nil, err
				}
				return nilAddrConn{c}, nil
			}))...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		srv.FailAfterNext(sandboxpb.SandboxService_Exec_FullMethodName, 1, unavailable())
		_, err = sandboxpb.NewSandboxServiceClient(conn).Exec(context.Background(),
			&sandboxpb.ExecRequest{SandboxId: "sb-1", Command: []string{"echo", "hi"}})
		if n := srv.ExecRuns(); n != 1 || status.Code(err) != codes.Unavailable {
			t.Errorf("Exec = %v after %d runs, want UNAVAILABLE after 1: the command ran", err, n)
		}
	})
}
