package bench

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
)

// overloadConfig sizes one overload run.
type overloadConfig struct {
	capacity float64       // calls per second the server admits
	factor   float64       // offered logical calls as a multiple of capacity
	window   time.Duration // how long new calls arrive
	deadline time.Duration // each logical call's deadline
	callers  int           // most logical calls in flight at once
	hint     time.Duration // RetryInfo on rejections; 0 = none
}

// overloadResult is what one run measured.
type overloadResult struct {
	calls     int64          // logical calls started in the window
	shed      int64          // arrivals not started because callers were all busy
	attempts  int64          // attempts the server received, for those calls
	succeeded int64          // logical calls that succeeded
	inWindow  int64          // of which completed within the window
	failures  map[string]int // failed logical calls by what they returned
}

// overload offers a rate-limited server five times its capacity in logical calls and
// counts what each peer turns them into.
func overload(ctx context.Context, e *env) error {
	peers := peersWhere(func(p Peer) bool { return p.Role != RoleFloor })
	base := overloadConfig{
		capacity: size(e, 100.0, 200.0),
		factor:   5,
		window:   size(e, 300*time.Millisecond, 4*time.Second),
		deadline: size(e, 300*time.Millisecond, 2*time.Second),
		callers:  2000,
	}
	rounds := size(e, 1, 2)
	e.r.para("The server admits %.0f calls/s (a token bucket in its outermost interceptor, burst "+
		"%.0f) and fails the rest with RESOURCE_EXHAUSTED, with or without RetryInfo. Logical calls "+
		"arrive open-loop at %.0fx capacity (%.0f/s, evenly spaced) for %v, each started on its own "+
		"goroutine with a %v deadline, at most %d in flight (N concurrent callers); the run then "+
		"waits for the calls in flight. %d interleaved round(s), a fresh server and connection per "+
		"run. `attempts/call` is attempts the server received over logical calls started; "+
		"`success` is the share of logical calls that succeeded; `goodput` is successful calls "+
		"completed within the arrival window per second of window. Cells are median (min-max) over "+
		"rounds; `vs no-retry` is goodput over the no-retry client's in the same round. A rejection "+
		"costs this server almost nothing, so goodput is capped by capacity for every contender; "+
		"what retries cost is the extra load in `attempts/call` on a server that is already "+
		"saturated (on a real server, rejected attempts take capacity too).",
		base.capacity, burst(base.capacity), base.factor, base.factor*base.capacity, base.window,
		base.deadline, base.callers, rounds)
	met := true
	var verdicts []string
	for _, hint := range []time.Duration{0, 250 * time.Millisecond} {
		cfg := base
		cfg.hint = hint
		results := make([][]overloadResult, len(peers))
		err := interleave(ctx, rounds, len(peers), func(r, i int) error {
			e.log("overload: hint %v, round %d, %s", hint, r+1, peers[i].Name)
			res, err := overloadRun(ctx, peers[i], cfg)
			results[i] = append(results[i], res)
			return err
		})
		if err != nil {
			return err
		}
		// results[i] are in round order: interleave runs every peer once per round.
		goodput := func(i int) samples {
			out := make(samples, len(results[i]))
			for r, res := range results[i] {
				out[r] = float64(res.inWindow) / cfg.window.Seconds()
			}
			return out
		}
		noRetry := goodput(0)
		rows := make([][]string, len(peers))
		for i, p := range peers {
			var amp, succ, shed samples
			vs := make(samples, len(results[i]))
			g := goodput(i)
			failures := map[string]int{}
			for r, res := range results[i] {
				for k, n := range res.failures {
					failures[k] += n
				}
				amp = append(amp, float64(res.attempts)/float64(max(res.calls, 1)))
				succ = append(succ, float64(res.succeeded)/float64(max(res.calls, 1)))
				shed = append(shed, float64(res.shed))
				vs[r] = g[r] / noRetry[r]
			}
			rows[i] = []string{p.Name, amp.span(fixed2), succ.span(percent), g.span(fixed1), vs.span(ratio),
				shed.span(fixed1), describeCounts(failures)}
			if p.Role == RoleOurs {
				ok := amp.median() <= 1.25 && g.median() >= noRetry.median()
				met = met && ok
				verdicts = append(verdicts, fmt.Sprintf("%s: %.2f attempts/call (goal <= 1.25: %s), goodput %.1f/s vs no-retry %.1f/s (%s)",
					hintName(hint), amp.median(), metOrMissed(amp.median() <= 1.25), g.median(), noRetry.median(),
					metOrMissed(g.median() >= noRetry.median())))
			}
		}
		e.r.heading(3, "Rejections "+hintName(hint))
		e.r.table([]string{"contender", "attempts/call", "success", "goodput (calls/s)", "vs no-retry", "not sent (all callers busy)", "failed calls returned (all rounds)"}, rows)
	}
	e.r.goal(met, e.short, "faultline with its budget makes <= 1.25 attempts per call at 5x overload, "+
		"with goodput >= the no-retry client's. "+joinSemi(verdicts))
	return nil
}

