package interceptor_test

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/testing/testpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

// Full method names used throughout.
const (
	getSandbox    = sandboxpb.SandboxService_GetSandbox_FullMethodName
	readFile      = sandboxpb.SandboxService_ReadFile_FullMethodName
	getSnapshot   = sandboxpb.SandboxService_GetFileSystemSnapshot_FullMethodName
	streamLogs    = sandboxpb.SandboxService_StreamLogs_FullMethodName
	streamExec    = sandboxpb.SandboxService_StreamExec_FullMethodName
	getRunner     = sandboxpb.DiscoveryService_GetAvailableRunner_FullMethodName
	sandboxSvc    = "/coreweave.sandbox.v1.SandboxService/"
	attemptHeader = "x-retry-attempt"
)

// secondsPolicy is the default policy with backoffs of whole seconds (1s, 2s, 4s, 8s) and no
// jitter, so that waits are exact and visible on a synctest bubble's virtual clock.
func secondsPolicy() retry.Policy {
	p := retry.DefaultPolicy()
	p.InitialBackoff, p.MaxBackoff, p.Jitter, p.HintJitter = time.Second, 8*time.Second, 0, 0
	return p
}

// millisecondPolicy is the default policy with backoffs of 1 ms, then 2 ms, and no jitter,
// for tests and examples on the real clock (their output and assertions do not depend on
// the waits).
func millisecondPolicy() retry.Policy {
	p := retry.DefaultPolicy()
	p.InitialBackoff, p.MaxBackoff, p.Jitter, p.HintJitter = time.Millisecond, 2*time.Millisecond, 0, 0
	return p
}

// noBudget is the interceptor option of a retrier of p without a budget, then opts.
func noBudget(p retry.Policy, opts ...retry.Option) interceptor.Option {
	return interceptor.WithRetrier(retry.MustNew(p, append([]retry.Option{retry.WithBudget(nil)}, opts...)...))
}

// attempts returns p with MaxAttempts n.
func attempts(p retry.Policy, n int) retry.Policy {
	p.MaxAttempts = n
	return p
}

// env is a sandboxtest server on bufconn and a client connection to it.
type env struct {
	srv  *sandboxtest.Server
	conn *grpc.ClientConn
	sb   sandboxpb.SandboxServiceClient
	disc sandboxpb.DiscoveryServiceClient
}

// newEnv serves a sandboxtest server (sandbox "sb-1", snapshot "fss-1", runner "r-1", file
// /data/in.txt in sb-1) on bufconn and dials it with dialOpts. Inside a synctest bubble it
// must be called inside the bubble. Both are closed by t.Cleanup.
func newEnv(t testing.TB, dialOpts []grpc.DialOption, srvOpts ...grpc.ServerOption) *env {
	t.Helper()
	srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"), sandboxtest.WithSnapshots("fss-1"),
		sandboxtest.WithRunners("r-1"))
	return serve(t, srv, dialOpts, srvOpts...)
}

// serve is newEnv with a given server, which must have sandbox "sb-1".
func serve(t testing.TB, srv *sandboxtest.Server, dialOpts []grpc.DialOption, srvOpts ...grpc.ServerOption) *env {
	t.Helper()
	conn := faultlinetest.Serve(t, func(gs *grpc.Server) { srv.Register(gs) },
		append(srv.ServerOptions(), srvOpts...), dialOpts...)
	e := &env{srv: srv, conn: conn, sb: sandboxpb.NewSandboxServiceClient(conn),
		disc: sandboxpb.NewDiscoveryServiceClient(conn)}
	if _, err := e.sb.WriteFile(context.Background(), &sandboxpb.WriteFileRequest{
		SandboxId: "sb-1", Path: "/data/in.txt", Content: []byte("hello")}); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	srv.Reset()
	return e
}

// unavailable is a plain UNAVAILABLE status, retried by default.
func unavailable() *status.Status {
	return faultlinetest.Status(codes.Unavailable, "backend restarting")
}

// withHint is an UNAVAILABLE status carrying a RetryInfo of d.
func withHint(d time.Duration) *status.Status {
	return faultlinetest.Status(codes.Unavailable, "backend restarting", faultlinetest.RetryInfo(d))
}

// headerValues returns, for each recorded call, the values of key in its metadata, "" for
// a call without it.
func headerValues(t testing.TB, mds []metadata.MD, key string) []string {
	t.Helper()
	out := make([]string, len(mds))
	for i, md := range mds {
		switch v := md.Get(key); len(v) {
		case 0:
		case 1:
			out[i] = v[0]
		default:
			t.Errorf("call %d: %s = %q, want at most one value", i+1, key, v)
			out[i] = v[0]
		}
	}
	return out
}

