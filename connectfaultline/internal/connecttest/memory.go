package connecttest

import (
	"context"
	"net"
	"sync"
	"syscall"
)

// memListener is an in-memory [net.Listener]: each connection is a [net.Pipe]
// pair, the server's half returned by Accept, the client's by dial. (grpc's
// bufconn does not fit net/http's HTTP/1.1 server: a deadline timer that fired
// as SetReadDeadline stopped it can still mark the pipe timed out afterwards,
// and the server then cancels the next request's context.)
type memListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newMemListener() *memListener {
	return &memListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *memListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *memListener) Addr() net.Addr { return memAddr{} }

// dial is the client transport's DialContext: it returns the client's half of
// a new connection once Accept took the server's, or fails with the context's
// error, or, once the listener is closed, with a *net.OpError wrapping
// ECONNREFUSED, as a refused TCP dial.
func (l *memListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- server:
		return client, nil
	case <-l.done:
	case <-ctx.Done():
	}
	_ = client.Close()
	_ = server.Close()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return nil, &net.OpError{Op: "dial", Net: "memory", Err: syscall.ECONNREFUSED}
}

type memAddr struct{}

func (memAddr) Network() string { return "memory" }
func (memAddr) String() string  { return "memory" }
