package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/faultline-go/faultline/bench"
)

// TestVirtualFigures is how go run ./bench/cmd/compare runs the virtual-time scenarios (see
// the package doc): in a child go test whose environment names the scenario and the file
// to write the figures to. In an ordinary go test it skips.
func TestVirtualFigures(t *testing.T) { bench.MeasureForCompare(t) }

// logFleet logs a fleet run's figures unrounded, so that their spread over runs (go test
// -count) can be read from the log, and how close a target is.
func logFleet(t *testing.T, f bench.FleetFigures) {
	t.Helper()
	t.Logf("figures: %s, N=%d, %gx, resets %v: %d attempts / %d calls = %.4f attempts/call; goodput %.2f/s; %d succeeded; "+
		"recovery %v (recovered %v); %d connections accepted, %d reset; failures %v",
		f.Contender, f.Clients, f.Factor, f.Reset, f.Attempts, f.Calls, f.AttemptsPerCall(), f.Goodput, f.Succeeded,
		f.Recovery, f.Recovered, f.Connections, f.Resets, f.Failures)
}

// fullEnv makes TestFleetTargets run the full matrix instead of its two cells.
const fullEnv = "FAULTLINE_OVERLOAD_FULL"

// assertChecks logs every check, and fails t for each one missed: the log of a passing
// run keeps the figures, so that their spread over runs can be read from go test -v.
func assertChecks(t *testing.T, checks []bench.Check) {
	t.Helper()
	if len(checks) == 0 {
		t.Fatal("no check applied: no run of faultline's defaults was measured")
	}
	for _, c := range checks {
		if c.Met {
			t.Logf("%s", c)
		} else {
			t.Errorf("%s", c)
		}
	}
}

// contender returns the contender of kind k.
func contender(t *testing.T, k bench.Kind) bench.Contender {
	t.Helper()
	i := slices.IndexFunc(bench.Contenders(), func(c bench.Contender) bool { return c.Kind == k })
	if i < 0 {
		t.Fatalf("bench.Contenders() has no contender of kind %d", k)
	}
	return bench.Contenders()[i]
}

// measure runs bench.Measure and fails t on its error.
func measure(t *testing.T, scenario string) bench.Figures {
	t.Helper()
	figs, err := bench.Measure(t, scenario, true, t.Logf)
	if err != nil {
		t.Fatalf("Measure(%s, short) = %v", scenario, err)
	}
	return figs
}

// render writes figs through bench.Run, in short mode, as compare does, and returns the
// report.
func render(t *testing.T, scenario string, figs bench.Figures) string {
	t.Helper()
	var out bytes.Buffer
	cfg := bench.Config{Short: true, Scenarios: []string{scenario},
		Measure: func(_ context.Context, name string, short bool) (bench.Figures, error) {
			if name != scenario || !short {
				t.Errorf("Run asked Measure for (%s, short %v), want (%s, short true)", name, short, scenario)
			}
			return figs, nil
		}}
	if err := bench.Run(context.Background(), &out, cfg); err != nil {
		t.Fatalf("Run(short, %s) = %v; report so far:\n%s", scenario, err, out.String())
	}
	return out.String()
}

// mustContain fails t for each of want that report lacks.
func mustContain(t *testing.T, report string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(report, w) {
			t.Errorf("report lacks %q; report:\n%s", w, report)
		}
	}
}

