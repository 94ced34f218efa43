package faultlinetest_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/testing/testpb"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/retry"
)

const (
	healthCheck = "/grpc.health.v1.Health/Check"
	getSandbox  = sandboxpb.SandboxService_GetSandbox_FullMethodName
)

// TestServeInSynctest creates the harness inside a synctest bubble: a 10 s server delay
// and a 5 s RetryInfo wait pass on the virtual clock, exactly, in no real time, and
// nothing is left running afterwards (synctest.Test fails on goroutines left blocked in
// the bubble; goleak checks the rest of the process).
func TestServeInSynctest(t *testing.T) {
	wall := time.Now()
	synctest.Test(t, func(t *testing.T) {
		var inj faultlinetest.Injector
		inj.Script(healthCheck,
			faultlinetest.Pass().After(10*time.Second),
			faultlinetest.Fail(faultlinetest.Status(codes.Unavailable, "runner unavailable",
				faultlinetest.ErrorInfo("cwsandbox.com", "CWSANDBOX_RUNNER_UNAVAILABLE", nil),
				faultlinetest.RetryInfo(5*time.Second))))
		hs := health.NewServer()
		conn := faultlinetest.Serve(t, func(s *grpc.Server) { healthpb.RegisterHealthServer(s, hs) },
			inj.ServerOptions(), interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(noJitter())))...)
		client := healthpb.NewHealthClient(conn)
		for _, want := range []time.Duration{10 * time.Second, 5 * time.Second} {
			start := time.Now()
			res, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{})
			if err != nil || res.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("Check() = %v, %v; want SERVING", res, err)
			}
			if got := time.Since(start); got != want {
				t.Errorf("Check() took %v on the virtual clock, want %v", got, want)
			}
		}
		if n := inj.Count(healthCheck); n != 3 {
			t.Errorf("server calls = %d, want 3", n)
		}
	})
	if real := time.Since(wall); real > 5*time.Second {
		t.Errorf("15 s of virtual waits took %v of real time, want much less", real)
	}
	goleak.VerifyNone(t)
}

// TestPollerSurvivesRetryInfo is the user story: "when GetSandbox says UNAVAILABLE with a
// 5 s RetryInfo, my poller waits and recovers", inside synctest, with the exact schedule
// of the server's calls.
func TestPollerSurvivesRetryInfo(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var inj faultlinetest.Injector
		inj.FailNext(getSandbox, 1, faultlinetest.Status(codes.Unavailable, "runner unavailable",
			faultlinetest.ErrorInfo("cwsandbox.com", "CWSANDBOX_RUNNER_UNAVAILABLE", nil),
			faultlinetest.RetryInfo(5*time.Second)))
		srv := &sandboxServer{states: []sandboxpb.SandboxStatus_State{
			sandboxpb.SandboxStatus_STATE_CREATING, sandboxpb.SandboxStatus_STATE_RUNNING}}
		conn := faultlinetest.Serve(t, registerSandbox(srv), inj.ServerOptions(),
			interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(noJitter())))...)

		start := time.Now()
		polls, err := waitRunning(context.Background(), sandboxpb.NewSandboxServiceClient(conn), "sb-1", time.Second)
		if err != nil || polls != 2 {
			t.Fatalf("waitRunning() = %d, %v; want 2 polls, nil", polls, err)
		}
		calls := inj.Calls(getSandbox)
		var at, attempt []string
		for _, c := range calls {
			at = append(at, c.Time.Sub(start).String())
			attempt = append(attempt, strings.Join(c.Metadata.Get("x-retry-attempt"), ","))
		}
		// The first call fails; the interceptor waits the 5 s hint and retries (attempt 1),
		// which answers CREATING; the poller waits 1 s and polls again.
		if want := []string{"0s", "5s", "6s"}; !slices.Equal(at, want) {
			t.Errorf("server calls at %v, want %v", at, want)
		}
		if want := []string{"", "1", ""}; !slices.Equal(attempt, want) {
			t.Errorf("x-retry-attempt of the calls = %q, want %q", attempt, want)
		}
	})
}

