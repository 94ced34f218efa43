package connecttest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"
)

// Reset says how a [Fault] breaks the transport under a call.
type Reset uint8

const (
	// CloseConn closes the connection the call came on, and so every call it
	// carries, after whatever the server sent before the reset (on HTTP/2,
	// the frames the server had buffered too). On TCP the socket is closed
	// with SO_LINGER 0, so the client reads a TCP RST ("connection reset by
	// peer"); in memory the client reads EOF. Served without [Serve] or
	// [ServeMemory] (the connection is not known) it is [AbortStream].
	CloseConn Reset = iota + 1
	// AbortStream aborts the call's HTTP exchange, as a handler that panics with
	// [http.ErrAbortHandler] does: on HTTP/2 the server resets the stream
	// (RST_STREAM with INTERNAL_ERROR) and the connection's other calls go on;
	// on HTTP/1.1 the server closes the connection.
	AbortStream
)

func (r Reset) String() string {
	switch r {
	case CloseConn:
		return "CloseConn"
	case AbortStream:
		return "AbortStream"
	}
	return fmt.Sprintf("Reset(%d)", r)
}

// A Fault is what the transport does to one call, around what the sandboxtest
// service does with it: wait ([Delay], [Fault.After]), or break the transport
// before the service sees the call ([ResetBefore]) or after it handled it
// ([ResetAfter]). The zero Fault does nothing. Faults are plain values; queue
// them with [Server.Inject].
type Fault struct {
	delay   time.Duration
	reset   Reset // 0: none
	handled bool  // with reset: after the service handled the call
	sends   int   // with handled: response messages delivered before the reset
}

// Delay returns a Fault that holds the call for d, on the time package's clock
// (inside a testing/synctest bubble, the bubble's virtual clock), before it
// reaches the service. A call whose context ends first (the client's deadline,
// which travels to the server, or a cancellation) fails with DEADLINE_EXCEEDED
// or CANCELED and never reaches the service. A d <= 0 means no wait.
func Delay(d time.Duration) Fault { return Fault{}.After(d) }

// After returns a copy of f that first waits d, as [Delay] says. The last
// After wins.
func (f Fault) After(d time.Duration) Fault {
	f.delay = max(d, 0)
	return f
}

// ResetBefore returns a Fault that breaks the transport as how says as soon as
// the call arrives: the service never sees it (sandboxtest counts no call,
// [Server.Arrived] does), the client gets no response. It panics if how is not
// [CloseConn] or [AbortStream].
func ResetBefore(how Reset) Fault {
	mustReset(how)
	return Fault{reset: how}
}

// ResetAfter returns a Fault that lets the service handle the call (it is
// counted, its scripts apply and its side effect happens: a sandbox created, a
// command run), then breaks the transport as how says instead of answering.
// On a unary call the response is never sent (sends is ignored). On a stream
// the first sends messages the service sends reach the client (none if sends
// <= 0); the service's next send resets the transport and fails, so the
// service's handler returns; a handler that ends before it sends more resets
// the transport at its end instead of ending the stream. It panics if how is
// not [CloseConn] or [AbortStream].
func ResetAfter(how Reset, sends int) Fault {
	mustReset(how)
	return Fault{reset: how, handled: true, sends: max(sends, 0)}
}

func mustReset(how Reset) {
	if how != CloseConn && how != AbortStream {
		panic(fmt.Sprintf("connecttest: %v is not CloseConn or AbortStream", how))
	}
}

// Inject queues faults for the procedure: each call of it that reaches the
// connect handler takes the next one, before anything else happens to it
// (before sandboxtest counts it and takes its script step). Once the queue is
// empty, calls get no fault. Calls to Inject add to the queue. It panics if
// procedure is not a method of SandboxService or DiscoveryService.
func (s *Server) Inject(procedure string, faults ...Fault) {
	if _, ok := s.methods[procedure]; !ok {
		panic(fmt.Sprintf("connecttest: unknown procedure %q (want a full method name such as %q)",
			procedure, "/coreweave.sandbox.v1.SandboxService/GetSandbox"))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[procedure] = append(s.faults[procedure], faults...)
}

// begin counts the call and takes its fault: it waits out the delay and does a
// reset that comes before the service, returning the error the handler must
// return; otherwise it returns what is left to do after the service ran (a
// zero Fault if nothing).
func (s *Server) begin(ctx context.Context, procedure string) (Fault, error) {
	s.mu.Lock()
	s.arrived[procedure]++
	var f Fault
	if q := s.faults[procedure]; len(q) > 0 {
		f, s.faults[procedure] = q[0], q[1:]
	}
	s.mu.Unlock()

	if f.delay > 0 {
		t := time.NewTimer(f.delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			code := connect.CodeCanceled
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				code = connect.CodeDeadlineExceeded
			}
			return Fault{}, connect.NewError(code, ctx.Err())
		}
	}
	if f.reset != 0 && !f.handled {
		return Fault{}, resetNow(ctx, f.reset)
	}
	if !f.handled {
		return Fault{}, nil
	}
	return f, nil
}

// resetNow breaks the transport under the call of ctx and returns the error
// its handler returns (connect-go's answer is dropped).
func resetNow(ctx context.Context, how Reset) error {
	if ex, ok := ctx.Value(exchangeKey{}).(*exchange); ok {
		ex.trigger(how)
	}
	return connect.NewError(connect.CodeUnavailable, errors.New("connecttest: transport reset"))
}

type exchangeKey struct{}

type connKey struct{}

// connContext is the [http.Server.ConnContext] of the harness: it makes the
// connection known to [CloseConn].
func connContext(ctx context.Context, c net.Conn) context.Context {
	if sc, ok := c.(*serverConn); ok {
		return context.WithValue(ctx, connKey{}, sc)
	}
	return ctx
}

func connFrom(ctx context.Context) *serverConn {
	c, _ := ctx.Value(connKey{}).(*serverConn)
	return c
}

// exchange is the response writer of one HTTP exchange: once the transport is
// reset under it, it drops everything connect-go writes.
type exchange struct {
	w     http.ResponseWriter
	conn  *serverConn // nil when not served by the harness
	h2    bool        // the exchange is an HTTP/2 stream
	reset atomic.Uint32
}

func (e *exchange) wasReset() bool { return e.reset.Load() != 0 }

// trigger resets the transport under the exchange, once. The handler then
// returns and [Server.ServeHTTP] aborts the exchange ([http.ErrAbortHandler]):
// for AbortStream that is the reset; for CloseConn on HTTP/2 the connection
// resets itself instead of sending the abort's RST_STREAM, after the frames the
// server buffered before it (see [serverConn]).
func (e *exchange) trigger(how Reset) {
	if !e.reset.CompareAndSwap(0, uint32(how)) || how != CloseConn || e.conn == nil {
		return
	}
	if e.h2 {
		e.conn.resetBeforeRST()
		return
	}
	e.conn.reset()
}

func (e *exchange) Header() http.Header { return e.w.Header() }

func (e *exchange) Write(b []byte) (int, error) {
	if e.wasReset() {
		return 0, net.ErrClosed
	}
	return e.w.Write(b)
}

func (e *exchange) WriteHeader(code int) {
	if !e.wasReset() {
		e.w.WriteHeader(code)
	}
}

// Flush implements [http.Flusher], which connect-go needs for streams.
func (e *exchange) Flush() {
	if f, ok := e.w.(http.Flusher); ok && !e.wasReset() {
		f.Flush()
	}
}

// Unwrap gives [http.ResponseController] the writer underneath.
func (e *exchange) Unwrap() http.ResponseWriter { return e.w }
