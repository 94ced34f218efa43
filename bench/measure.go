package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// Figures is what the virtual-time scenarios measured, one slice per scenario, as
// [MeasureForCompare] writes them for [Run].
type Figures struct {
	Short   bool             `json:"short"`
	Fleet   []FleetFigures   `json:"fleet,omitempty"`
	Restart []RestartFigures `json:"restart,omitempty"`
	Tails   []TailsFigures   `json:"tails,omitempty"`
	Proxy   []FleetFigures   `json:"proxy,omitempty"`
}

// The virtual-time scenarios, by name (see [Scenarios]).
const (
	ScenarioFleet   = "fleet"
	ScenarioRestart = "restart"
	ScenarioTails   = "tails"
	ScenarioProxy   = "proxy"
)

// FleetClients and FleetFactors are the fleet scenario's full matrix: clients N and
// overload factors F of overload.md's targets. The proxy scenario runs every N of
// FleetClients at ProxyFactor.
var (
	FleetClients = []int{1, 10, 100}
	FleetFactors = []float64{2, 5, 10}
)

// ProxyFactor is the overload factor of the proxy scenario: that of overload.md's
// attempts target, where a fleet without a budget that holds makes the most attempts.
const ProxyFactor = 5.0

// Measure runs the virtual-time scenario named (ScenarioFleet, ScenarioRestart,
// ScenarioTails or ScenarioProxy) for every contender of [Contenders] and returns the
// figures. In short mode the fleet scenario runs one configuration (10 clients, 5x,
// [FleetShort]) instead of the full matrix ([FleetFull] for every N of FleetClients and F
// of FleetFactors), and the proxy scenario the same short configuration with resets
// instead of [FleetResetFull] for every N of FleetClients at ProxyFactor; the other two
// always run in full (a second or so each). logf, if not nil, gets a line per
// run. Its errors: an unknown scenario, and a harness that failed (t has failed: a server
// or connection that did not come up).
func Measure(t *testing.T, scenario string, short bool, logf func(format string, args ...any)) (Figures, error) {
	t.Helper()
	if logf == nil {
		logf = func(string, ...any) {}
	}
	figs := Figures{Short: short}
	switch scenario {
	case ScenarioFleet:
		clients, factors := FleetClients, FleetFactors
		config := FleetFull
		if short {
			clients, factors, config = []int{10}, []float64{5}, FleetShort
		}
		for _, f := range factors {
			for _, n := range clients {
				for _, c := range Contenders() {
					start := time.Now()
					fig := Fleet(t, c, config(n, f))
					logf("fleet: %s: %.2f attempts/call, goodput %.1f/s (%.1f s)", fig.label(), fig.AttemptsPerCall(), fig.Goodput, time.Since(start).Seconds())
					figs.Fleet = append(figs.Fleet, fig)
				}
			}
		}
	case ScenarioProxy:
		clients, config := FleetClients, FleetResetFull
		if short {
			clients = []int{10}
			config = func(n int, f float64) FleetConfig {
				c := FleetShort(n, f)
				c.Reset = true
				return c
			}
		}
		for _, n := range clients {
			for _, c := range Contenders() {
				start := time.Now()
				fig := Fleet(t, c, config(n, ProxyFactor))
				logf("proxy: %s: %.2f attempts/call, goodput %.1f/s, %d connections reset (%.1f s)", fig.label(), fig.AttemptsPerCall(),
					fig.Goodput, fig.Resets, time.Since(start).Seconds())
				figs.Proxy = append(figs.Proxy, fig)
			}
		}
	case ScenarioRestart:
		for _, c := range Contenders() {
			start := time.Now()
			fig := Restart(t, c)
			logf("restart: %s: %d of %d polls failed, %d of %d cleanups refused (%.1f s)", c.Name, fig.FailedPolls, fig.Polls,
				fig.RefusedCleanups, fig.Cleanups, time.Since(start).Seconds())
			figs.Restart = append(figs.Restart, fig)
		}
	case ScenarioTails:
		for _, c := range Contenders() {
			start := time.Now()
			fig := Tails(t, c)
			logf("tails: %s: %d of %d streams complete (%.1f s)", c.Name, fig.Complete, fig.Streams, time.Since(start).Seconds())
			figs.Tails = append(figs.Tails, fig)
		}
	default:
		return figs, fmt.Errorf("bench: %q is not a virtual-time scenario (want %s, %s, %s or %s)", scenario,
			ScenarioFleet, ScenarioRestart, ScenarioTails, ScenarioProxy)
	}
	if t.Failed() {
		return figs, fmt.Errorf("bench: the %s scenario's harness failed (see the test's log)", scenario)
	}
	return figs, nil
}

