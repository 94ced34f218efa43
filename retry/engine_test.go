package retry_test

import (
	"errors"
	"sync"
	"testing"

	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/retry"
)

// origin is where a failed attempt's failure came from, as a transport tells the loop
// (safety.md section 1).
type origin uint8

const (
	ambiguous origin = iota // may have reached the server
	notSent                 // provably never reached a transport
	local                   // the client produced it and would again
)

// facts are the engine.Facts of a failure of a call at level l from origin o. That a
// failure is local is a fact of its classified error: see asLocal.
func facts(l retry.Idempotency, o origin) engine.Facts {
	return engine.Facts{Level: uint8(l), NotSent: o == notSent}
}

// madeHere wraps an error as one the client made itself, as faultline's throttle does:
// the classifier records such a failure as local.
type madeHere struct{ error }

func (madeHere) Local() bool     { return true }
func (m madeHere) Unwrap() error { return m.error }

// asLocal returns err's status as a failure the client made itself, classified on call.
func asLocal(err error) *errs.Error {
	return classify.New().Classify(madeHere{status.Convert(err).Err()}, sandboxCall)
}

// track returns a tracker of r as a transport drives it, through internal/engine.
func track(r *retry.Retrier, method string, conn engine.Conn) engine.Tracker {
	return engine.RouteOf(r).Track(method, conn)
}

// final returns Failed's result as a *retry.Error: nil for nil (retried).
func final(t testing.TB, err error) *retry.Error {
	t.Helper()
	if err == nil {
		return nil
	}
	var e *retry.Error
	if !errors.As(err, &e) {
		t.Fatalf("Failed(...) = %v (%T), want a *retry.Error", err, err)
	}
	return e
}

// fakeConn is an engine.Conn whose state a test sets, from any goroutine.
type fakeConn struct {
	closed chan struct{}

	mu      sync.Mutex
	ready   bool
	changed chan struct{}
	readies int // calls of Ready
}

func newFakeConn(ready bool) *fakeConn {
	return &fakeConn{closed: make(chan struct{}), ready: ready, changed: make(chan struct{})}
}

func (c *fakeConn) Target() string          { return "fake:///conn" }
func (c *fakeConn) Closed() <-chan struct{} { return c.closed }
func (c *fakeConn) Ready() (bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.readies++
	return c.ready, c.changed
}

// set changes the connection's state and wakes its waiters.
func (c *fakeConn) set(ready bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ready = ready
	close(c.changed)
	c.changed = make(chan struct{})
}
