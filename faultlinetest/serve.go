package faultlinetest

import (
	"context"
	"net"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"
)

// BufSize is the buffer size of the in-memory connections of a [Server], in bytes: how
// much one side may write before the other reads.
const BufSize = 1 << 20

// Server is a gRPC server on an in-memory listener (grpc's bufconn: no port, no
// network). Start one with [NewServer], or let [Serve] start one for a test. Its methods
// are safe for concurrent use.
type Server struct {
	gs   *grpc.Server
	lis  *bufconn.Listener
	done chan struct{}
	once sync.Once
}

// NewServer starts a gRPC server on an in-memory listener, for code that has no
// testing.TB (examples, TestMain, benchmarks' setup); tests use [Serve].
//
// register registers the services on the server (nil registers none: every call fails
// with UNIMPLEMENTED). The server is built with [grpc.WaitForHandlers](true), then opts,
// typically [Injector.ServerOptions]; later options win. The caller must call
// [Server.Close].
func NewServer(register func(*grpc.Server), opts ...grpc.ServerOption) *Server {
	s := &Server{
		gs:   grpc.NewServer(append([]grpc.ServerOption{grpc.WaitForHandlers(true)}, opts...)...),
		lis:  bufconn.Listen(BufSize),
		done: make(chan struct{}),
	}
	if register != nil {
		register(s.gs)
	}
	go func() {
		defer close(s.done)
		_ = s.gs.Serve(s.lis) // returns after Stop
	}()
	return s
}

// Dial returns a new client connection to s: an in-memory dialer and insecure transport
// credentials, then opts (for example the client interceptors under test). It connects on
// its first call. The caller closes it, before or after s. The error is grpc.NewClient's,
// for options it rejects.
func (s *Server) Dial(opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	all := append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return s.lis.DialContext(ctx)
		}),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, opts...)
	return grpc.NewClient("passthrough:///bufconn", all...)
}

// Close stops the server: it closes the listener and every server-side connection,
// cancels the contexts of calls in progress, and waits for every handler and the serving
// goroutine to return (so a handler that ignores its context blocks Close). Client
// connections then fail their calls with UNAVAILABLE until closed. Close may be called
// more than once.
func (s *Server) Close() {
	s.once.Do(func() {
		s.gs.Stop()
		<-s.done
	})
}

// Serve starts a [Server] for a test and returns a client connection to it:
// NewServer(register, serverOpts...), then Dial(dialOpts...).
//
// When tb's test ends, t.Cleanup closes the connection, then the server (see
// [Server.Close]): nothing is left running, provided the handlers return once their
// context is done. The caller may close the connection earlier; closing it twice is
// harmless.
//
// Serve calls tb.Fatalf, so it must run on the test's goroutine, if grpc.NewClient
// rejects dialOpts; that is its only error.
//
// Inside a testing/synctest bubble, call Serve inside the bubble (inside the function
// given to synctest.Test): the server's and the connection's goroutines then belong to the
// bubble, every timer they and the [Injector] start runs on the bubble's virtual clock, so
// delays, RetryInfo waits and deadlines take no real time, and the cleanup runs inside the
// bubble before synctest.Test returns. (A server made outside the bubble still works from
// inside it, but on the real clock.)
func Serve(tb testing.TB, register func(*grpc.Server), serverOpts []grpc.ServerOption, dialOpts ...grpc.DialOption) *grpc.ClientConn {
	tb.Helper()
	s := NewServer(register, serverOpts...)
	tb.Cleanup(s.Close) // runs after the connection's cleanup below
	conn, err := s.Dial(dialOpts...)
	if err != nil {
		tb.Fatalf("faultlinetest.Serve: grpc.NewClient: %v", err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return conn
}