// TestFleetHarness checks the fleet scenario's harness on its short configuration (10
// clients, 5x, phases of 1 s), for every contender: the client that never retries makes
// exactly one attempt per call and gets about the capacity the model leaves it; the
// faultline client without a budget retries; no arrival is dropped for lack of room;
// and the report shows every contender.
func TestFleetHarness(t *testing.T) {
	figs := measure(t, bench.ScenarioFleet)
	if got, want := len(figs.Fleet), len(bench.Contenders()); got != want {
		t.Fatalf("Measure(fleet, short) made %d runs, want %d (one per contender)", got, want)
	}
	for _, f := range figs.Fleet {
		if f.NotSent != 0 {
			t.Errorf("%s: %d arrivals not sent, want 0", f.Contender, f.NotSent)
		}
		if f.Calls != 500 {
			t.Errorf("%s: %d calls started in the overload, want 500 (1 s at 5x capacity)", f.Contender, f.Calls)
		}
		switch f.Kind {
		case bench.KindNoRetry:
			if f.Attempts != f.Calls || f.BaseAttempts != 1 {
				t.Errorf("no retries: %d attempts for %d calls (%.2f before the overload), want one attempt per call",
					f.Attempts, f.Calls, f.BaseAttempts)
			}
			// One unit per admitted call, 0.02 per rejection: a + 0.02 (500 - a) = 100
			// gives a = 92; the first second's full bucket adds up to 5.
			if f.Goodput < 85 || f.Goodput > 100 {
				t.Errorf("no retries: goodput %.1f/s, want about 92/s (capacity 100/s less what 408 rejections cost)", f.Goodput)
			}
		case bench.KindNoBudget:
			if f.AttemptsPerCall() <= 1.5 {
				t.Errorf("faultline, no budget: %.2f attempts/call at 5x, want > 1.5 (it retries every rejection)", f.AttemptsPerCall())
			}
		}
		if f.BaseAttempts != 1 {
			t.Errorf("%s: %.2f attempts/call before the overload, want 1 (the server had room for every call)", f.Contender, f.BaseAttempts)
		}
	}
	report := render(t, bench.ScenarioFleet, figs)
	mustContain(t, report, "## 7. Fleet under overload (virtual time)", "### 5x capacity (500 calls/s) for 1s",
		"Goal (not checked in -short mode)")
	for _, c := range bench.Contenders() {
		mustContain(t, report, "| "+c.Name+" | 10 |")
	}
}

// TestRestartHarness checks the restart scenario's harness with the client that never
// retries and faultline's defaults (the other contenders run in compare; a run costs
// seconds under -race): every poller makes its 79 polls and 1 cleanup; the client that
// never retries sees the restart (polls fail while the server is away and while grpc-go
// waits to redial, and the cleanups, made when the server is back, find the connection
// still down); and the report shows both.
func TestRestartHarness(t *testing.T) {
	var figs bench.Figures
	for _, k := range []bench.Kind{bench.KindNoRetry, bench.KindDefault} {
		figs.Restart = append(figs.Restart, bench.Restart(t, contender(t, k)))
	}
	figs.Short = true
	for _, f := range figs.Restart {
		if f.Polls != 7900 || f.Cleanups != 100 {
			t.Errorf("%s: %d polls and %d cleanups, want 7900 (79 ticks of 100 pollers) and 100", f.Contender, f.Polls, f.Cleanups)
		}
		if f.Kind != bench.KindNoRetry {
			continue
		}
		// The server is away for 0.5 s; grpc-go redials 1 s (+-20%) after the refused dial.
		if f.FailedPolls < 500 || f.FailedPolls > 1300 {
			t.Errorf("no retries: %d failed polls, want 500..1300 (the polls of the 0.8..1.2 s the connection is down)", f.FailedPolls)
		}
		if f.RefusedCleanups == 0 {
			t.Errorf("no retries: no cleanup failed; want the cleanups made at t = 2.5 s to find the connection down")
		}
	}
	report := render(t, bench.ScenarioRestart, figs)
	mustContain(t, report, "## 8. Server restart (virtual time)", "Goal (not checked in -short mode)")
	for _, f := range figs.Restart {
		mustContain(t, report, "| "+f.Contender+" | 7900 |")
	}
}

