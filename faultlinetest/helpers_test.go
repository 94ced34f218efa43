package faultlinetest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/testing/testpb"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/retry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Full method names of testpb's TestService.
const (
	ping             = testpb.TestService_Ping_FullMethodName
	pingList         = testpb.TestService_PingList_FullMethodName
	pingStream       = testpb.TestService_PingStream_FullMethodName
	pingClientStream = testpb.TestService_PingClientStream_FullMethodName
)

// pingServer implements testpb's TestService and counts the handler runs per method:
//   - Ping echoes the value;
//   - PingList sends listLen responses, then, when wait is set, waits for its context;
//   - PingStream echoes every message until the client closes;
//   - PingClientStream counts the messages.
type pingServer struct {
	testpb.UnimplementedTestServiceServer
	listLen int
	wait    bool

	mu      sync.Mutex
	handled map[string]int
}

func (p *pingServer) ran(method string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.handled == nil {
		p.handled = map[string]int{}
	}
	p.handled[method]++
}

// Handled returns how many times the handler of method ran.
func (p *pingServer) Handled(method string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.handled[method]
}

func (p *pingServer) Ping(_ context.Context, req *testpb.PingRequest) (*testpb.PingResponse, error) {
	p.ran(ping)
	return &testpb.PingResponse{Value: req.GetValue()}, nil
}

func (p *pingServer) PingList(req *testpb.PingListRequest, stream testpb.TestService_PingListServer) error {
	p.ran(pingList)
	for i := range p.listLen {
		if err := stream.Send(&testpb.PingListResponse{Value: req.GetValue(), Counter: int32(i)}); err != nil {
			return err
		}
	}
	if p.wait {
		<-stream.Context().Done()
		return status.FromContextError(stream.Context().Err()).Err()
	}
	return nil
}

func (p *pingServer) PingStream(stream testpb.TestService_PingStreamServer) error {
	p.ran(pingStream)
	for i := 0; ; i++ {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := stream.Send(&testpb.PingStreamResponse{Value: m.GetValue(), Counter: int32(i)}); err != nil {
			return err
		}
	}
}

func (p *pingServer) PingClientStream(stream testpb.TestService_PingClientStreamServer) error {
	p.ran(pingClientStream)
	n := 0
	for {
		_, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&testpb.PingClientStreamResponse{Counter: int32(n)})
		}
		if err != nil {
			return err
		}
		n++
	}
}

// servePing serves p behind inj and returns a client dialled with dialOpts.
func servePing(t testing.TB, p *pingServer, inj *faultlinetest.Injector, dialOpts ...grpc.DialOption) testpb.TestServiceClient {
	t.Helper()
	conn := faultlinetest.Serve(t, func(s *grpc.Server) { testpb.RegisterTestServiceServer(s, p) },
		inj.ServerOptions(), dialOpts...)
	return testpb.NewTestServiceClient(conn)
}

// recvList reads a PingList stream to its end: the counters received and the error that
// ended it (nil for io.EOF).
func recvList(stream grpc.ServerStreamingClient[testpb.PingListResponse]) ([]int32, error) {
	var got []int32
	for {
		m, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got = append(got, m.GetCounter())
	}
}

// sandboxServer is a tiny SandboxService for the examples and tests: GetSandbox answers
// with the next state of states (the last one repeats), CreateSandbox creates "sb-1".
type sandboxServer struct {
	sandboxpb.UnimplementedSandboxServiceServer
	states []sandboxpb.SandboxStatus_State

	mu    sync.Mutex
	polls int
}

func (s *sandboxServer) GetSandbox(_ context.Context, req *sandboxpb.GetSandboxRequest) (*sandboxpb.Sandbox, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	state := s.states[min(s.polls, len(s.states)-1)]
	s.polls++
	return &sandboxpb.Sandbox{SandboxId: req.GetSandboxId(), Status: &sandboxpb.SandboxStatus{State: state}}, nil
}

func (s *sandboxServer) CreateSandbox(_ context.Context, req *sandboxpb.CreateSandboxRequest) (*sandboxpb.Sandbox, error) {
	return &sandboxpb.Sandbox{SandboxId: "sb-1", Spec: req.GetSandbox().GetSpec()}, nil
}

func registerSandbox(s *sandboxServer) func(*grpc.Server) {
	return func(gs *grpc.Server) { sandboxpb.RegisterSandboxServiceServer(gs, s) }
}

// waitRunning is user code under test: it polls GetSandbox every interval until the
// sandbox runs, and returns how many polls it made. It leaves retries to the connection's
// interceptors.
func waitRunning(ctx context.Context, c sandboxpb.SandboxServiceClient, id string, interval time.Duration) (int, error) {
	for polls := 1; ; polls++ {
		sb, err := c.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: id})
		if err != nil {
			return polls, err
		}
		if sb.GetStatus().GetState() == sandboxpb.SandboxStatus_STATE_RUNNING {
			return polls, nil
		}
		select {
		case <-ctx.Done():
			return polls, ctx.Err()
		case <-time.After(interval):
		}
	}
}

// printError is user code under test: how a command line tool reports a failed call,
// every field violation on its own line.
func printError(w io.Writer, err error) {
	var e *errs.Error
	if !errors.As(err, &e) {
		fmt.Fprintln(w, "error:", err)
		return
	}
	fmt.Fprintf(w, "error: %s (%v)\n", status.Convert(err).Code(), e.Kind())
	for _, v := range e.FieldViolations() {
		fmt.Fprintf(w, "  %s: %s\n", v.Field, v.Description)
	}
}

// noJitter is the default retry policy without jitter, so that waits are exact.
func noJitter() retry.Policy {
	p := retry.DefaultPolicy()
	p.Jitter, p.HintJitter = 0, 0
	return p
}
