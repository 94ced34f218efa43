package connecttest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"connectrpc.com/connect"

	"github.com/faultline-go/faultline/connectfaultline/internal/sandboxpbconnect"
)

// HTTP is the HTTP version clients of an [Endpoint] speak. The server accepts
// both.
type HTTP uint8

const (
	// HTTP1 is HTTP/1.1. connect-go needs HTTP/2 for bidi streams (StreamExec):
	// its handler answers 505 to one on HTTP/1.1.
	HTTP1 HTTP = 1
	// HTTP2 is HTTP/2 without TLS, with prior knowledge (h2c): the client's
	// [http.Transport] allows unencrypted HTTP/2 only ([http.Protocols]).
	HTTP2 HTTP = 2
)

func (v HTTP) String() string {
	switch v {
	case HTTP1:
		return "HTTP/1.1"
	case HTTP2:
		return "HTTP/2"
	}
	return fmt.Sprintf("HTTP(%d)", v)
}

// HTTPVersions returns [HTTP1] and [HTTP2], for tests that run on each.
func HTTPVersions() []HTTP { return []HTTP{HTTP1, HTTP2} }

// Protocol is the RPC protocol of a connect-go client.
type Protocol uint8

const (
	Connect Protocol = iota // the Connect protocol, connect-go's default
	GRPC                    // gRPC: connect.WithGRPC()
	GRPCWeb                 // gRPC-Web: connect.WithGRPCWeb()
)

// String returns the protocol's name as connect-go's Peer.Protocol says it
// ([connect.ProtocolConnect], [connect.ProtocolGRPC], [connect.ProtocolGRPCWeb]).
func (p Protocol) String() string {
	switch p {
	case Connect:
		return connect.ProtocolConnect
	case GRPC:
		return connect.ProtocolGRPC
	case GRPCWeb:
		return connect.ProtocolGRPCWeb
	}
	return fmt.Sprintf("Protocol(%d)", p)
}

// ClientOption returns the client option that selects p: [connect.WithGRPC],
// [connect.WithGRPCWeb], or none for [Connect]. It panics for another value.
func (p Protocol) ClientOption() connect.ClientOption {
	switch p {
	case Connect:
		return connect.WithClientOptions() // no option: Connect is the default
	case GRPC:
		return connect.WithGRPC()
	case GRPCWeb:
		return connect.WithGRPCWeb()
	}
	panic(fmt.Sprintf("connecttest: unknown %v", p))
}

// Protocols returns [Connect], [GRPC] and [GRPCWeb], for tests that run on each.
func Protocols() []Protocol { return []Protocol{Connect, GRPC, GRPCWeb} }

// An Endpoint is a handler served for a test, and an HTTP client that reaches
// it. Its methods are safe for concurrent use.
type Endpoint struct {
	// URL is the base URL of connect clients: "http://127.0.0.1:<port>" from
	// [Serve], "http://memory" from [ServeMemory].
	URL string
	// HTTP is the version Client speaks.
	HTTP HTTP
	// Client speaks HTTP to the server, over TCP from [Serve], in memory from
	// [ServeMemory] (it reaches nothing else then). It has no timeout.
	Client *http.Client

	ts   *httptest.Server
	tr   *http.Transport
	once sync.Once
}

// Serve serves h (typically a [*Server]) with [httptest] on 127.0.0.1, on
// a free port, for HTTP/1.1 and HTTP/2 without TLS, and returns an Endpoint
// whose Client speaks v to it. When tb's test ends, [Endpoint.Close] runs.
//
// Serve uses real TCP: use it outside testing/synctest. Inside a bubble the
// server's and the client's goroutines wait on the network, which the bubble
// does not count as durably blocked, so its virtual clock would never advance
// while a call is open (a delay or a RetryInfo wait would hang the test); use
// [ServeMemory] there.
func Serve(tb testing.TB, h http.Handler, v HTTP) *Endpoint {
	tb.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("connecttest.Serve: listen: %v", err)
	}
	return start(tb, h, v, lis, nil)
}

// ServeMemory is [Serve] on an in-memory listener: no port, no network; each
// connection is a [net.Pipe] pair, which Client dials. A dial once the
// Endpoint is closed fails with a *net.OpError wrapping syscall.ECONNREFUSED,
// as a refused TCP dial does. URL is "http://memory".
//
// Called inside a testing/synctest bubble (inside the function given to
// synctest.Test), the server's and the client's goroutines belong to the
// bubble and wait durably, so every timer (a [Delay], a client deadline, a
// RetryInfo wait) runs on the bubble's virtual clock and takes no real time;
// the cleanup runs inside the bubble, and nothing is left running when
// synctest.Test returns.
func ServeMemory(tb testing.TB, h http.Handler, v HTTP) *Endpoint {
	tb.Helper()
	lis := newMemListener()
	return start(tb, h, v, lis, lis.dial)
}

func start(tb testing.TB, h http.Handler, v HTTP, lis net.Listener, dial func(context.Context, string, string) (net.Conn, error)) *Endpoint {
	tb.Helper()
	if v != HTTP1 && v != HTTP2 {
		_ = lis.Close()
		tb.Fatalf("connecttest: unknown %v", v)
	}
	var sp, cp http.Protocols
	sp.SetHTTP1(true)
	sp.SetUnencryptedHTTP2(true)
	if v == HTTP2 {
		cp.SetUnencryptedHTTP2(true)
	} else {
		cp.SetHTTP1(true)
	}
	ts := &httptest.Server{
		Listener: resetListener{lis},
		Config:   &http.Server{Handler: h, Protocols: &sp, ConnContext: connContext},
	}
	ts.Start()
	tr := &http.Transport{Protocols: &cp, DialContext: dial}
	e := &Endpoint{URL: ts.URL, HTTP: v, Client: &http.Client{Transport: tr}, ts: ts, tr: tr}
	tb.Cleanup(e.Close)
	return e
}

// SandboxClient returns a SandboxService client of the Endpoint speaking p,
// with opts after p's option.
func (e *Endpoint) SandboxClient(p Protocol, opts ...connect.ClientOption) sandboxpbconnect.SandboxServiceClient {
	return sandboxpbconnect.NewSandboxServiceClient(e.Client, e.URL, append([]connect.ClientOption{p.ClientOption()}, opts...)...)
}

// DiscoveryClient returns a DiscoveryService client of the Endpoint speaking
// p, with opts after p's option.
func (e *Endpoint) DiscoveryClient(p Protocol, opts ...connect.ClientOption) sandboxpbconnect.DiscoveryServiceClient {
	return sandboxpbconnect.NewDiscoveryServiceClient(e.Client, e.URL, append([]connect.ClientOption{p.ClientOption()}, opts...)...)
}

// Close closes the client's idle connections, then every server connection,
// active or not (calls in progress fail; their handlers' contexts are
// cancelled), then the server and its listener, and waits for the handlers
// to return. Calls made afterwards fail to dial. Close may be called more than
// once.
func (e *Endpoint) Close() {
	e.once.Do(func() {
		e.tr.CloseIdleConnections()
		e.ts.CloseClientConnections()
		e.ts.Close()
		e.tr.CloseIdleConnections()
	})
}
