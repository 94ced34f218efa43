package integration_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, toxiproxyLeaks...)
}

// Full method names.
const (
	mCreate   = sandboxpb.SandboxService_CreateSandbox_FullMethodName
	mGet      = sandboxpb.SandboxService_GetSandbox_FullMethodName
	mDelete   = sandboxpb.SandboxService_DeleteSandbox_FullMethodName
	mReadFile = sandboxpb.SandboxService_ReadFile_FullMethodName
	mWrite    = sandboxpb.SandboxService_WriteFile_FullMethodName
	mSnapshot = sandboxpb.SandboxService_GetFileSystemSnapshot_FullMethodName
	mLogs     = sandboxpb.SandboxService_StreamLogs_FullMethodName
	mExec     = sandboxpb.SandboxService_StreamExec_FullMethodName
	mRunner   = sandboxpb.DiscoveryService_GetAvailableRunner_FullMethodName
)

// clients are the generated clients of one connection.
type clients struct {
	conn *grpc.ClientConn
	sb   sandboxpb.SandboxServiceClient
	disc sandboxpb.DiscoveryServiceClient
}

// hangBound bounds a wait that only a hang makes long: what the integration tests wait for
// happens in milliseconds on an idle machine, and in seconds on a loaded one.
const hangBound = 2 * time.Minute

// waitUntil waits until cond holds, polling, and reports false if it still does not after
// hangBound.
func waitUntil(cond func() bool) bool {
	for deadline := time.Now().Add(hangBound); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			return false
		}
	}
	return true
}

// startServer serves a new sandboxtest.Server over TCP on 127.0.0.1 until the test ends.
func startServer(t testing.TB, opts ...sandboxtest.Option) (*sandboxtest.Server, string) {
	t.Helper()
	srv := sandboxtest.New(opts...)
	addr, stop, err := srv.StartTCP()
	if err != nil {
		t.Fatalf("StartTCP() error = %v", err)
	}
	t.Cleanup(stop)
	return srv, addr
}

// fastConnect makes grpc-go reconnect quickly after a transport fault, so that the tests
// measure the retry layer rather than grpc-go's default 1 s reconnect backoff.
var fastConnect = grpc.WithConnectParams(grpc.ConnectParams{
	Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.6, Jitter: 0, MaxDelay: 50 * time.Millisecond},
	MinConnectTimeout: 500 * time.Millisecond,
})

// dial connects to addr over TCP with both interceptors installed by
// interceptor.DialOptions(iopts...), then extra.
func dial(t testing.TB, addr string, iopts []interceptor.Option, extra ...grpc.DialOption) clients {
	t.Helper()
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials()), fastConnect}
	opts = append(opts, interceptor.DialOptions(iopts...)...)
	opts = append(opts, extra...)
	conn, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		t.Fatalf("grpc.NewClient(%q) error = %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return clients{conn: conn, sb: sandboxpb.NewSandboxServiceClient(conn), disc: sandboxpb.NewDiscoveryServiceClient(conn)}
}

// fastPolicy is a policy of n attempts with short backoffs and no jitter: waits are
// 2ms, 4ms, 8ms, ... up to 20ms, and server hints are honoured exactly.
func fastPolicy(n int) retry.Policy {
	p := retry.DefaultPolicy()
	p.MaxAttempts = n
	p.InitialBackoff, p.MaxBackoff, p.Multiplier = 2*time.Millisecond, 20*time.Millisecond, 2
	p.Jitter, p.HintJitter = 0, 0
	return p
}

// recorder keeps every hook event, and counts retries per call through a counter that the
// call's context carries (see recorder.track).
type recorder struct {
	mu      sync.Mutex
	retries []retry.RetryEvent
	dones   []retry.DoneEvent
}

type counterKey struct{}

// callCounter counts the retries of one call.
type callCounter struct {
	mu      sync.Mutex
	retries int
}

func (r *recorder) hooks() retry.Hooks {
	return retry.Hooks{
		OnRetry: func(ctx context.Context, ev retry.RetryEvent) {
			if c, ok := ctx.Value(counterKey{}).(*callCounter); ok {
				c.mu.Lock()
				c.retries++
				c.mu.Unlock()
			}
			r.mu.Lock()
			r.retries = append(r.retries, ev)
			r.mu.Unlock()
		},
		OnDone: func(_ context.Context, ev retry.DoneEvent) {
			r.mu.Lock()
			r.dones = append(r.dones, ev)
			r.mu.Unlock()
		},
	}
}

// track returns a context whose call's attempts the recorder counts, and a function
// returning them (attempts include the first).
func track(ctx context.Context) (context.Context, func() int) {
	c := &callCounter{}
	return context.WithValue(ctx, counterKey{}, c), func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		return c.retries + 1
	}
}

func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retries, r.dones = nil, nil
}

// events returns the retry events and the done events (one per call that retried or
// failed) so far.
func (r *recorder) events() ([]retry.RetryEvent, []retry.DoneEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.retries), slices.Clone(r.dones)
}

// attemptsOf returns the attempts err reports: those of a *retry.Error, 1 for any other
// error, 0 for nil.
func attemptsOf(err error) int {
	var re *retry.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &re):
		return re.Attempts()
	default:
		return 1
	}
}

// attemptsAgree reports whether the attempts err reports agree with those the hooks
// counted (the retries scheduled, plus the first): the same number, or one fewer when the
// caller's deadline ended the call in the wait before the last retry scheduled. That wait
// ends before the deadline (the loop schedules no wait that would not), but a process
// stalled past both finds the wait's timer and the deadline due together, and either may
// end the wait.
func attemptsAgree(err error, counted int, deadline, returned time.Time) bool {
	n := attemptsOf(err)
	if n == counted {
		return true
	}
	var re *retry.Error
	return n == counted-1 && errors.As(err, &re) && re.StopReason() == retry.StopDeadline && !returned.Before(deadline)
}