// recvLogs reads a StreamLogs stream to its end and returns the data of each entry and
// the error that ended it (nil for io.EOF).
func recvLogs(st grpc.ServerStreamingClient[sandboxpb.LogEntry]) ([]string, error) {
	var got []string
	for {
		m, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got = append(got, string(m.GetData()))
	}
}

// pingServer implements testpb's TestService for stream tests: PingStream (bidi) and
// PingClientStream (client streaming) fail their first failFirst attempts with UNAVAILABLE
// after reading failAfter messages (client streaming: all of them), without sending
// anything; later attempts echo (bidi) or count (client streaming). PingList sends a header
// and fails on its first failFirst attempts. Every attempt's received values and
// attempt header are recorded. PingStream ends with ABORTED when it receives abortOn.
type pingServer struct {
	testpb.UnimplementedTestServiceServer
	failFirst int
	failAfter int    // bidi only
	abortOn   string // bidi: a value that ends the stream with ABORTED

	mu       sync.Mutex
	attempts int
	received [][]string
	headers  []string
}

// begin records a new attempt and reports whether it is to fail.
func (p *pingServer) begin(ctx context.Context) (n int, fail bool) {
	md, _ := metadata.FromIncomingContext(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.attempts++
	p.received = append(p.received, nil)
	h := ""
	if v := md.Get(attemptHeader); len(v) > 0 {
		h = v[0]
	}
	p.headers = append(p.headers, h)
	return p.attempts - 1, p.attempts <= p.failFirst
}

func (p *pingServer) got(n int, v string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.received[n] = append(p.received[n], v)
}

// Received returns the values received by each attempt, and each attempt's header.
func (p *pingServer) Received() ([][]string, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([][]string, len(p.received))
	for i, r := range p.received {
		out[i] = append([]string{}, r...)
	}
	return out, append([]string{}, p.headers...)
}

func (p *pingServer) PingStream(stream testpb.TestService_PingStreamServer) error {
	n, fail := p.begin(stream.Context())
	for i := 0; ; i++ {
		if fail && i == p.failAfter {
			return status.Error(codes.Unavailable, "ping backend restarting")
		}
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		p.got(n, m.GetValue())
		if p.abortOn != "" && m.GetValue() == p.abortOn {
			return status.Error(codes.Aborted, "aborted on request")
		}
		if !fail {
			if err := stream.Send(&testpb.PingStreamResponse{Value: m.GetValue(), Counter: int32(i)}); err != nil {
				return err
			}
		}
	}
}

func (p *pingServer) PingClientStream(stream testpb.TestService_PingClientStreamServer) error {
	n, fail := p.begin(stream.Context())
	count := 0
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		p.got(n, m.GetValue())
		count++
	}
	if fail {
		return status.Error(codes.Unavailable, "ping backend restarting")
	}
	return stream.SendAndClose(&testpb.PingClientStreamResponse{Counter: int32(count)})
}

func (p *pingServer) PingList(req *testpb.PingListRequest, stream testpb.TestService_PingListServer) error {
	_, fail := p.begin(stream.Context())
	if fail {
		if err := stream.SendHeader(metadata.Pairs("served-by", "failing")); err != nil {
			return err
		}
		return status.Error(codes.Unavailable, "ping backend restarting")
	}
	for i := range 3 {
		if err := stream.Send(&testpb.PingListResponse{Value: req.GetValue(), Counter: int32(i)}); err != nil {
			return err
		}
	}
	return nil
}

// newPing serves impl (a *pingServer, or any implementation of the test service) on bufconn
// and returns a client dialled with dialOpts; both are closed by t.Cleanup.
func newPing(t testing.TB, impl testpb.TestServiceServer, dialOpts ...grpc.DialOption) testpb.TestServiceClient {
	t.Helper()
	conn := faultlinetest.Serve(t, func(gs *grpc.Server) { testpb.RegisterTestServiceServer(gs, impl) }, nil, dialOpts...)
	return testpb.NewTestServiceClient(conn)
}

func (p *pingServer) PingEmpty(context.Context, *testpb.PingEmptyRequest) (*testpb.PingEmptyResponse, error) {
	return &testpb.PingEmptyResponse{}, nil
}

// oneAttempt is the default policy with one attempt: no retry.
func oneAttempt() retry.Policy {
	p := retry.DefaultPolicy()
	p.MaxAttempts = 1
	return p
}
