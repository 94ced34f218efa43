package bench

import (
	"context"
	"fmt"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
)

// The fleet scenario's server model and load, in one place (see [Fleet]).
const (
	// FleetCapacity is what the server can spend, in units per second: its token bucket
	// refills at this rate.
	FleetCapacity = 100.0
	// fleetBurst is the most units the bucket holds: a server idle for a while admits
	// this many calls at once, no more.
	fleetBurst = 5.0
	// fleetServiceTime is how long an admitted GetSandbox takes to answer. It costs one
	// unit, taken when it is admitted.
	fleetServiceTime = 10 * time.Millisecond
	// fleetRejectCost is what a rejection costs the server, in units: shedding is not
	// free (a real server parses, authenticates and answers the call it rejects), so
	// that a retry storm eats capacity. See [Fleet] for why 0.02.
	fleetRejectCost = 0.02
	// fleetRetryDelay is the RetryInfo every rejection carries.
	fleetRetryDelay = 250 * time.Millisecond
	// fleetBaseLoad is the offered load before and after the overload, x capacity.
	fleetBaseLoad = 0.5
	// fleetDeadline is every logical call's deadline.
	fleetDeadline = 2 * time.Second
	// fleetMaxInFlight bounds the logical calls in flight; an arrival beyond it is not
	// sent (counted in NotSent). At 10x, calls of 2 s keep at most 2,000 in flight.
	fleetMaxInFlight = 10000
	// fleetSlice and fleetRecovered define recovery: from the end of the overload, every
	// later slice of this length (calls grouped by start time) has at least this share
	// of successful calls.
	fleetSlice     = 100 * time.Millisecond
	fleetRecovered = 0.9
)

// callKey is the metadata key that carries a logical call's number, so that the server
// counts the attempts of each logical call (every retry layer here resends the caller's
// metadata on every attempt).
const callKey = "x-bench-call"

// FleetConfig sizes one run of the fleet scenario.
type FleetConfig struct {
	Clients int     // client connections, each with its own interceptor set
	Factor  float64 // offered load during the overload, x FleetCapacity
	// The three phases: load at 0.5x capacity, then Factor x, then 0.5x again.
	Before, Overload, After time.Duration
	// Reset makes the server answer an attempt it cannot serve by closing the connection
	// the attempt came on, after reading the attempt, instead of with RESOURCE_EXHAUSTED:
	// a proxy in front of the server that resets connections (see [Fleet]).
	Reset bool
}

// FleetFull returns the configuration of overload.md's targets: 10 s at 0.5x capacity,
// 4 s at factor x, 3 s at 0.5x.
func FleetFull(clients int, factor float64) FleetConfig {
	return FleetConfig{Clients: clients, Factor: factor, Before: 10 * time.Second, Overload: 4 * time.Second, After: 3 * time.Second}
}

// FleetResetFull is [FleetFull] with a server that resets the connection of every attempt
// it cannot serve (FleetConfig.Reset).
func FleetResetFull(clients int, factor float64) FleetConfig {
	c := FleetFull(clients, factor)
	c.Reset = true
	return c
}

// FleetShort is a smaller run for the harness's own tests and compare -short: 1 s,
// 1 s, 1 s. Its figures are not those of the targets (the budget's 10 s window is not
// warmed up).
func FleetShort(clients int, factor float64) FleetConfig {
	return FleetConfig{Clients: clients, Factor: factor, Before: time.Second, Overload: time.Second, After: time.Second}
}

