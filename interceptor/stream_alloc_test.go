//go:build !race

// Without -race only: see alloc_test.go.

package interceptor_test

import (
	"context"
	"io"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/echotest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/internal/testpb"
	"github.com/faultline-go/faultline/retry"
)

// maxUnknownExtraAllocs is what a unary call of a method of unknown idempotency that
// succeeds the first time may cost on top of a plain client: grpc-go's copy of its response
// headers (grpc.Header), which the header commit rule reads. Measured: see the test.
const maxUnknownExtraAllocs = 3

// maxStreamExtraAllocs is what a server stream that succeeds the first time may cost on top
// of a plain client (measured: 1): the retrying wrapper, which holds the retry state. The
// first attempt runs under the caller's context (a failed attempt is finished by grpc-go;
// only later attempts get contexts of their own), and the request is kept by reference for
// replay, not copied.
const maxStreamExtraAllocs = 1

// TestStreamSuccessAllocs measures a StreamLogs call read to io.EOF over bufconn with and
// without the interceptors, on the same server; the difference is what they add.
func TestStreamSuccessAllocs(t *testing.T) {
	srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
	lis, stop := srv.StartBufconn()
	defer stop()
	measure := func(opts ...grpc.DialOption) float64 {
		conn, err := sandboxtest.DialBufconn(lis, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := sandboxpb.NewSandboxServiceClient(conn)
		ctx := context.Background()
		req := &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"}
		call := func() {
			st, err := c.StreamLogs(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			for {
				if _, err := st.Recv(); err == io.EOF {
					return
				} else if err != nil {
					t.Fatal(err)
				}
			}
		}
		call() // warm up the connection
		return testing.AllocsPerRun(200, call)
	}
	plain := measure()
	ours := measure(interceptor.DialOptions()...)
	t.Logf("allocations per StreamLogs call: plain %.1f, with faultline %.1f", plain, ours)
	if extra := ours - plain; extra > maxStreamExtraAllocs {
		t.Errorf("faultline adds %.1f allocations to a successful stream, want <= %d", extra, maxStreamExtraAllocs)
	}
}

// TestUnarySuccessAllocs measures unary calls that succeed the first time over bufconn with
// and without the interceptors: a method of known idempotency (GetSandbox, no side effects)
// costs nothing more; a method of unknown idempotency (testpb's Do) costs what grpc-go
// allocates to copy its response headers for the header commit rule (gRFC A6: a call whose
// server sent headers is not repeated), maxUnknownExtraAllocs.
func TestUnarySuccessAllocs(t *testing.T) {
	srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
	fs := faultlinetest.NewServer(func(gs *grpc.Server) {
		srv.Register(gs)
		echotest.New().Register(gs)
	}, srv.ServerOptions()...)
	defer fs.Close()
	measure := func(call func(conn *grpc.ClientConn), opts ...grpc.DialOption) float64 {
		conn, err := fs.Dial(opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		call(conn) // warm up the connection
		return testing.AllocsPerRun(200, func() { call(conn) })
	}
	ctx := context.Background()
	get := func(conn *grpc.ClientConn) {
		if _, err := sandboxpb.NewSandboxServiceClient(conn).GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}); err != nil {
			t.Fatal(err)
		}
	}
	do := func(conn *grpc.ClientConn) {
		if _, err := testpb.NewEchoClient(conn).Do(ctx, &testpb.EchoRequest{Text: "v"}); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name  string
		call  func(*grpc.ClientConn)
		extra float64
	}{
		{"known idempotency", get, 0},
		{"unknown idempotency", do, maxUnknownExtraAllocs},
	} {
		plain, ours := measure(tc.call), measure(tc.call, interceptor.DialOptions()...)
		t.Logf("%s: allocations per call: plain %.1f, with faultline %.1f", tc.name, plain, ours)
		if extra := ours - plain; extra > tc.extra {
			t.Errorf("%s: faultline adds %.1f allocations to a successful call, want <= %v", tc.name, extra, tc.extra)
		}
	}
}

// maxRetriedAttemptAllocs is what faultline may allocate per attempt of a unary call that is
// retried (architecture.md: at most 15, a real connection, detail decoding excluded): the
// attempt's classified error, the wait's timer, the attempt header's metadata, and the
// call's share of its tracker and final *retry.Error. Measured: 8.5 (14.5 before the
// classification of a failure stopped moving its Call and errors.As targets to the heap).
const maxRetriedAttemptAllocs = 15

// TestRetriedAttemptAllocs measures a GetSandbox call whose server fails every attempt with
// a bare UNAVAILABLE, four attempts, against a plain client making the same four failing
// calls to the same server: the difference, per attempt, is what faultline's retrying costs.
func TestRetriedAttemptAllocs(t *testing.T) {
	const attempts = 4
	var inj faultlinetest.Injector
	inj.Always(sandboxpb.SandboxService_GetSandbox_FullMethodName, faultlinetest.Fail(unavailable()))
	srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
	fs := faultlinetest.NewServer(func(gs *grpc.Server) { srv.Register(gs) }, inj.ServerOptions()...)
	defer fs.Close()
	p := retry.DefaultPolicy()
	p.MaxAttempts, p.InitialBackoff, p.MaxBackoff, p.Jitter = attempts, time.Microsecond, time.Microsecond, 0
	measure := func(calls int, opts ...grpc.DialOption) float64 {
		conn, err := fs.Dial(opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := sandboxpb.NewSandboxServiceClient(conn)
		ctx := context.Background()
		req := &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}
		call := func() {
			for range calls {
				if _, err := c.GetSandbox(ctx, req); status.Code(err) != codes.Unavailable {
					t.Fatalf("GetSandbox() = %v, want UNAVAILABLE", err)
				}
			}
		}
		call() // warm up the connection
		return testing.AllocsPerRun(100, call)
	}
	plain := measure(attempts)
	ours := measure(1, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(p, retry.WithBudget(nil))))...)
	per := (ours - plain) / attempts
	t.Logf("allocations for %d failing attempts: plain client %.1f, faultline %.1f: %.1f more per attempt", attempts, plain, ours, per)
	if per > maxRetriedAttemptAllocs {
		t.Errorf("faultline adds %.1f allocations per retried attempt, want <= %d", per, maxRetriedAttemptAllocs)
	}
}
