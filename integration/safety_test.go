package integration_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/faultline-go/faultline/internal/sandboxpb"
)

const mExecUnary = sandboxpb.SandboxService_Exec_FullMethodName

// callIDKey is the metadata that ties each attempt the server saw to the logical call.
const callIDKey = "x-test-call"

// TestNoRepeatUnderResets runs 50 CreateSandbox calls without a request id, then 50 unary
// Exec calls, over real TCP while toxiproxy resets the connection on and off, so that
// responses are lost after the server did the work. Every attempt of one create carries
// the one request id generated for it, so no call creates two sandboxes; no Exec is ever
// sent twice, so no command runs twice.
func TestNoRepeatUnderResets(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		call   func(ctx context.Context, e *faultEnv) error
	}{
		{name: "CreateSandbox without request id", method: mCreate, call: func(ctx context.Context, e *faultEnv) error {
			_, err := e.c.sb.CreateSandbox(ctx, &sandboxpb.CreateSandboxRequest{})
			return err
		}},
		{name: "Exec", method: mExecUnary, call: func(ctx context.Context, e *faultEnv) error {
			// Exec is never retried, so a call made while the connection is down would fail
			// at once; waiting for it to be ready makes every failure one in flight.
			_, err := e.c.sb.Exec(ctx, &sandboxpb.ExecRequest{SandboxId: "sb-1", Command: []string{"echo", "once"}},
				grpc.WaitForReady(true))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newFaultEnv(t, recoveryPolicy(8))
			e.srv.Reset()
			// Every request takes 10ms to reach the server, so resets land on calls in flight.
			e.addToxic(t, "slow", "latency", "upstream", `{"latency":10,"jitter":0}`)
			stop := flapResets(t, e, 7*time.Millisecond, 10*time.Second)
			const calls = 50
			var mu sync.Mutex
			succeeded := 0
			var wg sync.WaitGroup
			for w := range 5 {
				wg.Go(func() {
					for i := range calls / 5 {
						ctx, cancel := context.WithTimeout(context.Background(), hangBound)
						ctx = metadata.AppendToOutgoingContext(ctx, callIDKey, fmt.Sprintf("%d-%d", w, i))
						err := tc.call(ctx, e)
						cancel()
						if err == nil {
							mu.Lock()
							succeeded++
							mu.Unlock()
						}
					}
				})
			}
			wg.Wait()
			resets := stop()

			attempts := map[string]int{}
			ids := map[string]map[string]bool{} // call -> request ids its attempts carried
			reqs, mds := e.srv.Requests(tc.method), e.srv.Metadata(tc.method)
			if len(reqs) != len(mds) {
				t.Fatalf("server recorded %d requests and %d metadata", len(reqs), len(mds))
			}
			for i, md := range mds {
				call := md.Get(callIDKey)[0]
				attempts[call]++
				if r, ok := reqs[i].(*sandboxpb.CreateSandboxRequest); ok {
					if ids[call] == nil {
						ids[call] = map[string]bool{}
					}
					ids[call][r.GetRequestId()] = true
				}
			}
			retried := 0
			for call, n := range attempts {
				if n > 1 {
					retried++
				}
				if tc.method == mExecUnary && n > 1 {
					t.Errorf("call %s: Exec sent %d times, want at most once", call, n)
				}
				if set := ids[call]; tc.method == mCreate && (len(set) != 1 || set[""]) {
					t.Errorf("call %s: request ids %v, want one generated id on every attempt", call, set)
				}
			}
			switch tc.method {
			case mCreate:
				created := e.srv.SandboxesCreated()
				t.Logf("%d creates under %d resets: %d succeeded, %d retried, %d sandboxes created, %d server attempts",
					calls, resets, succeeded, retried, created, len(reqs))
				if created < succeeded || created > len(ids) {
					t.Errorf("sandboxes created = %d, want between the %d successful calls and the %d calls that reached the server",
						created, succeeded, len(ids))
				}
			case mExecUnary:
				runs := e.srv.ExecRuns()
				t.Logf("%d execs under %d resets: %d succeeded, %d commands run, %d server attempts",
					calls, resets, succeeded, runs, len(reqs))
				if runs > len(attempts) || runs < succeeded {
					t.Errorf("commands run = %d, want between the %d successful calls and the %d calls that reached the server",
						runs, succeeded, len(attempts))
				}
			}
			if succeeded == 0 || resets == 0 {
				t.Errorf("%d calls succeeded under %d resets: the scenario did not exercise both", succeeded, resets)
			}
		})
	}
}

// flapResets turns toxiproxy's reset_peer toxic (downstream: responses are lost after the
// server handled the request) on for one period in four, until the returned stop is called
// or limit passes. stop returns how many times the toxic was turned on.
func flapResets(t *testing.T, e *faultEnv, period, limit time.Duration) (stop func() int) {
	t.Helper()
	done := make(chan struct{})
	var n int
	var wg sync.WaitGroup
	wg.Go(func() {
		deadline := time.After(limit)
		tick := time.NewTicker(period)
		defer tick.Stop()
		on, ticks := false, 0
		for {
			select {
			case <-done:
			case <-deadline:
			case <-tick.C:
				// On for one period in four: most calls get through, many are cut.
				switch ticks++; {
				case on:
					healReset(t, e)
					on = false
				case ticks%4 == 0:
					injectReset(t, e)
					on = true
					n++
				}
				continue
			}
			if on {
				healReset(t, e)
			}
			return
		}
	})
	return func() int {
		close(done)
		wg.Wait()
		return n
	}
}
