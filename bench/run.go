package bench

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Config says what [Run] measures and how.
type Config struct {
	// Short runs every scenario small enough to finish in seconds, and checks no goal.
	Short bool
	// Scenarios names the scenarios to run (see [Scenarios]); empty means all, in order.
	Scenarios []string
	// Progress receives one line per step, for a person watching; nil discards them.
	Progress io.Writer
	// Note is printed under the report's title when not empty, e.g. to say that other
	// work was running on the machine.
	Note string
	// Measure runs a virtual-time scenario (fleet, restart, tails) and returns its
	// figures. Nil runs it in a child `go test` of this module (see the package doc); a
	// test of this module sets it to run the scenario in its own process, with [Measure].
	Measure func(ctx context.Context, scenario string, short bool) (Figures, error)
}

// scenario is one subcommand: a section of the report.
type scenario struct {
	name  string
	title string
	run   func(ctx context.Context, e *env) error
	// virtual is true for a scenario that runs in a testing/synctest bubble: its figures
	// do not depend on the machine's load, so its goals are judged whatever the load.
	virtual bool
}

// scenarios is the one table of scenarios, in report order.
var scenarios = []scenario{
	{"success", "1. Success path", successPath, false},
	{"decode", "2. Error-path decoding", decode, false},
	{"retryinfo", "3. RetryInfo fidelity", retryInfo, false},
	{"deadline", "4. Deadline honesty", deadline, false},
	{"overload", "5. Overload amplification", overload, false},
	{"outage", "6. Outage recovery", outage, false},
	{ScenarioFleet, "7. Fleet under overload (virtual time)", fleetSection, true},
	{ScenarioRestart, "8. Server restart (virtual time)", restartSection, true},
	{ScenarioTails, "9. Log tails resumed across resets (virtual time)", tailsSection, true},
	{ScenarioProxy, "10. Fleet behind a proxy that resets connections (virtual time)", proxySection, true},
}

// Scenarios returns the scenario names, in the order [Run] runs them.
func Scenarios() []string {
	out := make([]string, len(scenarios))
	for i, s := range scenarios {
		out[i] = s.name
	}
	return out
}

// env is what a scenario runs with.
type env struct {
	short   bool
	r       *report
	log     func(format string, args ...any)
	measure func(ctx context.Context, scenario string, short bool) (Figures, error)
}

// size returns short in short mode, else full.
func size[T any](e *env, short, full T) T {
	if e.short {
		return short
	}
	return full
}