// TestTailsHarness checks the tails scenario's harness, for every contender: the resets
// happen and close the connection; a stream that is never resumed ends at the first
// reset with the lines it had, each once; a client that resumes without a budget
// completes every stream with every line once, so the accounting can show success; and
// the report shows every contender.
func TestTailsHarness(t *testing.T) {
	figs := measure(t, bench.ScenarioTails)
	if got, want := len(figs.Tails), len(bench.Contenders()); got != want {
		t.Fatalf("Measure(tails) made %d runs, want %d", got, want)
	}
	for _, f := range figs.Tails {
		if f.Resets != 4 || f.Killed == 0 {
			t.Errorf("%s: %d resets closed %d connections, want 4 resets closing at least one", f.Contender, f.Resets, f.Killed)
		}
		if f.Duplicates != 0 || f.Gaps != 0 || f.Delivered+f.Missing != f.Expected {
			t.Errorf("%s: %d delivered, %d duplicates, %d gaps, %d missing of %d; want no duplicate or gap",
				f.Contender, f.Delivered, f.Duplicates, f.Gaps, f.Missing, f.Expected)
		}
		switch f.Kind {
		case bench.KindNoRetry:
			// The first reset is at 0.5 s; lines come every 50 ms from t = 0 (+1 ms per stream).
			if f.Complete != 0 || f.Resumes != 0 || f.Delivered < 50*8 || f.Delivered > 50*11 {
				t.Errorf("no retries: %d complete, %d resumes, %d lines; want 0, 0 and 8..11 lines a stream", f.Complete, f.Resumes, f.Delivered)
			}
		case bench.KindNoBudget:
			if f.Complete != f.Streams || f.Resumes < f.Streams*f.Resets {
				t.Errorf("faultline, no budget: %d of %d complete after %d resumes; want all, after at least %d",
					f.Complete, f.Streams, f.Resumes, f.Streams*f.Resets)
			}
		}
	}
	report := render(t, bench.ScenarioTails, figs)
	mustContain(t, report, "## 9. Log tails resumed across resets (virtual time)", "Goal (not checked in -short mode)")
	for _, c := range bench.Contenders() {
		mustContain(t, report, "| "+c.Name+" | ")
	}
}

// TestProxyHarness checks the proxy scenario's harness on its short configuration (10
// clients, 5x, phases of 1 s, the server resetting connections), for every contender: the
// mechanism is real for the client that never retries (every call's one attempt reached
// the server; the server reset connections, one per attempt it turned away at most, and
// the clients reconnected; the calls that failed saw UNAVAILABLE, not a status the server
// wrote); the faultline client without a budget retries those resets; and the report shows
// every contender.
func TestProxyHarness(t *testing.T) {
	figs := measure(t, bench.ScenarioProxy)
	if got, want := len(figs.Proxy), len(bench.Contenders()); got != want {
		t.Fatalf("Measure(proxy, short) made %d runs, want %d (one per contender)", got, want)
	}
	for _, f := range figs.Proxy {
		if !f.Reset || f.Factor != bench.ProxyFactor || f.Calls != 500 || f.NotSent != 0 {
			t.Errorf("%s: reset %v, %gx, %d calls in the overload, %d not sent; want reset, %gx, 500 (1 s at 5x capacity), 0",
				f.Contender, f.Reset, f.Factor, f.Calls, f.NotSent, bench.ProxyFactor)
		}
		// A client replaces a reset connection when it calls again: every reset but
		// perhaps each client's last is followed by a new connection.
		if f.Resets == 0 || f.Connections <= f.Clients || f.Connections < f.Resets {
			t.Errorf("%s: %d connections reset, %d accepted for %d clients; want resets, and the clients reconnecting after them",
				f.Contender, f.Resets, f.Connections, f.Clients)
		}
		if f.BaseAttempts != 1 {
			t.Errorf("%s: %.2f attempts/call before the overload, want 1 (the server had room for every call)", f.Contender, f.BaseAttempts)
		}
		if f.Kind != bench.KindNoRetry {
			continue
		}
		if f.Attempts != f.Calls {
			t.Errorf("no retries: the server read %d attempts of %d calls, want one each: every attempt reached the server before a reset",
				f.Attempts, f.Calls)
		}
		if f.Resets > f.Attempts {
			t.Errorf("no retries: %d connections reset for %d attempts read; want at most one reset per attempt turned away", f.Resets, f.Attempts)
		}
		failed := 0
		for label, n := range f.Failures {
			failed += n
			if !strings.HasPrefix(label, "Unavailable: ") {
				t.Errorf("no retries: %d calls failed with %q, want only UNAVAILABLE (the connection ended; the server wrote no status)", n, label)
			}
		}
		if failed == 0 || f.Succeeded == 0 {
			t.Errorf("no retries: %d calls failed and %d succeeded in the overload, want both", failed, f.Succeeded)
		}
	}
	for _, f := range figs.Proxy {
		if f.Kind == bench.KindNoBudget && f.AttemptsPerCall() <= 1.5 {
			t.Errorf("faultline, no budget: %.2f attempts/call at 5x with resets, want > 1.5 (it retries every reset)", f.AttemptsPerCall())
		}
	}
	report := render(t, bench.ScenarioProxy, figs)
	mustContain(t, report, "## 10. Fleet behind a proxy that resets connections (virtual time)", "Goal (not checked in -short mode)",
		"| connections reset | connections accepted |")
	for _, c := range bench.Contenders() {
		mustContain(t, report, "| "+c.Name+" | 10 |")
	}
}