// FleetFigures is what one run of the fleet scenario measured. Times are virtual.
type FleetFigures struct {
	Contender string  `json:"contender"`
	Kind      Kind    `json:"kind"`
	Clients   int     `json:"clients"`
	Factor    float64 `json:"factor"`
	Reset     bool    `json:"reset"`
	// Calls is the logical calls started during the overload; Attempts is the attempts
	// the server received for them (every attempt of theirs, even after the overload).
	Calls    int `json:"calls"`
	Attempts int `json:"attempts"`
	// Succeeded is how many of those Calls succeeded.
	Succeeded int `json:"succeeded"`
	// Goodput is successful logical calls (started at any time) that completed during
	// the overload, per second of overload.
	Goodput float64 `json:"goodput"`
	// Recovery is the time from the end of the overload until every later slice of
	// 100 ms (calls grouped by start) has at least 90% successful calls; Recovered is
	// false when even the last slice has not.
	Recovery  time.Duration `json:"recovery_ns"`
	Recovered bool          `json:"recovered"`
	// BaseAttempts is attempts per logical call before the overload (1.00 for a server
	// that is not overloaded).
	BaseAttempts float64 `json:"base_attempts"`
	// NotSent is arrivals of the whole run not sent because fleetMaxInFlight calls were
	// in flight.
	NotSent int `json:"not_sent"`
	// Failures counts the failed calls started during the overload by what they returned.
	Failures map[string]int `json:"failures"`
	// Connections is the connections the server accepted over the run (the clients', and
	// their reconnections); Resets is how many of them it closed to answer an attempt it
	// could not serve (FleetConfig.Reset), each after reading that attempt.
	Connections int `json:"connections"`
	Resets      int `json:"resets"`
}

// AttemptsPerCall returns Attempts / Calls.
func (f FleetFigures) AttemptsPerCall() float64 {
	return float64(f.Attempts) / float64(max(f.Calls, 1))
}

// Fleet runs the fleet scenario once, for one contender, in a testing/synctest bubble,
// and returns its figures. It calls t.Fatal if the harness cannot run (a server or a
// connection that does not come up); a target that is missed is a figure, not an error.
//
// The server is one sandboxtest server on bufconn, shared by cfg.Clients client
// connections (each with the contender's own interceptors), with a harness interceptor
// outside the sandbox server's that models a server of fixed capacity: a token bucket
// refills [FleetCapacity] units per second, up to fleetBurst; a GetSandbox that finds a
// unit is admitted, takes it, and is answered after fleetServiceTime; one that does not
// is answered at once with RESOURCE_EXHAUSTED and RetryInfo 250 ms, and costs
// fleetRejectCost of a unit (taken from what the bucket holds, never below zero), so
// that a server flooded with attempts has less left for the calls it admits. With no
// retries at all, the server admits a calls per second out of A offered when
// a + 0.02 (A - a) = 100: 92 at 5x, 82 at 10x, which are the no-retry figures of
// overload.md. (At 0.1 unit per rejection, 10x with no retries at all would leave the
// server nothing: 1,000 rejections a second cost 100 units.)
//
// The load is open loop: logical GetSandbox calls, each with a 2 s deadline, evenly
// spaced in time and dealt to the clients in turn, at 0.5x capacity for cfg.Before, at
// cfg.Factor x for cfg.Overload, then at 0.5x for cfg.After; the run ends when every call
// has returned.
//
// With cfg.Reset, the server answers an attempt it does not admit not with a status but by
// closing, at once, the connection the attempt came on (no GOAWAY, no status): a proxy in
// front of an overloaded server that resets connections. The attempt was read (the
// server's interceptor, where it is counted, runs on the decoded request), so it reached
// the server; the client sees UNAVAILABLE for it and for every other attempt in flight on
// that connection, and grpc-go reconnects. A rejection costs the server the same as
// before.
func Fleet(t *testing.T, c Contender, cfg FleetConfig) FleetFigures {
	t.Helper()
	var out FleetFigures
	synctest.Test(t, func(t *testing.T) { out = fleetRun(t, c, cfg) })
	return out
}

// fleetCall is one logical call of a fleet run, in virtual time since the load began.
type fleetCall struct {
	start, end time.Duration
	sent       bool
	err        error
}