// asErrs returns the *errs.Error in err, failing the test if there is none.
func asErrs(t testing.TB, err error) *errs.Error {
	t.Helper()
	var e *errs.Error
	if !errors.As(err, &e) {
		t.Fatalf("errors.As(%v (%T), *errs.Error) = false, want true", err, err)
	}
	return e
}

// stats summarises the calls of one scenario.
type stats struct {
	name      string
	calls     int
	successes int
	attempts  []int         // per call, including the first
	overshoot time.Duration // the longest return time past a call's deadline
	late      time.Duration // the same, less the time the process was stalled (stallMeter)
	maxWall   time.Duration

	afterHeal, failedAfterHeal int // calls started after a fault healed, and how many failed
}

func (s *stats) add(attempts int, ok bool, wall time.Duration, overshoot time.Duration) {
	s.calls++
	if ok {
		s.successes++
	}
	s.attempts = append(s.attempts, attempts)
	s.maxWall = max(s.maxWall, wall)
	s.overshoot = max(s.overshoot, overshoot)
}

// addLate counts a call that returned at end, past its deadline dl or not, less what the
// meter (closed: it has recorded every stall up to end) saw of stalls in between.
func (s *stats) addLate(m *stallMeter, dl, end time.Time) {
	s.late = max(s.late, end.Sub(dl)-m.within(dl, end))
}

func (s *stats) rate() float64 {
	if s.calls == 0 {
		return 0
	}
	return float64(s.successes) / float64(s.calls)
}

// quantile returns the q-quantile (nearest rank) of the attempts.
func (s *stats) quantile(q float64) int {
	if len(s.attempts) == 0 {
		return 0
	}
	a := slices.Sorted(slices.Values(s.attempts))
	i := int(q*float64(len(a))+0.999999) - 1
	return a[min(max(i, 0), len(a)-1)]
}

// histogram renders the attempts as "1:n 2:n ...".
func (s *stats) histogram() string {
	counts := map[int]int{}
	for _, a := range s.attempts {
		counts[a]++
	}
	keys := slices.Sorted(func(yield func(int) bool) {
		for k := range counts {
			if !yield(k) {
				return
			}
		}
	})
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d:%d", k, counts[k])
	}
	return b.String()
}

// table renders stats as a fixed-width table.
func table(rows []*stats) string {
	w := len("fault")
	for _, s := range rows {
		w = max(w, len(s.name))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-*s %5s %8s %4s %4s %4s %10s %9s  %s\n", w, "fault", "calls", "success", "p50", "p99", "max", "overshoot", "max wall", "attempts:calls")
	for _, s := range rows {
		over := "-" // returned before the deadline
		if s.overshoot > 0 {
			over = s.overshoot.Round(100 * time.Microsecond).String()
		}
		fmt.Fprintf(&b, "%-*s %5d %7.1f%% %4d %4d %4d %10s %9s  %s\n", w, s.name, s.calls, 100*s.rate(),
			s.quantile(0.5), s.quantile(0.99), s.quantile(1), over, s.maxWall.Round(time.Millisecond), s.histogram())
	}
	return b.String()
}

// stallMeter measures when the process could not run its goroutines on time: a loaded
// machine deschedules it, or the race detector's work delays them. A goroutine asks to
// wake every millisecond and records each wake-up that came late. How long after its
// deadline a call returns includes those stalls, which are the machine's, not the retry
// layer's: checks of that delay subtract them (see maxOvershoot).
type stallMeter struct {
	quit chan struct{}
	done chan struct{}

	mu     sync.Mutex
	stalls [][2]time.Time // [from, to]: the process ran nothing of the meter's in between
}

// stallTick is how often the meter asks to wake; a wake-up more than stallTick late is a
// stall.
const stallTick = time.Millisecond

// startStallMeter starts a meter; close ends it (it also ends by itself after an hour).
func startStallMeter() *stallMeter {
	m := &stallMeter{quit: make(chan struct{}), done: make(chan struct{})}
	go m.run(time.Now().Add(time.Hour))
	return m
}

func (m *stallMeter) run(until time.Time) {
	defer close(m.done)
	tick := time.NewTicker(stallTick)
	defer tick.Stop()
	last := time.Now()
	for last.Before(until) {
		select {
		case <-m.quit:
			return
		case <-tick.C:
		}
		now := time.Now()
		if now.Sub(last) > 2*stallTick {
			m.mu.Lock()
			m.stalls = append(m.stalls, [2]time.Time{last.Add(stallTick), now})
			m.mu.Unlock()
		}
		last = now
	}
}

// close ends the meter and waits for its goroutine.
func (m *stallMeter) close() {
	close(m.quit)
	<-m.done
}

// within returns how much of [from, to] the process spent stalled.
func (m *stallMeter) within(from, to time.Time) time.Duration {
	m.mu.Lock()
	defer m.mu.Unlock()
	var sum time.Duration
	for _, s := range m.stalls {
		lo, hi := s[0], s[1]
		if lo.Before(from) {
			lo = from
		}
		if hi.After(to) {
			hi = to
		}
		if d := hi.Sub(lo); d > 0 {
			sum += d
		}
	}
	return sum
}

// oneAttempt is the default policy with one attempt: no retry.
func oneAttempt() retry.Policy {
	p := retry.DefaultPolicy()
	p.MaxAttempts = 1
	return p
}