// TestMeasureForCompare runs the child's side of compare in this process: with the
// environment compare sets, it writes the figures of the scenario named as JSON.
func TestMeasureForCompare(t *testing.T) {
	path := filepath.Join(t.TempDir(), "figures.json")
	t.Setenv("FAULTLINE_BENCH_FIGURES", path)
	t.Setenv("FAULTLINE_BENCH_SCENARIO", bench.ScenarioTails)
	t.Setenv("FAULTLINE_BENCH_SHORT", "1")
	bench.MeasureForCompare(t)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var figs bench.Figures
	if err := json.Unmarshal(b, &figs); err != nil {
		t.Fatalf("figures file: %v\n%s", err, b)
	}
	if !figs.Short || len(figs.Tails) != len(bench.Contenders()) || len(figs.Fleet)+len(figs.Restart) != 0 {
		t.Errorf("figures = short %v, %d fleet, %d restart, %d tails runs; want short, only tails, one per contender",
			figs.Short, len(figs.Fleet), len(figs.Restart), len(figs.Tails))
	}
}

func TestMeasureUnknownScenario(t *testing.T) {
	if _, err := bench.Measure(t, "success", true, nil); err == nil || !strings.Contains(err.Error(), `"success"`) {
		t.Errorf(`Measure("success") = %v, want an error naming "success" (a wall-clock scenario)`, err)
	}
}