// The environment through which [Run] asks a child `go test` for figures (see
// [MeasureForCompare]).
const (
	envFiguresFile = "FAULTLINE_BENCH_FIGURES"  // where to write them, as JSON
	envScenario    = "FAULTLINE_BENCH_SCENARIO" // which scenario
	envShort       = "FAULTLINE_BENCH_SHORT"    // "1" for short mode
)

// figuresTest is the test of this module that calls [MeasureForCompare].
const figuresTest = "TestVirtualFigures"

// MeasureForCompare is the child's side of [Run]'s virtual-time scenarios: called from a
// test, it measures the scenario that the environment names and writes its [Figures] as
// JSON to the file the environment names. When the environment names no file (an
// ordinary `go test`), it skips t.
func MeasureForCompare(t *testing.T) {
	path := os.Getenv(envFiguresFile)
	if path == "" {
		t.Skipf("writes the figures of a virtual-time scenario for go run ./bench/cmd/compare; set by compare, not by hand ($%s is empty)", envFiguresFile)
	}
	figs, err := Measure(t, os.Getenv(envScenario), os.Getenv(envShort) == "1", t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(figs)
	if err != nil {
		t.Fatalf("encoding the figures: %v", err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatalf("writing the figures: %v", err)
	}
}

// measureInChild runs a virtual-time scenario in a child `go test` of this module's
// tests (see the package doc for why) and returns its figures. The child's output goes
// to progress.
func measureInChild(ctx context.Context, scenario string, short bool, progress io.Writer) (Figures, error) {
	var figs Figures
	goCmd, err := exec.LookPath("go")
	if err != nil {
		return figs, fmt.Errorf("the virtual-time scenarios run under go test, and no go command is on PATH: %w", err)
	}
	dir, err := moduleDir(ctx, goCmd)
	if err != nil {
		return figs, err
	}
	f, err := os.CreateTemp("", "faultline-figures-*.json")
	if err != nil {
		return figs, err
	}
	path := f.Name()
	_ = f.Close()
	defer os.Remove(path)

	// -count=1: never a cached result, which would write no figures. No -race: the
	// figures are virtual times and counts, the same with or without it.
	cmd := exec.CommandContext(ctx, goCmd, "test", "-count=1", "-run", "^"+figuresTest+"$", "-timeout", "2h", "-v", ".")
	cmd.Dir = dir
	shortFlag := "0"
	if short {
		shortFlag = "1"
	}
	cmd.Env = append(os.Environ(), envFiguresFile+"="+path, envScenario+"="+scenario, envShort+"="+shortFlag)
	var out bytes.Buffer
	w := io.MultiWriter(progress, &out)
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Run(); err != nil {
		return figs, fmt.Errorf("go test -run %s in %s: %w\n%s", figuresTest, dir, err, lastLines(out.String(), 40))
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return figs, err
	}
	if len(b) == 0 {
		return figs, fmt.Errorf("go test -run %s wrote no figures\n%s", figuresTest, lastLines(out.String(), 40))
	}
	if err := json.Unmarshal(b, &figs); err != nil {
		return figs, fmt.Errorf("reading the figures: %w", err)
	}
	return figs, nil
}

// benchPackage is this package's import path.
const benchPackage = "github.com/faultline-go/faultline/bench"

// moduleDir returns the directory of this module's source, as the go command finds it
// from the working directory (the repository, through its go.work).
func moduleDir(ctx context.Context, goCmd string) (string, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, goCmd, "list", "-f", "{{.Dir}}", benchPackage)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("finding %s (run compare from inside the faultline repository): %w: %s",
			benchPackage, err, strings.TrimSpace(stderr.String()))
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", errors.New("go list printed no directory for " + benchPackage)
	}
	return dir, nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// A Check is one target of overload.md applied to one run's figures.
type Check struct {
	Target string // the target, e.g. "attempts/call <= 1.25"
	Run    string // which run, e.g. "faultline, N=100, 5x"
	Got    string // what was measured
	Met    bool
}

func (c Check) String() string {
	verdict := "missed"
	if c.Met {
		verdict = "met"
	}
	return fmt.Sprintf("%s: %s (%s): %s", c.Run, c.Target, verdict, c.Got)
}

// FleetChecks applies overload.md's fleet targets to a fleet matrix: for faultline's
// defaults, attempts per call <= 1.25 at 5x and 10x, goodput >= 0.95 x the no-retry
// client's in the same (N, F), recovery <= 300 ms; with adaptive throttling, attempts per
// call < 1.0 and goodput >= 0.95 x capacity at 10x, recovery <= 1 s.
func FleetChecks(figs []FleetFigures) []Check {
	var out []Check
	noRetry := func(f FleetFigures) (FleetFigures, bool) {
		i := slices.IndexFunc(figs, func(g FleetFigures) bool {
			return g.Kind == KindNoRetry && g.Clients == f.Clients && g.Factor == f.Factor
		})
		if i < 0 {
			return FleetFigures{}, false
		}
		return figs[i], true
	}
	recovery := func(f FleetFigures, limit time.Duration) Check {
		got := "not recovered within the run"
		if f.Recovered {
			got = f.Recovery.String()
		}
		return Check{Target: "recovery <= " + limit.String(), Run: f.label(), Got: got, Met: f.Recovered && f.Recovery <= limit}
	}
	for _, f := range figs {
		if f.Reset {
			continue // the proxy scenario's: see ProxyChecks
		}
		switch f.Kind {
		case KindDefault:
			if f.Factor == 5 || f.Factor == 10 {
				out = append(out, Check{Target: "attempts/call <= 1.25", Run: f.label(),
					Got: fmt.Sprintf("%.2f", f.AttemptsPerCall()), Met: f.AttemptsPerCall() <= 1.25})
			}
			if nr, ok := noRetry(f); ok {
				out = append(out, Check{Target: "goodput >= 0.95 x no retries'", Run: f.label(),
					Got: fmt.Sprintf("%.1f/s vs %.1f/s (%.2f)", f.Goodput, nr.Goodput, f.Goodput/nr.Goodput),
					Met: f.Goodput >= 0.95*nr.Goodput})
			}
			out = append(out, recovery(f, 300*time.Millisecond))
		case KindThrottled:
			if f.Factor == 10 {
				out = append(out,
					Check{Target: "attempts/call < 1.0", Run: f.label(), Got: fmt.Sprintf("%.2f", f.AttemptsPerCall()), Met: f.AttemptsPerCall() < 1},
					Check{Target: "goodput >= 0.95 x capacity", Run: f.label(), Got: fmt.Sprintf("%.1f/s", f.Goodput), Met: f.Goodput >= 0.95*FleetCapacity})
			}
			out = append(out, recovery(f, time.Second))
		}
	}
	return out
}

// ProxyChecks applies overload.md's rule 1 to the proxy scenario (a server that resets the
// connection of every attempt it cannot serve, after reading it): those attempts reached
// the server, so their retries spend the budget as a RESOURCE_EXHAUSTED's do, and
// faultline's defaults keep attempts per call <= 1.25 at 5x for every N, as in the fleet
// scenario.
func ProxyChecks(figs []FleetFigures) []Check {
	var out []Check
	for _, f := range figs {
		if f.Kind == KindDefault && f.Reset && f.Factor == 5 {
			out = append(out, Check{Target: "attempts/call <= 1.25", Run: f.label(),
				Got: fmt.Sprintf("%.2f (%d connections reset)", f.AttemptsPerCall(), f.Resets), Met: f.AttemptsPerCall() <= 1.25})
		}
	}
	return out
}

// RestartChecks applies overload.md's restart target to faultline's defaults: no failed
// poll, no refused cleanup.
func RestartChecks(figs []RestartFigures) []Check {
	var out []Check
	for _, f := range figs {
		if f.Kind != KindDefault {
			continue
		}
		out = append(out,
			Check{Target: "0 failed polls", Run: f.Contender, Got: fmt.Sprintf("%d of %d failed%s", f.FailedPolls, f.Polls, countsNote(f.PollFailures)), Met: f.FailedPolls == 0},
			Check{Target: "0 refused cleanups", Run: f.Contender, Got: fmt.Sprintf("%d of %d refused%s", f.RefusedCleanups, f.Cleanups, countsNote(f.CleanupFailures)), Met: f.RefusedCleanups == 0})
	}
	return out
}

// TailsChecks applies overload.md's log-tail target to faultline's defaults: every stream
// complete, every line delivered once.
func TailsChecks(figs []TailsFigures) []Check {
	var out []Check
	for _, f := range figs {
		if f.Kind != KindDefault {
			continue
		}
		out = append(out,
			Check{Target: "every stream complete", Run: f.Contender, Got: fmt.Sprintf("%d of %d%s", f.Complete, f.Streams, countsNote(f.Failures)), Met: f.Complete == f.Streams},
			Check{Target: "every line once", Run: f.Contender,
				Got: fmt.Sprintf("%d of %d delivered, %d duplicates, %d gaps, %d missing", f.Delivered, f.Expected, f.Duplicates, f.Gaps, f.Missing),
				Met: f.Delivered == f.Expected && f.Duplicates == 0 && f.Gaps == 0 && f.Missing == 0})
	}
	return out
}

// countsNote is " (Label x3, ...)" for counts by label, or "" for none.
func countsNote(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	return " (" + describeCounts(m) + ")"
}