func fleetRun(t *testing.T, c Contender, cfg FleetConfig) FleetFigures {
	starts := fleetSchedule(cfg)
	lis := &proxyListener{Listener: bufconn.Listen(faultlinetest.BufSize)}
	srv := newFleetServer(len(starts), cfg.Reset, lis)
	sb := sandboxtest.New(sandboxtest.WithSandboxes(sandboxID))
	gs := grpc.NewServer(append(sb.ServerOptions(), grpc.WaitForHandlers(true), grpc.UnaryInterceptor(srv.intercept))...)
	sb.Register(gs)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gs.Serve(lis) // returns after Stop
	}()
	defer func() {
		gs.Stop()
		<-served
	}()

	apis := make([]sandboxpb.SandboxServiceClient, cfg.Clients)
	for i := range apis {
		conn, err := sandboxtest.DialBufconn(lis.Listener, c.Options()...)
		if err != nil {
			t.Fatalf("fleet: dial for %s: %v", c.Name, err)
		}
		defer conn.Close()
		if err := connect(conn); err != nil {
			t.Fatalf("fleet: connecting client %d of %s: %v", i, c.Name, err)
		}
		apis[i] = sandboxpb.NewSandboxServiceClient(conn)
	}

	calls := make([]fleetCall, len(starts))
	var (
		wg       sync.WaitGroup
		inFlight = make(chan struct{}, fleetMaxInFlight)
		req      = &sandboxpb.GetSandboxRequest{SandboxId: sandboxID}
		t0       = time.Now()
	)
	srv.open(t0)
	for id, at := range starts {
		time.Sleep(time.Until(t0.Add(at))) // the loop is bounded by the schedule
		select {
		case inFlight <- struct{}{}:
		default:
			continue
		}
		wg.Go(func() {
			defer func() { <-inFlight }()
			ctx := metadata.AppendToOutgoingContext(context.Background(), callKey, strconv.Itoa(id))
			ctx, cancel := context.WithTimeout(ctx, fleetDeadline)
			defer cancel()
			_, err := apis[id%len(apis)].GetSandbox(ctx, req)
			calls[id] = fleetCall{start: at, end: time.Since(t0), sent: true, err: err}
		})
	}
	wg.Wait() // every call ends by its deadline
	f := fleetFigures(c, cfg, calls, srv.counts())
	f.Connections, f.Resets = lis.counts()
	return f
}

// fleetSchedule returns the start time of every logical call of a run, in order.
func fleetSchedule(cfg FleetConfig) []time.Duration {
	var out []time.Duration
	phase := func(from, length time.Duration, factor float64) {
		rate := factor * FleetCapacity
		n := int(math.Round(length.Seconds() * rate))
		for k := range n {
			out = append(out, from+time.Duration(float64(k)*float64(time.Second)/rate))
		}
	}
	phase(0, cfg.Before, fleetBaseLoad)
	phase(cfg.Before, cfg.Overload, cfg.Factor)
	phase(cfg.Before+cfg.Overload, cfg.After, fleetBaseLoad)
	return out
}

// fleetFigures computes a run's figures from its calls and the server's attempt counts.
func fleetFigures(c Contender, cfg FleetConfig, calls []fleetCall, attempts []int32) FleetFigures {
	f := FleetFigures{Contender: c.Name, Kind: c.Kind, Clients: cfg.Clients, Factor: cfg.Factor, Reset: cfg.Reset, Failures: map[string]int{}}
	from, to := cfg.Before, cfg.Before+cfg.Overload
	var baseCalls, baseAttempts int
	after := make([]struct{ calls, ok int }, int(math.Ceil(float64(cfg.After)/float64(fleetSlice))))
	for id, call := range calls {
		if !call.sent {
			f.NotSent++
			continue
		}
		switch {
		case call.start < from:
			baseCalls++
			baseAttempts += int(attempts[id])
		case call.start < to:
			f.Calls++
			f.Attempts += int(attempts[id])
			if call.err == nil {
				f.Succeeded++
			} else {
				f.Failures[errLabel(call.err)]++
			}
		default:
			s := &after[min(int((call.start-to)/fleetSlice), len(after)-1)]
			s.calls++
			if call.err == nil {
				s.ok++
			}
		}
		if call.err == nil && call.end >= from && call.end < to {
			f.Goodput++
		}
	}
	f.Goodput /= cfg.Overload.Seconds()
	f.BaseAttempts = float64(baseAttempts) / float64(max(baseCalls, 1))
	// Recovery: the end of the last slice below the mark, from the end of the overload.
	f.Recovered = true
	for i, s := range after {
		if float64(s.ok) < fleetRecovered*float64(s.calls) {
			f.Recovery = time.Duration(i+1) * fleetSlice
			f.Recovered = i < len(after)-1
		}
	}
	return f
}

