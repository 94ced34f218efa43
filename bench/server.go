package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
)

// transport is how a client reaches the server.
type transport uint8

const (
	overBufconn transport = iota // in-memory listener
	overTCP                      // 127.0.0.1
)

func (t transport) String() string {
	if t == overTCP {
		return "TCP loopback"
	}
	return "bufconn"
}

// sandboxID is the sandbox every call asks for.
const sandboxID = "sb-1"

var getSandbox = sandboxpb.SandboxService_GetSandbox_FullMethodName

// A gate decides, for each unary attempt the server receives, whether it fails before the
// sandbox server's own interceptors run: it returns the status to fail with, or nil.
type gate func(now time.Time) *status.Status

// server is a sandboxtest server with an outermost unary interceptor of the harness's
// own, which counts every attempt, can record arrival times, and applies a gate. Script
// steps of the sandboxtest server run inside it, so they are counted and timed too.
type server struct {
	sb   *sandboxtest.Server
	dial func(opts ...grpc.DialOption) (*grpc.ClientConn, error)
	stop func()

	attempts atomic.Int64
	gate     atomic.Pointer[gate]

	mu        sync.Mutex
	recording bool
	arrivals  []time.Time
}

func startServer(t transport) (*server, error) {
	s := &server{sb: sandboxtest.New(sandboxtest.WithSandboxes(sandboxID))}
	// grpc.UnaryInterceptor runs before the chained interceptors of ServerOptions.
	outer := grpc.UnaryInterceptor(s.intercept)
	switch t {
	case overTCP:
		addr, stop, err := s.sb.StartTCP(outer)
		if err != nil {
			return nil, err
		}
		s.stop = stop
		s.dial = func(opts ...grpc.DialOption) (*grpc.ClientConn, error) {
			all := append([]grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}, opts...)
			return grpc.NewClient("passthrough:///"+addr, all...)
		}
	default:
		lis, stop := s.sb.StartBufconn(outer)
		s.stop = stop
		s.dial = func(opts ...grpc.DialOption) (*grpc.ClientConn, error) {
			return sandboxtest.DialBufconn(lis, opts...)
		}
	}
	return s, nil
}

func (s *server) intercept(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	now := time.Now()
	s.attempts.Add(1)
	s.mu.Lock()
	if s.recording {
		s.arrivals = append(s.arrivals, now)
	}
	s.mu.Unlock()
	if g := s.gate.Load(); g != nil {
		if st := (*g)(now); st != nil {
			return nil, st.Err()
		}
	}
	return handler(ctx, req)
}

// setGate installs g (nil: none).
func (s *server) setGate(g gate) {
	if g == nil {
		s.gate.Store(nil)
		return
	}
	s.gate.Store(&g)
}

// record starts recording arrival times, forgetting earlier ones.
func (s *server) record() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recording, s.arrivals = true, s.arrivals[:0]
}

// recorded returns the arrival times recorded since record.
func (s *server) recorded() []time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Time(nil), s.arrivals...)
}

// client is one peer's connection to a server.
type client struct {
	peer Peer
	conn *grpc.ClientConn
	api  sandboxpb.SandboxServiceClient
}

// connect dials one connection per peer.
func (s *server) connect(peers []Peer) ([]client, error) {
	out := make([]client, 0, len(peers))
	for _, p := range peers {
		conn, err := s.dial(p.Options()...)
		if err != nil {
			closeAll(out)
			return nil, fmt.Errorf("dial for %s: %w", p.Name, err)
		}
		out = append(out, client{peer: p, conn: conn, api: sandboxpb.NewSandboxServiceClient(conn)})
	}
	return out, nil
}

func closeAll(cs []client) {
	for _, c := range cs {
		_ = c.conn.Close()
	}
}

// warm makes one successful call on each client, so that connections are up before
// anything is measured.
func warm(ctx context.Context, cs []client) error {
	var errs []error
	for _, c := range cs {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.api.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: sandboxID})
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("warm-up call for %s: %w", c.peer.Name, err))
		}
	}
	return errors.Join(errs...)
}

// setUp starts a fresh server on bufconn and connects every peer to it, warmed up. done
// closes the connections and stops the server.
func setUp(ctx context.Context, peers []Peer) (srv *server, cs []client, done func(), err error) {
	srv, err = startServer(overBufconn)
	if err != nil {
		return nil, nil, nil, err
	}
	cs, err = srv.connect(peers)
	if err != nil {
		srv.stop()
		return nil, nil, nil, err
	}
	done = func() {
		closeAll(cs)
		srv.stop()
	}
	if err := warm(ctx, cs); err != nil {
		done()
		return nil, nil, nil, err
	}
	return srv, cs, done, nil
}
