package integration_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

// TestResumeFollowStreams follows 20 logs at once over real TCP, through toxiproxy, while
// the connection is reset five times and the proxy is down once: every stream delivers
// every line exactly once, in order, by resuming from its cursor.
//
// Nothing in it depends on the machine's speed. The logs grow in steps (the server's
// growing log): the test appends lines and waits until every stream has all of them; then,
// for each fault, it injects the fault, appends the next lines, waits until every stream has
// failed on it (its retry hooks ran; twice for the outage), heals it, and waits again until
// every stream has every line. So every fault lands in the middle of every stream, and each
// wait bounds a hang (hangBound) instead of guessing how long a step takes. (It used to pace
// the server by the clock and inject faults on a timer: on a loaded machine the streams ran
// out of their 60 s deadline with 70-97% of their lines.)
func TestResumeFollowStreams(t *testing.T) {
	const streams, steps, perStep = 20, 7, 300
	var ids []string
	for i := range streams {
		ids = append(ids, fmt.Sprintf("sb-%d", i))
	}
	srv, upstream := startServer(t, sandboxtest.WithSandboxes(ids...), sandboxtest.WithGrowingLog())
	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	proxy := toxiproxy.NewProxy(api, "logs", "127.0.0.1:0", upstream)
	if err := proxy.Start(); err != nil {
		t.Fatalf("proxy.Start() error = %v", err)
	}
	t.Cleanup(proxy.Stop)
	e := &faultEnv{srv: srv, proxy: proxy}

	hooks := retry.Hooks{OnRetry: func(ctx context.Context, ev retry.RetryEvent) {
		if c, ok := ctx.Value(counterKey{}).(*callCounter); ok && ev.Resumed {
			c.mu.Lock()
			c.retries++
			c.mu.Unlock()
		}
	}}
	// Up to 100 attempts per burst of failures (about 8 s of waits): a stream gives up only
	// if a healed fault stays broken that long.
	c := dial(t, proxy.Listen, []interceptor.Option{interceptor.WithRetrier(retry.MustNew(recoveryPolicy(manyAttempts), retry.WithBudget(nil), retry.WithHooks(hooks)))})

	type result struct {
		delivered atomic.Int64
		attempts  func() int // 1 + the resumes the hooks saw
		lines     []uint64
		err       error
	}
	results := make([]*result, streams)
	ctx, cancel := context.WithTimeout(context.Background(), 2*hangBound)
	defer cancel()
	var wg sync.WaitGroup
	for i := range streams {
		r := &result{}
		results[i] = r
		var sctx context.Context
		sctx, r.attempts = track(ctx)
		wg.Go(func() {
			st, err := c.sb.StreamLogs(sctx, &sandboxpb.StreamLogsRequest{SandboxId: ids[i], Follow: true})
			if err != nil {
				r.err = err
				return
			}
			for {
				m, err := st.Recv()
				if err == io.EOF {
					return
				}
				if err != nil {
					r.err = err
					return
				}
				r.lines = append(r.lines, m.GetNextLogOffset()-1)
				r.delivered.Add(1)
			}
		})
	}
	stop := func(format string, args ...any) {
		t.Helper()
		cancel()
		srv.EndLog()
		wg.Wait()
		t.Fatalf(format, args...)
	}

	// failed waits until every stream has retried at least n times since before.
	failed := func(before []int, n int) bool {
		return waitUntil(func() bool {
			for i, r := range results {
				if r.attempts() < before[i]+n {
					return false
				}
			}
			return true
		})
	}
	attempts := func() []int {
		out := make([]int, streams)
		for i, r := range results {
			out[i] = r.attempts()
		}
		return out
	}
	// A fault is injected, then lines are appended: the reset toxic resets a connection when
	// data next flows on it, and the proxy, stopped, closes its connections. Once every
	// stream has failed on it, the fault heals, and every stream must then get every line.
	// (A stream that failed schedules one retry, then waits for the connection rather than
	// failing again on it: overload.md, rule 2.)
	type fault struct {
		name           string
		inject, heal   func(*testing.T, *faultEnv)
		failuresNeeded int // retries every stream must have made before the fault heals
	}
	resetFault := fault{"reset", injectReset, healReset, 1}
	faults := []fault{resetFault, resetFault, resetFault, {"outage", injectDisabled, healDisabled, 1}, resetFault, resetFault}

	total := 0
	for step := range steps {
		var f *fault
		var before []int
		if step > 0 {
			f, before = &faults[step-1], attempts()
			f.inject(t, e)
		}
		total = srv.AppendLog(perStep)
		if f != nil {
			if !failed(before, f.failuresNeeded) {
				stop("step %d, %s: streams had not all failed %d times after %v (attempts %v, before %v)",
					step, f.name, f.failuresNeeded, hangBound, attempts(), before)
			}
			f.heal(t, e)
		}
		if !waitUntil(func() bool {
			for _, r := range results {
				if r.delivered.Load() < int64(total) {
					return false
				}
			}
			return true
		}) {
			got := make([]int64, streams)
			for i, r := range results {
				got[i] = r.delivered.Load()
			}
			stop("step %d: lines delivered per stream %v after %v, want %d each", step, got, hangBound, total)
		}
	}
	srv.EndLog()
	wg.Wait()

	opened := map[string]int{} // streams the server opened, per sandbox
	for _, m := range srv.Requests(sandboxpb.SandboxService_StreamLogs_FullMethodName) {
		opened[m.(*sandboxpb.StreamLogsRequest).GetSandboxId()]++
	}
	want := make([]uint64, total)
	for j := range want {
		want[j] = uint64(j)
	}
	resumes := make([]int, streams)
	tries := make([]int, streams)
	for i, r := range results {
		if r.err != nil {
			t.Errorf("stream %d: ended with %v after %d lines", i, r.err, len(r.lines))
		}
		if !slices.Equal(r.lines, want) {
			t.Errorf("stream %d: %d lines, not every line once in order (first %v, last %v)",
				i, len(r.lines), r.lines[:min(3, len(r.lines))], r.lines[max(0, len(r.lines)-3):])
		}
		resumes[i], tries[i] = opened[ids[i]]-1, r.attempts()-1
		if resumes[i] < len(faults) {
			t.Errorf("stream %d: resumed %d times, want at least once per fault (%d)", i, resumes[i], len(faults))
		}
	}
	t.Logf("%d follow streams x %d lines under 5 resets and an outage: resumes per stream %v; resume attempts per stream %v",
		streams, total, resumes, tries)
}
