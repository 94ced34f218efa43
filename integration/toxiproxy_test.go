package integration_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

// toxiproxyLeaks are the goroutines toxiproxy v2.12.0 itself leaves behind, not anything
// faultline starts. When the limit_data toxic has passed its byte limit it closes its stub
// and returns (toxics/limit_data.go); the stub before it in the chain, always a NoopToxic,
// then blocks forever sending the next chunk into the closed stub's unbuffered input
// (toxics/noop.go: nothing interrupts or drains it), and the ToxicLink.read goroutine that
// feeds the NoopToxic blocks on its own channel write in turn (link.go, stream/io_chan.go).
// Closing the proxy's connections does not free them: neither goroutine is reading a
// connection. Two goroutines per truncated connection, ignored here by their functions.
// Likewise the latency toxic, interrupted while it holds a chunk, sends that chunk on to
// the next stub with no one left to read it (toxics/latency.go: "Don't drop any data on the
// floor") when its connection was reset meanwhile.
var toxiproxyLeaks = []goleak.Option{
	goleak.IgnoreTopFunction("github.com/Shopify/toxiproxy/v2/toxics.(*NoopToxic).Pipe"),
	goleak.IgnoreTopFunction("github.com/Shopify/toxiproxy/v2/toxics.(*LatencyToxic).Pipe"),
	goleak.IgnoreAnyFunction("github.com/Shopify/toxiproxy/v2.(*ToxicLink).read"),
}

// faultEnv is the real server behind an in-process toxiproxy proxy, and a client with both
// interceptors dialling the proxy.
type faultEnv struct {
	srv   *sandboxtest.Server
	proxy *toxiproxy.Proxy
	c     clients

	mu        sync.Mutex
	retries   int
	healAt    int
	healed    chan struct{} // closed when heal has run
	heal      func()
	healOnce  sync.Once
	healedAt  time.Time // when heal returned
	createIDs []string
	callOpts  []grpc.CallOption // for every call of the load functions
}

func (e *faultEnv) opts() []grpc.CallOption {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.callOpts
}

var bigFile = bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB

// newFaultEnv returns the environment of one scenario, whose client retries by p with the
// default budget, or as opts say.
func newFaultEnv(t *testing.T, p retry.Policy, opts ...retry.Option) *faultEnv {
	t.Helper()
	srv, upstream := startServer(t, sandboxtest.WithSandboxes("sb-1"))
	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	proxy := toxiproxy.NewProxy(api, "sandbox", "127.0.0.1:0", upstream)
	if err := proxy.Start(); err != nil {
		t.Fatalf("proxy.Start() error = %v", err)
	}
	e := &faultEnv{srv: srv, proxy: proxy}
	t.Cleanup(func() {
		e.triggerHeal() // a scenario that never saw its fault still heals
		proxy.Stop()
	})
	e.c = dial(t, proxy.Listen, []interceptor.Option{interceptor.WithRetrier(retry.MustNew(p, append(opts, retry.WithHooks(retry.Hooks{
		OnRetry: func(ctx context.Context, ev retry.RetryEvent) {
			if c, ok := ctx.Value(counterKey{}).(*callCounter); ok {
				c.mu.Lock()
				c.retries++
				c.mu.Unlock()
			}
			e.mu.Lock()
			e.retries++
			heal := e.healAt > 0 && e.retries == e.healAt
			e.mu.Unlock()
			if heal {
				go e.triggerHeal()
			}
		},
	}))...))})
	// Warm up: connect, and write the file the truncation scenario reads.
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	if _, err := e.c.sb.WriteFile(ctx, &sandboxpb.WriteFileRequest{SandboxId: "sb-1", Path: "/big", Content: bigFile}); err != nil {
		t.Fatalf("warm-up WriteFile() error = %v", err)
	}
	return e
}

// healAfter makes heal run (on its own goroutine) once n retries have been scheduled, so
// that a fault window is measured in failed attempts, not in sleeps.
func (e *faultEnv) healAfter(n int, heal func()) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.healAt, e.heal, e.healed = n, heal, make(chan struct{})
}