// Run runs the scenarios cfg names and writes one markdown report to w. It returns an
// error for an unknown scenario name (before running anything), for a scenario that
// could not be set up or run (a server that did not start, a call that should have
// succeeded and did not), or for a failed write; ctx ending stops it between steps.
// A goal that is missed is reported in the text, not as an error.
func Run(ctx context.Context, w io.Writer, cfg Config) error {
	selected := scenarios
	if len(cfg.Scenarios) > 0 {
		selected = nil
		for _, name := range cfg.Scenarios {
			i := slices.IndexFunc(scenarios, func(s scenario) bool { return s.name == name })
			if i < 0 {
				return fmt.Errorf("bench: unknown scenario %q (want one of %s)", name, strings.Join(Scenarios(), ", "))
			}
			selected = append(selected, scenarios[i])
		}
	}
	progress := cfg.Progress
	if progress == nil {
		progress = io.Discard
	}
	e := &env{
		short:   cfg.Short,
		r:       &report{w: w},
		measure: cfg.Measure,
		log: func(format string, args ...any) {
			fmt.Fprintf(progress, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
		},
	}
	if e.measure == nil {
		e.measure = func(ctx context.Context, scenario string, short bool) (Figures, error) {
			return measureInChild(ctx, scenario, short, progress)
		}
	}
	began := time.Now()
	header(e, cfg, selected)
	for _, s := range selected {
		e.r.heading(2, s.title)
		e.r.section = s.title
		e.log("scenario %s", s.name)
		start, load := time.Now(), loadAverage()
		var withheld string
		if !s.virtual {
			withheld = loaded("the start")
		}
		if err := s.run(ctx, e); err != nil {
			return fmt.Errorf("bench: scenario %s: %w", s.name, err)
		}
		if !s.virtual && withheld == "" {
			withheld = loaded("the end")
		}
		e.r.flushGoals(withheld)
		e.r.para("_Scenario time: %.1f s; load average (1, 5, 15 min) before: %s; after: %s._",
			time.Since(start).Seconds(), load, loadAverage())
		if err := e.r.err(); err != nil {
			return fmt.Errorf("bench: writing the report: %w", err)
		}
	}
	if len(e.r.goals) > 0 {
		e.r.heading(2, "Goals at a glance")
		e.r.printf("%s\n\n", strings.Join(e.r.goals, "\n"))
	}
	e.r.para("Load average at the end (1, 5, 15 min): %s. Run time: %.0f s.", loadAverage(), time.Since(began).Seconds())
	return e.r.err()
}

func header(e *env, cfg Config, selected []scenario) {
	r := e.r
	r.printf("# faultline: retry layers compared\n\n")
	mode := "full"
	if cfg.Short {
		mode = "short (-short: small sizes, goals not checked)"
	}
	names := make([]string, len(selected))
	for i, s := range selected {
		names[i] = s.name
	}
	r.para("Generated by `go run ./bench/cmd/compare` on %s UTC; mode: %s; scenarios: %s.",
		time.Now().UTC().Format("2006-01-02 15:04"), mode, strings.Join(names, ", "))
	if cfg.Note != "" {
		r.para("Note: %s", cfg.Note)
	}
	r.heading(2, "Machine")
	r.table([]string{"what", "value"}, machine())
	r.heading(2, "Versions")
	r.table([]string{"module", "version"}, versions(Peers()))
	r.heading(2, "Method")
	r.para("Contenders run **interleaved**: every scenario runs in rounds, each round runs every " +
		"contender once, and the order rotates by one position from round to round, so that " +
		"drift in the machine's speed (other processes, thermal, GC of earlier rounds) hits all " +
		"of them alike. Where a scenario compares against a baseline (success path, decoding), " +
		"each contender's batch runs **right next to a baseline batch** (A B, then B A in the next " +
		"round, and so on) and **ratios are taken pair by pair**: the contender's figure over the " +
		"baseline batch next to it. Tables give the median of those per-round ratios with their " +
		"25th-75th percentiles (written `median (p25-p75)`), or, where a row has few samples, the " +
		"median with min and max (`median (min-max)`).")
	r.para("Success-path time is wall-clock time over a batch of sequential calls divided by the " +
		"batch size; allocations are the runtime.MemStats.Mallocs delta over the same batch divided " +
		"by the batch size. Both include the in-process server (same for every contender), so the " +
		"difference between two rows is the client side's. Failure scenarios time what the server " +
		"sees (arrival times in its outermost interceptor) or what the caller sees (time to return, " +
		"status code). Every server is in-process on bufconn or 127.0.0.1, every loop is bounded in " +
		"count and time, the clock is the real one. The harness itself keeps up to two threads " +
		"busy, so a 1-minute load average near 2 means the machine was otherwise quiet; each " +
		"scenario prints the load averages before and after it, and higher values mean other " +
		"work was running.")
	rows := make([][]string, 0, len(Peers()))
	for _, p := range Peers() {
		rows = append(rows, []string{p.Name, p.Setup})
	}
	r.table([]string{"contender", "setup"}, rows)
}

// interleave calls f for rounds rounds over n contenders, rotating the order by one
// position every round: f(round, i) for i in i0, i0+1, ... (mod n), i0 = round mod n. It
// stops at the first error, or when ctx ends.
func interleave(ctx context.Context, rounds, n int, f func(round, i int) error) error {
	for r := range rounds {
		for k := range n {
			if err := ctx.Err(); err != nil {
				return err
			}
			if err := f(r, (r+k)%n); err != nil {
				return err
			}
		}
	}
	return nil
}
