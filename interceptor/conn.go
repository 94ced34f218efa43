package interceptor

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"

	"github.com/faultline-go/faultline/internal/engine"
)

// watchers holds one watcher per *grpc.ClientConn whose calls needed one (a failure to
// retry, or a call with a PerAttemptTimeout, which tracks its attempts from the start); an
// entry goes when its connection is closed.
var watchers sync.Map

// conn returns the engine's view of cc: its target, its close, and whether it is ready.
// A nil cc (an interceptor called directly) is always ready and never closed.
func conn(cc *grpc.ClientConn) engine.Conn {
	if cc == nil {
		return nil
	}
	if w, ok := watchers.Load(cc); ok {
		return w.(*watcher)
	}
	w := &watcher{cc: cc, closed: make(chan struct{}), changed: make(chan struct{}), state: cc.GetState()}
	if got, loaded := watchers.LoadOrStore(cc, w); loaded {
		return got.(*watcher)
	}
	go w.run()
	return w
}

// watcher follows one connection's state with one goroutine, for every call waiting on the
// connection: a wait between attempts ends at its close, and a retry waits for it to be
// ready, without a goroutine per wait. The goroutine ends when the connection is closed.
type watcher struct {
	cc     *grpc.ClientConn
	closed chan struct{} // closed at Shutdown

	mu      sync.Mutex
	state   connectivity.State
	changed chan struct{} // closed, and replaced, at every change of state
}

func (w *watcher) run() {
	for {
		st := w.cc.GetState()
		w.mu.Lock()
		if st != w.state {
			w.state = st
			close(w.changed)
			w.changed = make(chan struct{})
		}
		w.mu.Unlock()
		if st == connectivity.Shutdown {
			close(w.closed)
			watchers.Delete(w.cc)
			return
		}
		w.cc.WaitForStateChange(context.Background(), st)
	}
}

func (w *watcher) Target() string          { return w.cc.CanonicalTarget() }
func (w *watcher) Closed() <-chan struct{} { return w.closed }

// Ready reports whether the connection is READY; an IDLE one is asked to connect, since
// nothing else would make it leave IDLE while calls wait.
func (w *watcher) Ready() (bool, <-chan struct{}) {
	w.mu.Lock()
	st, ch := w.state, w.changed
	w.mu.Unlock()
	if st == connectivity.Idle {
		w.cc.Connect()
	}
	return st == connectivity.Ready, ch
}