// fleetServer is the fleet scenario's model of a server of fixed capacity (see [Fleet]):
// the outermost unary interceptor of a sandboxtest server.
type fleetServer struct {
	reject   *status.Status
	attempts []atomic.Int32 // by logical call number
	reset    bool           // reject by closing the attempt's connection
	lis      *proxyListener

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newFleetServer(calls int, reset bool, lis *proxyListener) *fleetServer {
	return &fleetServer{
		reject:   faultlinetest.Status(codes.ResourceExhausted, "over capacity", faultlinetest.RetryInfo(fleetRetryDelay)),
		attempts: make([]atomic.Int32, calls),
		reset:    reset,
		lis:      lis,
	}
}

// open starts admission control at now, with a full bucket.
func (s *fleetServer) open(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens, s.last = fleetBurst, now
}

// admit reports whether an attempt arriving at now is admitted, and charges the bucket.
func (s *fleetServer) admit(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if now.After(s.last) {
		s.tokens = min(fleetBurst, s.tokens+now.Sub(s.last).Seconds()*FleetCapacity)
		s.last = now
	}
	if s.tokens >= 1 {
		s.tokens--
		return true
	}
	s.tokens = max(0, s.tokens-fleetRejectCost)
	return false
}

func (s *fleetServer) intercept(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	id, ok := callNumber(ctx, len(s.attempts))
	if !ok {
		return handler(ctx, req)
	}
	s.attempts[id].Add(1) // the request arrived: it was read and decoded
	if !s.admit(time.Now()) {
		if !s.reset {
			return nil, s.reject.Err()
		}
		if p, ok := peer.FromContext(ctx); ok && s.lis.reset(p.Addr) {
			// The connection is closed: this status is never written, the client sees the
			// connection end.
			return nil, status.Error(codes.Unavailable, "connection reset")
		}
		// Not a connection of the listener's: visible in the figures' failures.
		return nil, status.Error(codes.Internal, "bench: no connection to reset")
	}
	t := time.NewTimer(fleetServiceTime)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	return handler(ctx, req)
}

// counts returns the attempts the server received, by logical call number.
func (s *fleetServer) counts() []int32 {
	out := make([]int32, len(s.attempts))
	for i := range s.attempts {
		out[i] = s.attempts[i].Load()
	}
	return out
}

// callNumber returns the logical call number in ctx's incoming metadata, if it has one
// below n.
func callNumber(ctx context.Context, n int) (int, bool) {
	md, _ := metadata.FromIncomingContext(ctx)
	v := md.Get(callKey)
	if len(v) != 1 {
		return 0, false
	}
	id, err := strconv.Atoi(v[0])
	if err != nil || id < 0 || id >= n {
		return 0, false
	}
	return id, true
}

// label names a run in messages: "faultline, N=100, 5x", and "faultline, N=100, 5x,
// resets" for a server that resets connections.
func (f FleetFigures) label() string {
	l := fmt.Sprintf("%s, N=%d, %gx", f.Contender, f.Clients, f.Factor)
	if f.Reset {
		l += ", resets"
	}
	return l
}

// proxyListener is the fleet server's listener: it names every connection it accepts
// with an address of its own (the peer address the server's handlers see), so that the
// server can close the connection an attempt came on, as a proxy that resets it does.
type proxyListener struct {
	*bufconn.Listener

	mu     sync.Mutex
	conns  map[string]*proxyConn // by remote address
	resets int
}

func (l *proxyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns == nil {
		l.conns = map[string]*proxyConn{}
	}
	pc := &proxyConn{Conn: c, remote: proxyAddr("client-" + strconv.Itoa(len(l.conns)+1))}
	l.conns[pc.remote.String()] = pc
	return pc, nil
}

// reset closes the connection whose remote address is addr, if it is one of the
// listener's, and reports whether it is; closing it again is not another reset.
func (l *proxyListener) reset(addr net.Addr) bool {
	l.mu.Lock()
	pc, ok := l.conns[addr.String()]
	first := ok && !pc.closed
	if first {
		pc.closed = true
		l.resets++
	}
	l.mu.Unlock()
	if first {
		_ = pc.Close()
	}
	return ok
}

// counts returns the connections accepted and those reset.
func (l *proxyListener) counts() (accepted, resets int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.conns), l.resets
}

// proxyConn is a server-side connection with a remote address of its own.
type proxyConn struct {
	net.Conn
	remote proxyAddr
	closed bool // by reset; guarded by the listener's mu
}

func (c *proxyConn) RemoteAddr() net.Addr { return c.remote }

// proxyAddr names one connection of a proxyListener.
type proxyAddr string

func (a proxyAddr) Network() string { return "bufconn" }
func (a proxyAddr) String() string  { return string(a) }