// TestFleetTargets asserts overload.md's fleet targets: for faultline's defaults, attempts
// per call <= 1.25 at 5x and 10x, goodput >= 0.95 x the no-retry client's, recovery <=
// 300 ms; with adaptive throttling, attempts per call < 1.0 and goodput >= 0.95 x capacity
// at 10x, recovery <= 1 s.
//
// It runs N = 100 at 5x and 10x, with the phases of the targets (10 s, 4 s, 3 s): the fleet
// where a per-client floor does worst, at the factors of the attempts target. Fewer seconds
// would not be the targets: the budget's window is 10 s, so a shorter first phase leaves
// it less warmed up than a client that has been running. FAULTLINE_OVERLOAD_FULL=1 runs the
// full matrix (N = 1, 10, 100 at 2x, 5x, 10x), as go run ./bench/cmd/compare fleet always
// does. A run's cost grows with its calls, not its attempts: under -race on a loaded 2-core
// machine the two cells take 13 to 20 s.
//
// The figures vary a little from run to run (retry jitter, and the order in which
// goroutines due at the same virtual instant run), and some targets are met by a small
// margin; go test -v logs every figure unrounded. Over 70 runs of the two cells (20 under
// -race, 50 without): faultline's defaults made 1.2005..1.2110 attempts/call at 5x and
// exactly 1.2000 at 10x, and recovered in 0..100 ms; their goodput at 10x was 78.50/s
// against no retries' 82.50/s in every run, a ratio of 0.9515 against 0.95 (314
// successful calls in the 4 s, the target 313.5: one call of margin); with throttling,
// 0.33..0.36 attempts/call and 95.50..96.25/s at 10x, and recovery in 500..1000 ms (1 s,
// the limit itself, once, at 5x).
//
// In the full matrix, one cell misses a target now and then: faultline's defaults at N =
// 100, 2x, recovered in 0..600 ms over 10 runs, missing the 300 ms target in 2 (400 and
// 600 ms). At 2x each of the 100 clients fails too few attempts for its budget's floor to
// close, so the floors pay for 1.51..1.57 attempts/call (1.22 with no floor) and the
// retries outlast the overload.
func TestFleetTargets(t *testing.T) {
	type cell struct {
		clients int
		factor  float64
	}
	cells := []cell{{100, 5}, {100, 10}}
	if os.Getenv(fullEnv) == "1" {
		cells = nil
		for _, f := range bench.FleetFactors {
			for _, n := range bench.FleetClients {
				cells = append(cells, cell{n, f})
			}
		}
	}
	kinds := []bench.Kind{bench.KindDefault, bench.KindNoRetry, bench.KindThrottled}
	for _, c := range cells {
		t.Run(fmt.Sprintf("N=%d/%gx", c.clients, c.factor), func(t *testing.T) {
			var figs []bench.FleetFigures
			for _, k := range bench.Contenders() {
				if slices.Contains(kinds, k.Kind) {
					figs = append(figs, bench.Fleet(t, k, bench.FleetFull(c.clients, c.factor)))
				}
			}
			for _, f := range figs {
				logFleet(t, f)
			}
			assertChecks(t, bench.FleetChecks(figs))
		})
	}
}

// TestRestartTargets asserts overload.md's restart target: with faultline's defaults, no
// poll fails and no cleanup is refused.
func TestRestartTargets(t *testing.T) {
	f := bench.Restart(t, contender(t, bench.KindDefault))
	assertChecks(t, bench.RestartChecks([]bench.RestartFigures{f}))
}

// TestTailsTargets asserts overload.md's log-tail target: with faultline's defaults, 50 of
// 50 tails complete across four resets, every line once.
func TestTailsTargets(t *testing.T) {
	f := bench.Tails(t, contender(t, bench.KindDefault))
	assertChecks(t, bench.TailsChecks([]bench.TailsFigures{f}))
}

// TestProxyTargets asserts overload.md's rule 1 for a proxy that resets connections after
// the requests were sent: the attempts it turns away reached the server, so faultline's
// default budget still limits their retries, to attempts per call <= 1.25 at 5x. It runs
// N = 100 (the fleet where a floor per client would do worst); FAULTLINE_OVERLOAD_FULL=1
// runs N = 1, 10, 100, as go run ./bench/cmd/compare proxy does. Under -race on a loaded
// 2-core machine N = 100 takes 5 to 8 s. Measured: 1.2010..1.2065 attempts/call at N = 100
// over 20 runs; 1.2315 at N = 1 and 1.2300 at N = 10 in each of 10 runs.
func TestProxyTargets(t *testing.T) {
	clients := []int{100}
	if os.Getenv(fullEnv) == "1" {
		clients = bench.FleetClients
	}
	for _, n := range clients {
		t.Run(fmt.Sprintf("N=%d", n), func(t *testing.T) {
			f := bench.Fleet(t, contender(t, bench.KindDefault), bench.FleetResetFull(n, bench.ProxyFactor))
			logFleet(t, f)
			assertChecks(t, bench.ProxyChecks([]bench.FleetFigures{f}))
		})
	}
}