func (e *faultEnv) triggerHeal() {
	e.mu.Lock()
	heal, healed := e.heal, e.healed
	e.mu.Unlock()
	if heal == nil {
		return
	}
	e.healOnce.Do(func() {
		heal()
		e.mu.Lock()
		e.healedAt = time.Now()
		e.mu.Unlock()
		close(healed)
	})
}

func (e *faultEnv) addToxic(t *testing.T, name, typ, stream, attrs string) {
	t.Helper()
	js := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":%s}`, name, typ, stream, attrs)
	if _, err := e.proxy.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
		t.Fatalf("AddToxicJson(%s) error = %v", js, err)
	}
}

func (e *faultEnv) removeToxic(name string) func() {
	return func() { _ = e.proxy.Toxics.RemoveToxic(context.Background(), name) }
}

// Calls a load is made of. Each gets the call's context and a unique call number.
func (e *faultEnv) get(ctx context.Context, _ string) error {
	_, err := e.c.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}, e.opts()...)
	return err
}

func (e *faultEnv) create(ctx context.Context, id string) error {
	e.mu.Lock()
	e.createIDs = append(e.createIDs, id)
	e.mu.Unlock()
	_, err := e.c.sb.CreateSandbox(ctx, &sandboxpb.CreateSandboxRequest{RequestId: id}, e.opts()...)
	return err
}

func (e *faultEnv) read(ctx context.Context, _ string) error {
	res, err := e.c.sb.ReadFile(ctx, &sandboxpb.ReadFileRequest{SandboxId: "sb-1", Path: "/big"}, e.opts()...)
	if err == nil && !bytes.Equal(res.GetContent(), bigFile) {
		return fmt.Errorf("ReadFile returned %d bytes, want the whole %d-byte file", len(res.GetContent()), len(bigFile))
	}
	return err
}

// mix alternates CreateSandbox and GetSandbox.
func (e *faultEnv) mix(ctx context.Context, id string) error {
	if id[len(id)-1]%2 == 0 { // ids end in the call's number
		return e.create(ctx, id)
	}
	return e.get(ctx, id)
}

