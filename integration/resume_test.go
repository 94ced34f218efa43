package integration_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"

	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

// TestResumeFollowStreams tails 20 logs of 10,000 lines at once over real TCP, through
// toxiproxy, while the connection is reset several times and the proxy is down for a
// window: every stream delivers every line exactly once, in order, by resuming from its
// cursor. It reports the resumes per stream and the longest gap between two lines.
func TestResumeFollowStreams(t *testing.T) {
	const streams, logLines = 20, 10000
	var ids []string
	for i := range streams {
		ids = append(ids, fmt.Sprintf("sb-%d", i))
	}
	// The server writes a line every 250µs: a tail lasts at least 2.5 s, long enough for the
	// faults below to land in the middle of every stream.
	srv, upstream := startServer(t, sandboxtest.WithSandboxes(ids...), sandboxtest.WithLog(logLines, 250*time.Microsecond))
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
	c := dial(t, proxy.Listen, []interceptor.Option{interceptor.WithBudget(nil),
		interceptor.WithPolicy(recoveryPolicy(12)), interceptor.WithHooks(hooks)})

	type result struct {
		lines   []uint64
		resumed int
		maxGap  time.Duration
		err     error
	}
	results := make([]result, streams)
	var wg sync.WaitGroup
	for i := range streams {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			ctx, attempts := track(ctx) // counts this stream's resumes
			defer func() { results[i].resumed = attempts() - 1 }()
			st, err := c.sb.StreamLogs(ctx, &sandboxpb.StreamLogsRequest{SandboxId: ids[i], Follow: true})
			if err != nil {
				results[i].err = err
				return
			}
			last := time.Now()
			for {
				m, err := st.Recv()
				if err == io.EOF {
					return
				}
				if err != nil {
					results[i].err = err
					return
				}
				now := time.Now()
				results[i].maxGap = max(results[i].maxGap, now.Sub(last))
				last = now
				results[i].lines = append(results[i].lines, m.GetNextLogOffset()-1)
			}
		})
	}

	// Faults: three connection resets, then the proxy down for 300 ms, then two resets.
	faults := []func(){}
	for range 3 {
		faults = append(faults, func() { injectReset(t, e); time.Sleep(20 * time.Millisecond); healReset(t, e) })
	}
	faults = append(faults, func() { injectDisabled(t, e); time.Sleep(300 * time.Millisecond); healDisabled(t, e) })
	for range 2 {
		faults = append(faults, func() { injectReset(t, e); time.Sleep(20 * time.Millisecond); healReset(t, e) })
	}
	for _, f := range faults {
		time.Sleep(300 * time.Millisecond)
		f()
	}
	wg.Wait()

	calls := srv.Calls(sandboxpb.SandboxService_StreamLogs_FullMethodName)
	opened := map[string]int{} // streams the server opened, per sandbox
	for _, m := range srv.Requests(sandboxpb.SandboxService_StreamLogs_FullMethodName) {
		opened[m.(*sandboxpb.StreamLogsRequest).GetSandboxId()]++
	}
	var longest time.Duration
	perStream := make([]int, streams)
	tries := make([]int, streams)
	total := 0
	for i, r := range results {
		want := make([]uint64, logLines)
		for j := range want {
			want[j] = uint64(j)
		}
		if r.err != nil {
			t.Errorf("stream %d: ended with %v after %d lines", i, r.err, len(r.lines))
		}
		if !slices.Equal(r.lines, want) {
			t.Errorf("stream %d: %d lines, not every line once in order (first %v, last %v)",
				i, len(r.lines), r.lines[:min(3, len(r.lines))], r.lines[max(0, len(r.lines)-3):])
		}
		longest = max(longest, r.maxGap)
		perStream[i] = opened[ids[i]] - 1
		tries[i] = r.resumed
		total += perStream[i]
	}
	t.Logf("%d follow streams x %d lines under 5 resets and a 300 ms outage: %d server calls; resumes per stream %v (%d in all); "+
		"resume attempts per stream, outage included, %v; longest gap between two lines %v",
		streams, logLines, calls, perStream, total, tries, longest.Round(time.Millisecond))
	if total < streams {
		t.Errorf("%d resumes for %d streams: the faults did not land mid-stream", total, streams)
	}
}