// TestPollerGivesUpOnLongHint checks the other side: a hint longer than the policy's
// MaxRetryDelay is not waited out; the poller gets the error, with its delay.
func TestPollerGivesUpOnLongHint(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var inj faultlinetest.Injector
		inj.FailNext(getSandbox, 1, faultlinetest.Status(codes.Unavailable, "runner unavailable",
			faultlinetest.ErrorInfo("cwsandbox.com", "CWSANDBOX_RUNNER_UNAVAILABLE", nil),
			faultlinetest.RetryInfo(time.Hour)))
		srv := &sandboxServer{states: []sandboxpb.SandboxStatus_State{sandboxpb.SandboxStatus_STATE_RUNNING}}
		conn := faultlinetest.Serve(t, registerSandbox(srv), inj.ServerOptions(),
			interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(noJitter())))...)
		start := time.Now()
		_, err := waitRunning(context.Background(), sandboxpb.NewSandboxServiceClient(conn), "sb-1", time.Second)
		var e *errs.Error
		if !errors.As(err, &e) || e.Kind() != errs.ErrSandboxUnavailable {
			t.Fatalf("waitRunning() error = %v, want a SandboxUnavailableError", err)
		}
		if d, ok := e.RetryDelay(); d != time.Hour || !ok || time.Since(start) != 0 || inj.Count(getSandbox) != 1 {
			t.Errorf("waitRunning() = delay %v, %v after %v and %d calls; want 1h, true at once after 1 call",
				d, ok, time.Since(start), inj.Count(getSandbox))
		}
	})
}

// TestServeCleanup checks that the test's cleanup closes the connection, stops the
// server and ends calls in progress, leaving no goroutine behind, on the real clock and in
// a synctest bubble.
func TestServeCleanup(t *testing.T) {
	for _, bubble := range []bool{false, true} {
		var (
			conn    *grpc.ClientConn
			stalled = make(chan error, 1)
		)
		body := func(t *testing.T) {
			var inj faultlinetest.Injector
			inj.Script(ping, faultlinetest.Stall())
			conn = faultlinetest.Serve(t, func(s *grpc.Server) { testpb.RegisterTestServiceServer(s, &pingServer{}) },
				inj.ServerOptions())
			client := testpb.NewTestServiceClient(conn)
			go func() {
				_, err := client.Ping(context.Background(), &testpb.PingRequest{})
				stalled <- err
			}()
			for i := 0; inj.Count(ping) == 0 && i < 5000; i++ {
				time.Sleep(time.Millisecond)
			}
			if inj.Count(ping) != 1 {
				t.Fatalf("the stalled call did not reach the server")
			}
		}
		name := "real clock"
		if bubble {
			name = "synctest"
			t.Run(name, func(t *testing.T) { synctest.Test(t, body) })
		} else {
			t.Run(name, body)
		}
		if c := status.Code(<-stalled); c != codes.Canceled && c != codes.Unavailable {
			t.Errorf("%s: the stalled call ended with %v, want Canceled or Unavailable", name, c)
		}
		if s := conn.GetState(); s != connectivity.Shutdown {
			t.Errorf("%s: connection state after the test = %v, want Shutdown", name, s)
		}
	}
	goleak.VerifyNone(t)
}

func TestServeNilRegister(t *testing.T) {
	conn := faultlinetest.Serve(t, nil, nil)
	_, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("Check() on a server without services = %v, want Unimplemented", err)
	}
}

// fatalTB records Fatalf and ends the goroutine, as testing.T does.
type fatalTB struct {
	testing.TB
	msg string
}

func (f *fatalTB) Helper() {}

func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestServeDialError(t *testing.T) {
	tb := &fatalTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		faultlinetest.Serve(tb, nil, nil, grpc.WithDefaultServiceConfig("{not json"))
		t.Error("Serve returned after a rejected dial option, want Fatalf")
	}()
	<-done
	if !strings.Contains(tb.msg, "grpc.NewClient") {
		t.Errorf("Serve with a bad dial option: Fatalf(%q), want a grpc.NewClient error", tb.msg)
	}
}

// TestNewServer checks the harness without a testing.TB: two connections to one server,
// Close ending both, and Close twice.
func TestNewServer(t *testing.T) {
	srv := faultlinetest.NewServer(func(s *grpc.Server) { healthpb.RegisterHealthServer(s, health.NewServer()) })
	var clients []healthpb.HealthClient
	for range 2 {
		conn, err := srv.Dial()
		if err != nil {
			t.Fatalf("Dial() error = %v", err)
		}
		defer conn.Close()
		clients = append(clients, healthpb.NewHealthClient(conn))
	}
	for i, c := range clients {
		if _, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Errorf("client %d: Check() = %v, want success", i, err)
		}
	}
	srv.Close()
	srv.Close()
	for i, c := range clients {
		_, err := c.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if status.Code(err) != codes.Unavailable {
			t.Errorf("client %d: Check() after Close = %v, want Unavailable", i, err)
		}
	}
	if _, err := srv.Dial(grpc.WithDefaultServiceConfig("{")); err == nil {
		t.Errorf("Dial(bad service config) error = nil, want one")
	}
}