// load runs workers x perWorker calls, each with its own deadline, and returns their
// stats, plus the distinct errors seen (by code, kind and first words) for the log.
func (e *faultEnv) load(t *testing.T, name string, workers, perWorker int, deadline time.Duration,
	call func(context.Context, string) error) (*stats, map[string]int) {
	st := &stats{name: name}
	seen := map[string]int{}
	var ends [][2]time.Time // per call: its deadline, when it returned
	meter := startStallMeter()
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range perWorker {
				ctx, cancel := context.WithTimeout(context.Background(), deadline)
				dl, _ := ctx.Deadline()
				ctx, attempts := track(ctx)
				start := time.Now()
				err := call(ctx, fmt.Sprintf("%s-%d-%d", strings.ReplaceAll(name, " ", "-"), w, i))
				end := time.Now()
				cancel()
				e.mu.Lock()
				afterHeal := !e.healedAt.IsZero() && start.After(e.healedAt)
				e.mu.Unlock()
				mu.Lock()
				st.add(attempts(), err == nil, end.Sub(start), end.Sub(dl))
				ends = append(ends, [2]time.Time{dl, end})
				if afterHeal {
					st.afterHeal++
					if err != nil {
						st.failedAfterHeal++
					}
				}
				if err != nil {
					seen[errSummary(err)]++
					var ce *errs.Error
					if !errors.As(err, &ce) {
						t.Errorf("call error %v (%T), want a classified *errs.Error", err, err)
					} else if !attemptsAgree(err, attempts(), dl, end) {
						t.Errorf("Attempts() = %d, hooks counted %d (%v)", attemptsOf(err), attempts(), err)
					}
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	meter.close()
	for _, c := range ends {
		st.addLate(meter, c[0], c[1])
	}
	return st, seen
}

// errSummary is the code and kind of err, and the server or transport message cut short.
func errSummary(err error) string {
	var e *errs.Error
	kind := "unclassified"
	if errors.As(err, &e) {
		kind = e.Kind().String()
	}
	msg := status.Convert(err).Message()
	if i := strings.IndexAny(msg, ":\""); i > 0 && i < 60 {
		msg = msg[:i]
	}
	if len(msg) > 60 {
		msg = msg[:60]
	}
	return fmt.Sprintf("%v/%s %q", status.Code(err), kind, msg)
}

// checkCreates checks that no request_id created more than one sandbox: the server's count
// of distinct sandboxes is at most the number of request ids used. It returns how many
// request ids reached the server more than once (retried creates).
func (e *faultEnv) checkCreates(t *testing.T) (ids, retried int) {
	t.Helper()
	e.mu.Lock()
	ids = len(e.createIDs)
	e.mu.Unlock()
	if got := e.srv.Created(); got > ids {
		t.Errorf("server created %d sandboxes for %d request ids, want at most one each", got, ids)
	}
	perID := map[string]int{}
	for _, m := range e.srv.Requests(mCreate) {
		perID[m.(*sandboxpb.CreateSandboxRequest).GetRequestId()]++
	}
	for _, n := range perID {
		if n > 1 {
			retried++
		}
	}
	return ids, retried
}

func injectReset(t *testing.T, e *faultEnv) {
	e.addToxic(t, "reset", "reset_peer", "downstream", `{"timeout":0}`)
}

func healReset(_ *testing.T, e *faultEnv) { e.removeToxic("reset")() }

func injectDisabled(_ *testing.T, e *faultEnv) { e.proxy.Stop() }

func healDisabled(t *testing.T, e *faultEnv) {
	if err := e.proxy.Start(); err != nil {
		t.Errorf("proxy.Start() error = %v", err)
	}
}

// manyAttempts is a number of attempts only a hang exhausts with recoveryPolicy: about 8 s
// of waits.
const manyAttempts = 100

// recoveryPolicy retries quickly with no jitter: waits of 5, 10, 20, 40, 80, 80, ... ms.
func recoveryPolicy(attempts int) retry.Policy {
	p := retry.DefaultPolicy()
	p.MaxAttempts = attempts
	p.InitialBackoff, p.MaxBackoff, p.Multiplier, p.Jitter = 5*time.Millisecond, 80*time.Millisecond, 2, 0
	return p
}

// TestTransportFaults injects real transport faults with toxiproxy between the client and
// the real server, and measures what the retry layer makes of them: success rate, attempts
// per call, and how far past its deadline any call returned.
func TestTransportFaults(t *testing.T) {
	var rows []*stats
	record := func(st *stats, seen map[string]int, t *testing.T) {
		rows = append(rows, st)
		for s, n := range seen {
			t.Logf("%s: %d x %s", st.name, n, s)
		}
		if st.late > maxOvershoot {
			t.Errorf("%s: a call returned %v after its deadline while the process ran (%v in all), want at most %v",
				st.name, st.late, st.overshoot, maxOvershoot)
		}
	}
	// recovered checks that a call made once the fault healed succeeds. It gives the call
	// manyAttempts, far more than grpc-go's reconnect backoff (at most 50ms here), which a
	// call may meet if the connection was in backoff when the fault healed, however slow
	// the machine.
	recovered := func(t *testing.T, e *faultEnv, call func(context.Context, string) error) {
		t.Helper()
		e.triggerHeal() // no-op when the fault window already closed
		e.mu.Lock()
		e.callOpts = []grpc.CallOption{interceptor.WithCallPolicy(recoveryPolicy(manyAttempts))}
		e.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), hangBound)
		defer cancel()
		if err := call(ctx, "after-heal"); err != nil {
			t.Errorf("first call after the fault healed: error = %v, want nil", err)
		}
	}

	// Fault windows: the fault is on from the first call and healed once the calls have
	// scheduled healAt retries. A call caught in the window fails once, schedules one retry
	// and then waits for the connection rather than making attempts that would fail fast
	// (overload.md, rule 2): the 100-attempt windows heal once both workers' first calls
	// are waiting. With 100 attempts (about 8 s of waits: only a hang outlasts them) every
	// call outlasts the window; with 3 the calls caught in it fail, each after its schedule
	// (5 + 10 ms) of waiting. (With 8 attempts, 315ms of waits, a loaded machine could take
	// longer than that to heal and reconnect.) The calls' deadline bounds a hang.
	windows := []struct {
		name     string
		attempts int
		healAt   int
		inject   func(*testing.T, *faultEnv)
		heal     func(*testing.T, *faultEnv)
	}{
		{"reset_peer window, 100 attempts", manyAttempts, 2, injectReset, healReset},
		{"reset_peer window, 3 attempts", 3, 12, injectReset, healReset},
		{"proxy disabled window, 100 attempts", manyAttempts, 2, injectDisabled, healDisabled},
		{"proxy disabled window, 3 attempts", 3, 12, injectDisabled, healDisabled},
	}
	for _, w := range windows {
		t.Run(w.name, func(t *testing.T) {
			e := newFaultEnv(t, recoveryPolicy(w.attempts))
			w.inject(t, e)
			e.healAfter(w.healAt, func() { w.heal(t, e) })
			st, seen := e.load(t, w.name, 2, 15, hangBound, e.mix)
			record(st, seen, t)
			ids, retried := e.checkCreates(t)
			t.Logf("%s: %d create request ids, %d reached the server more than once, %d sandboxes created", w.name, ids, retried, e.srv.Created())
			t.Logf("%s: %d calls started after the heal, %d of them failed", w.name, st.afterHeal, st.failedAfterHeal)
			if st.quantile(1) < 2 || st.afterHeal == 0 {
				t.Errorf("max attempts, calls started after the heal = %d, %d, want >= 2 (the fault was seen), > 0", st.quantile(1), st.afterHeal)
			}
			// With 100 attempts a call waits about 8 s in all, far longer than grpc-go's
			// reconnect backoff (50ms here): every call outlasts the window. With 3 (15ms of
			// waits) a call that starts just after the heal may still find the connection in
			// that backoff, so only the window's failures are checked.
			if w.attempts == manyAttempts && (st.rate() != 1 || st.failedAfterHeal != 0) {
				t.Errorf("success rate = %.2f, want 1: every call outlasts the window", st.rate())
			}
			if w.attempts == 3 && (st.rate() == 1 || st.rate() == 0) {
				t.Errorf("success rate = %.2f, want some calls caught in the window and some not", st.rate())
			}
			for s := range seen {
				if !strings.HasPrefix(s, "Unavailable/SandboxUnavailableError") {
					t.Errorf("error %s, want Unavailable/SandboxUnavailableError", s)
				}
			}
			recovered(t, e, e.get)
		})
	}

	t.Run("blackhole under a deadline", func(t *testing.T) {
		e := newFaultEnv(t, recoveryPolicy(8))
		e.addToxic(t, "blackhole", "timeout", "upstream", `{"timeout":0}`)
		st, seen := e.load(t, "blackhole, deadline 300ms", 2, 3, 300*time.Millisecond, e.get)
		record(st, seen, t)
		if st.successes != 0 || st.quantile(1) != 1 {
			t.Errorf("successes, max attempts = %d, %d, want 0, 1 (a caller's deadline is not retried)", st.successes, st.quantile(1))
		}
		for s := range seen {
			if !strings.HasPrefix(s, "DeadlineExceeded/SandboxRequestTimeoutError") {
				t.Errorf("error %s, want DeadlineExceeded/SandboxRequestTimeoutError", s)
			}
		}
		e.healAfter(-1, e.removeToxic("blackhole"))
		e.triggerHeal()
		recovered(t, e, e.get)
	})

	// The scenarios below measure the schedule against faults where every attempt reaches
	// the server (or may have) and fails: their clients have no budget, which would rightly
	// refuse most of those retries (overload.md, rule 3; the fault windows above keep it,
	// as their failed attempts never reach the server).
	t.Run("blackhole with a per-attempt timeout", func(t *testing.T) {
		p := recoveryPolicy(10)
		p.PerAttemptTimeout = 60 * time.Millisecond
		e := newFaultEnv(t, p, retry.WithBudget(nil))
		e.addToxic(t, "blackhole", "timeout", "upstream", `{"timeout":0}`)
		st, seen := e.load(t, "blackhole, 60ms/attempt, 400ms", 2, 3, 400*time.Millisecond, e.get)
		record(st, seen, t)
		// 60ms attempts with 5, 10, 20, 40ms waits: attempts 1-4 end by 315ms, the 5th
		// would need 80ms of wait plus itself, so at most 5 attempts fit before 400ms.
		if st.successes != 0 || st.quantile(0) < 2 || st.quantile(1) > 5 {
			t.Errorf("successes, attempts min..max = %d, %d..%d, want 0, >= 2..<= 5", st.successes, st.quantile(0), st.quantile(1))
		}
		e.healAfter(-1, e.removeToxic("blackhole"))
		e.triggerHeal()
		recovered(t, e, e.get)
	})

	t.Run("latency above the deadline", func(t *testing.T) {
		e := newFaultEnv(t, recoveryPolicy(8))
		// Responses come 30s late, long after the deadline: no call can succeed unless its
		// deadline timer fires that late (only a hang). Removing the toxic ends the wait.
		e.addToxic(t, "slow", "latency", "downstream", `{"latency":30000,"jitter":0}`)
		st, seen := e.load(t, "latency 30s, deadline 200ms", 2, 3, 200*time.Millisecond, e.create)
		record(st, seen, t)
		if st.successes != 0 || st.quantile(1) != 1 {
			t.Errorf("successes, max attempts = %d, %d, want 0, 1", st.successes, st.quantile(1))
		}
		e.healAfter(-1, e.removeToxic("slow"))
		e.triggerHeal()
		// The caller retries the creates that timed out, with the same request ids: each id
		// still makes one sandbox.
		e.mu.Lock()
		ids := append([]string(nil), e.createIDs...)
		e.mu.Unlock()
		for _, id := range ids {
			ctx, cancel := context.WithTimeout(context.Background(), hangBound)
			_, err := e.c.sb.CreateSandbox(ctx, &sandboxpb.CreateSandboxRequest{RequestId: id})
			cancel()
			if err != nil {
				t.Errorf("CreateSandbox(%s) after healing: error = %v, want nil", id, err)
			}
		}
		if got := e.srv.Created(); got != len(ids) {
			t.Errorf("server created %d sandboxes for %d request ids, want one each", got, len(ids))
		}
	})

	t.Run("latency with a per-attempt timeout retries creates", func(t *testing.T) {
		p := recoveryPolicy(10)
		p.PerAttemptTimeout = 100 * time.Millisecond
		e := newFaultEnv(t, p, retry.WithBudget(nil))
		// Responses come 30s late, long after each attempt's timeout: no attempt can succeed
		// unless its timer fires that late (only a hang). (At 250ms, a process stalled 150ms
		// on a loaded machine let a response in before the 100ms timer fired.)
		e.addToxic(t, "slow", "latency", "downstream", `{"latency":30000,"jitter":0}`)
		st, seen := e.load(t, "latency 30s, 100ms/attempt", 2, 3, 500*time.Millisecond, e.create)
		record(st, seen, t)
		ids, retried := e.checkCreates(t)
		t.Logf("latency: %d create request ids, %d reached the server more than once, %d sandboxes created", ids, retried, e.srv.Created())
		if st.successes != 0 || retried == 0 {
			t.Errorf("successes, request ids sent more than once = %d, %d, want 0, > 0", st.successes, retried)
		}
		e.healAfter(-1, e.removeToxic("slow"))
		e.triggerHeal()
		recovered(t, e, e.get)
	})

	t.Run("truncated responses", func(t *testing.T) {
		e := newFaultEnv(t, recoveryPolicy(manyAttempts), retry.WithBudget(nil)) // every call outlasts the window
		e.addToxic(t, "cut", "limit_data", "downstream", `{"bytes":8192}`)
		e.healAfter(8, e.removeToxic("cut"))
		st, seen := e.load(t, "limit_data 8 KiB, 64 KiB reads", 2, 10, hangBound, e.read)
		record(st, seen, t)
		if st.rate() != 1 || st.quantile(1) < 2 {
			t.Errorf("success rate, max attempts = %.2f, %d, want 1 (no truncated content ever returned), >= 2", st.rate(), st.quantile(1))
		}
		for s := range seen {
			if !strings.HasPrefix(s, "Unavailable/SandboxUnavailableError") {
				t.Errorf("error %s, want Unavailable/SandboxUnavailableError", s)
			}
		}
		recovered(t, e, e.read)
	})

	t.Logf("transport faults (toxiproxy), per-call deadline as named:%s", table(rows))
}
