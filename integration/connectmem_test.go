package integration_test

import (
	"context"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/faultline-go/faultline/retry"
)

// memListener serves HTTP over net.Pipe: durable blocking inside testing/synctest.
type memListener struct {
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

type memAddr struct{}

func (memAddr) Network() string { return "memory" }
func (memAddr) String() string  { return "memory" }

func (l *memListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}
func (l *memListener) Close() error   { l.once.Do(func() { close(l.done) }); return nil }
func (l *memListener) Addr() net.Addr { return memAddr{} }
func (l *memListener) dial(ctx context.Context, _, _ string) (net.Conn, error) {
	c, s := net.Pipe()
	select {
	case l.conns <- s:
		return c, nil
	case <-l.done:
	case <-ctx.Done():
	}
	_ = c.Close()
	_ = s.Close()
	return nil, &net.OpError{Op: "dial", Net: "memory", Err: context.Canceled}
}

// serveMemory serves h in memory over h2c (http2) or HTTP/1.1 and returns a client.
func serveMemory(t testing.TB, h http.Handler, http2 bool) *http.Client {
	l := &memListener{conns: make(chan net.Conn), done: make(chan struct{})}
	var sp, cp http.Protocols
	sp.SetHTTP1(true)
	sp.SetUnencryptedHTTP2(true)
	if http2 {
		cp.SetUnencryptedHTTP2(true)
	} else {
		cp.SetHTTP1(true)
	}
	srv := &http.Server{Handler: h, Protocols: &sp}
	go func() { _ = srv.Serve(l) }()
	tr := &http.Transport{Protocols: &cp, DialContext: l.dial}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = srv.Close()
		_ = l.Close()
	})
	return &http.Client{Transport: tr}
}

// secondPolicy is the default policy with exact waits of 1 s, 2 s, 4 s, 8 s.
func secondPolicy() retry.Policy {
	p := retry.DefaultPolicy()
	p.InitialBackoff, p.MaxBackoff, p.Jitter, p.HintJitter = time.Second, 8*time.Second, 0, 0
	return p
}
