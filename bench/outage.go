package bench

import (
	"context"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
)

// outageConfig sizes one outage run.
type outageConfig struct {
	outage   time.Duration // how long the server answers UNAVAILABLE
	deadline time.Duration // each logical call's deadline
	pause    time.Duration // what a caller waits before re-issuing a failed logical call
	callers  int
	giveUp   time.Duration // a caller stops trying this long after the outage started
}

// outageResult is what one run measured, per caller.
type outageResult struct {
	recovery samples // from the end of the outage to the caller's first success
	calls    samples // logical calls until then
	attempts float64 // attempts the server received, over callers
	failed   int     // callers that gave up without a success
}

// outage makes the server fail everything for a while, then recover, and measures how
// long each peer's callers take to notice and what they spend meanwhile.
func outage(ctx context.Context, e *env) error {
	peers := peersWhere(func(p Peer) bool { return p.Role == RolePlain || p.Role == RoleOurs || p.Role == RolePeer })
	cfg := outageConfig{
		outage:   size(e, 300*time.Millisecond, 2*time.Second),
		deadline: size(e, 2*time.Second, 10*time.Second),
		pause:    100 * time.Millisecond,
		callers:  4,
		giveUp:   size(e, 3*time.Second, 15*time.Second),
	}
	rounds := size(e, 1, 3)
	e.r.para("The server answers every attempt with UNAVAILABLE (no RetryInfo) for %v, then "+
		"serves normally. %d callers per contender start together (staggered by 25 ms) with "+
		"logical calls of %v deadline; a caller whose call fails waits %v and calls again, until "+
		"its first success (or %v after the outage began). %d interleaved round(s), a fresh "+
		"server per run. `recovery` is from the end of the outage to each caller's first "+
		"success, median (min-max) over callers and rounds; `attempts/caller` is the server's "+
		"count over callers (what the outage cost the server).",
		cfg.outage, cfg.callers, cfg.deadline, cfg.pause, cfg.giveUp, rounds)
	results := make([][]outageResult, len(peers))
	err := interleave(ctx, rounds, len(peers), func(r, i int) error {
		e.log("outage: round %d, %s", r+1, peers[i].Name)
		res, err := outageRun(ctx, peers[i], cfg)
		results[i] = append(results[i], res)
		return err
	})
	if err != nil {
		return err
	}
	rows := make([][]string, len(peers))
	for i, p := range peers {
		var rec, calls, attempts samples
		failed := 0
		for _, res := range results[i] {
			rec = append(rec, res.recovery...)
			calls = append(calls, res.calls...)
			attempts = append(attempts, res.attempts)
			failed += res.failed
		}
		rows[i] = []string{p.Name, rec.span(millis), calls.span(fixed1), attempts.span(fixed1), strconv.Itoa(failed)}
	}
	e.r.table([]string{"contender", "recovery to first success", "logical calls/caller", "attempts/caller", "callers without success"}, rows)
	return nil
}

// outageRun runs one peer's callers against a fresh server that is down for cfg.outage.
func outageRun(ctx context.Context, p Peer, cfg outageConfig) (outageResult, error) {
	var res outageResult
	srv, cs, done, err := setUp(ctx, []Peer{p})
	if err != nil {
		return res, err
	}
	defer done()
	down := faultlinetest.Status(codes.Unavailable, "backend is restarting")
	start := time.Now()
	up := start.Add(cfg.outage)
	srv.setGate(func(now time.Time) *status.Status {
		if now.Before(up) {
			return down
		}
		return nil
	})
	srv.attempts.Store(0)

	api, req := cs[0].api, &sandboxpb.GetSandboxRequest{SandboxId: sandboxID}
	var (
		wg sync.WaitGroup
		mu sync.Mutex
	)
	for k := range cfg.callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(k) * 25 * time.Millisecond)
			calls := 0
			for time.Since(start) < cfg.giveUp && ctx.Err() == nil {
				calls++
				cctx, cancel := context.WithTimeout(ctx, cfg.deadline)
				_, err := api.GetSandbox(cctx, req)
				cancel()
				if err == nil {
					mu.Lock()
					res.recovery = append(res.recovery, float64(time.Since(up)))
					res.calls = append(res.calls, float64(calls))
					mu.Unlock()
					return
				}
				time.Sleep(cfg.pause)
			}
			mu.Lock()
			res.failed++
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.attempts = float64(srv.attempts.Load()) / float64(cfg.callers)
	return res, ctx.Err()
}