func hintName(hint time.Duration) string {
	if hint == 0 {
		return "without RetryInfo"
	}
	return fmt.Sprintf("with RetryInfo %v", hint)
}

func burst(capacity float64) float64 { return max(1, capacity/20) }

// overloadRun runs one peer against a fresh rate-limited server.
func overloadRun(ctx context.Context, p Peer, cfg overloadConfig) (overloadResult, error) {
	var res overloadResult
	srv, cs, done, err := setUp(ctx, []Peer{p})
	if err != nil {
		return res, err
	}
	defer done()
	reject := rejection(cfg.hint)
	tb := &tokenBucket{rate: cfg.capacity, burst: burst(cfg.capacity), tokens: burst(cfg.capacity), last: time.Now()}
	srv.setGate(func(now time.Time) *status.Status {
		if tb.take(now) {
			return nil
		}
		return reject
	})
	srv.attempts.Store(0)

	api, req := cs[0].api, &sandboxpb.GetSandboxRequest{SandboxId: sandboxID}
	res.failures = map[string]int{}
	var (
		wg                  sync.WaitGroup
		mu                  sync.Mutex // guards res.failures
		succeeded, inWindow atomic.Int64
		busy                = make(chan struct{}, cfg.callers)
		period              = time.Duration(float64(time.Second) / (cfg.capacity * cfg.factor))
		start               = time.Now()
		end                 = start.Add(cfg.window)
	)
	for k := 0; ; k++ {
		at := start.Add(time.Duration(k) * period)
		if !at.Before(end) || ctx.Err() != nil {
			break
		}
		if d := time.Until(at); d > 0 {
			time.Sleep(d) // bounded by period; the loop is bounded by the window
		}
		select {
		case busy <- struct{}{}:
		default:
			res.shed++
			continue
		}
		res.calls++
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-busy }()
			cctx, cancel := context.WithTimeout(ctx, cfg.deadline)
			defer cancel()
			_, err := api.GetSandbox(cctx, req)
			if err != nil {
				mu.Lock()
				res.failures[codeLabel(err)]++
				mu.Unlock()
				return
			}
			succeeded.Add(1)
			if time.Now().Before(end) {
				inWindow.Add(1)
			}
		}()
	}
	wg.Wait() // every call ends by its deadline
	res.attempts = srv.attempts.Load()
	res.succeeded, res.inWindow = succeeded.Load(), inWindow.Load()
	return res, ctx.Err()
}

// rejection is the overloaded server's answer, with RetryInfo when hint > 0.
func rejection(hint time.Duration) *status.Status {
	if hint <= 0 {
		return faultlinetest.Status(codes.ResourceExhausted, "over capacity")
	}
	return faultlinetest.Status(codes.ResourceExhausted, "over capacity", faultlinetest.RetryInfo(hint))
}

// tokenBucket admits rate calls per second with bursts of up to burst calls.
type tokenBucket struct {
	mu                  sync.Mutex
	rate, burst, tokens float64
	last                time.Time
}

func (b *tokenBucket) take(now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if now.After(b.last) {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
