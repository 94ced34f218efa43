package bench

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// fleetSection is the fleet scenario's section of the report (see [Fleet]).
func fleetSection(ctx context.Context, e *env) error {
	e.log("fleet: running in testing/synctest bubbles")
	figs, err := e.measure(ctx, ScenarioFleet, e.short)
	if err != nil {
		return err
	}
	e.r.para("Virtual time: every run is inside a testing/synctest bubble, over bufconn, with the real "+
		"interceptors and a real gRPC server, so these figures are the same at any machine load. "+
		"One server of fixed capacity is shared by N clients, each its own grpc.ClientConn with its own "+
		"interceptors. The server's model: a token bucket refills %.0f units/s, up to %.0f; a GetSandbox "+
		"that finds a unit takes it and is answered after %v; one that does not is answered at once with "+
		"RESOURCE_EXHAUSTED + RetryInfo %v and costs the server %.2f unit (rejecting is not free), so "+
		"that attempts beyond capacity take capacity from the calls admitted.",
		FleetCapacity, fleetBurst, fleetServiceTime, fleetRetryDelay, fleetRejectCost)
	cfg := FleetFull(0, 0)
	if e.short {
		cfg = FleetShort(0, 0)
	}
	e.r.para("Load: open loop, logical GetSandbox calls with a %v deadline each, evenly spaced and dealt "+
		"to the clients in turn: %v at %.1fx capacity, then %v at F x capacity, then %v at %.1fx again; "+
		"at most %d calls in flight. `attempts/call` is the attempts the server received for the calls "+
		"started during the overload, over those calls; `goodput` is successful calls completed during "+
		"the overload, per second; `vs no retries` is goodput over the no-retry client's in the same "+
		"(N, F); `success` is the share of calls started during the overload that succeeded; `recovery` "+
		"is the time from the end of the overload until every later %v slice (calls by start time) "+
		"has at least %.0f%% successful calls.",
		fleetDeadline, cfg.Before, fleetBaseLoad, cfg.Overload, cfg.After, fleetBaseLoad, fleetMaxInFlight,
		fleetSlice, 100*fleetRecovered)
	if e.short {
		e.r.para("-short: 10 clients at 5x only, phases of 1 s: the budget's 10 s window is not warmed " +
			"up, so these figures are not those of the targets.")
	}
	contendersTable(e)
	var factors []float64
	for _, f := range figs.Fleet {
		if !slices.Contains(factors, f.Factor) {
			factors = append(factors, f.Factor)
		}
	}
	for _, factor := range factors {
		e.r.heading(3, fmt.Sprintf("%gx capacity (%.0f calls/s) for %v", factor, factor*FleetCapacity, cfg.Overload))
		fleetTable(e, figs.Fleet, factor, false)
	}
	checksGoal(e, "faultline meets overload.md's fleet targets: with default options, attempts/call <= 1.25 "+
		"at 5x and 10x for every N, goodput >= 0.95 x no retries' and recovery <= 300 ms; with adaptive "+
		"throttling, attempts/call < 1.0 and goodput >= 0.95 x capacity at 10x, and recovery <= 1 s.",
		FleetChecks(figs.Fleet))
	return nil
}

// fleetTable writes the rows of figs at factor; resets adds the columns of the proxy
// scenario (connections accepted and reset).
func fleetTable(e *env, figs []FleetFigures, factor float64, resets bool) {
	var rows [][]string
	for _, f := range figs {
		if f.Factor != factor {
			continue
		}
		vs := "n/a"
		if nr, ok := noRetryFleet(figs, f); ok && nr.Goodput > 0 {
			vs = ratio(f.Goodput / nr.Goodput)
		}
		row := []string{f.Contender, strconv.Itoa(f.Clients), fixed2(f.AttemptsPerCall()),
			fixed1(f.Goodput), vs, percent(float64(f.Succeeded) / float64(max(f.Calls, 1))), recoveryText(f)}
		if resets {
			row = append(row, strconv.Itoa(f.Resets), strconv.Itoa(f.Connections))
		} else {
			row = append(row, strconv.Itoa(f.NotSent))
		}
		rows = append(rows, append(row, noneIfEmpty(describeCounts(f.Failures))))
	}
	head := []string{"contender", "clients", "attempts/call", "goodput (calls/s)", "vs no retries", "success", "recovery"}
	if resets {
		head = append(head, "connections reset", "connections accepted")
	} else {
		head = append(head, "not sent")
	}
	e.r.table(append(head, "failed calls started in the overload"), rows)
}

// proxySection is the proxy scenario's section of the report: the fleet scenario with a
// server that resets connections instead of answering RESOURCE_EXHAUSTED (see [Fleet]).
func proxySection(ctx context.Context, e *env) error {
	e.log("proxy: running in testing/synctest bubbles")
	figs, err := e.measure(ctx, ScenarioProxy, e.short)
	if err != nil {
		return err
	}
	cfg := FleetResetFull(0, ProxyFactor)
	if e.short {
		cfg = FleetShort(0, ProxyFactor)
	}
	e.r.para("Virtual time (testing/synctest, bufconn, real interceptors and server). The fleet scenario "+
		"(section 7: the same server model, load and columns) at %gx, except for how the server answers "+
		"an attempt it cannot serve: instead of RESOURCE_EXHAUSTED + RetryInfo, it closes the connection "+
		"the attempt came on, at once, after reading the attempt (no status, no GOAWAY), as a proxy in "+
		"front of an overloaded server that resets connections does. The client sees UNAVAILABLE for "+
		"that attempt and for every other attempt in flight on the connection, and grpc-go reconnects. "+
		"These attempts reached the server (`attempts/call` counts what the server read), so by "+
		"overload.md's rule 1 their retries spend the budget: a client cannot tell a reset after its "+
		"request was written from one before. `connections reset` is the connections the server "+
		"closed this way; `connections accepted` includes the clients' first connections and every "+
		"reconnection. Phases: %v at %.1fx, %v at %gx, %v at %.1fx.",
		ProxyFactor, cfg.Before, fleetBaseLoad, cfg.Overload, ProxyFactor, cfg.After, fleetBaseLoad)
	if e.short {
		e.r.para("-short: 10 clients only, phases of 1 s: the budget's 10 s window is not warmed up, so " +
			"these figures are not those of the target.")
	}
	contendersTable(e)
	fleetTable(e, figs.Proxy, ProxyFactor, true)
	checksGoal(e, fmt.Sprintf("faultline's defaults keep attempts/call <= 1.25 at %gx for every N when the "+
		"server resets connections after reading the attempts it cannot serve (overload.md rule 1: a "+
		"failure after the request may have been written spends).", ProxyFactor), ProxyChecks(figs.Proxy))
	return nil
}

func noRetryFleet(figs []FleetFigures, f FleetFigures) (FleetFigures, bool) {
	for _, g := range figs {
		if g.Kind == KindNoRetry && g.Clients == f.Clients && g.Factor == f.Factor {
			return g, true
		}
	}
	return FleetFigures{}, false
}

func recoveryText(f FleetFigures) string {
	if !f.Recovered {
		return "not recovered"
	}
	return virtualMillis(f.Recovery)
}

// virtualMillis formats a virtual duration in whole milliseconds.
func virtualMillis(d time.Duration) string { return fmt.Sprintf("%d ms", d.Milliseconds()) }

// restartSection is the restart scenario's section of the report (see [Restart]).
func restartSection(ctx context.Context, e *env) error {
	e.log("restart: running in testing/synctest bubbles")
	figs, err := e.measure(ctx, ScenarioRestart, e.short)
	if err != nil {
		return err
	}
	e.r.para("Virtual time (testing/synctest, bufconn, real interceptors and server). %d pollers share "+
		"one client connection; each creates a sandbox of its own, then starts a GetSandbox poll every "+
		"%v whether or not its previous poll returned (open loop, as workers polling on a timer). At "+
		"t = %v the server goes away (grpc.Server stopped: connections closed, calls in flight "+
		"cancelled, new dials refused as by a closed TCP port); at t = %v a new server serves the same "+
		"sandboxes on the same address. At its first tick from then on, each poller deletes its sandbox "+
		"(the cleanup) instead of polling, then polls on. Every call has a %v deadline; no call starts "+
		"at or after t = %v. `attempts` is the GetSandbox and DeleteSandbox attempts the server "+
		"received.", restartPollers, restartEvery, restartDown, restartDown+restartAway, restartDeadline, restartEnd)
	contendersTable(e)
	rows := make([][]string, len(figs.Restart))
	for i, f := range figs.Restart {
		rows[i] = []string{f.Contender, strconv.Itoa(f.Polls), strconv.Itoa(f.FailedPolls), noneIfEmpty(describeCounts(f.PollFailures)),
			fmt.Sprintf("%d of %d", f.RefusedCleanups, f.Cleanups), noneIfEmpty(describeCounts(f.CleanupFailures)),
			virtualMillis(f.MaxPollLatency), strconv.Itoa(f.Attempts)}
	}
	e.r.table([]string{"contender", "polls", "failed polls", "failed polls returned", "refused cleanups",
		"refused cleanups returned", "max poll latency", "attempts"}, rows)
	checksGoal(e, "faultline's defaults lose no poll and refuse no cleanup across the restart.", RestartChecks(figs.Restart))
	return nil
}

// tailsSection is the tails scenario's section of the report (see [Tails]).
func tailsSection(ctx context.Context, e *env) error {
	e.log("tails: running in testing/synctest bubbles")
	figs, err := e.measure(ctx, ScenarioTails, e.short)
	if err != nil {
		return err
	}
	e.r.para("Virtual time (testing/synctest, bufconn, real interceptors and server). %d StreamLogs tails "+
		"(follow mode) share one client connection, one per sandbox; each sandbox's log has %d lines, "+
		"which the server sends one every %v from the requested offset. At t = %v and then every %v, %d "+
		"times, the server side of every connection is closed (a reset); the server keeps running. "+
		"`complete` is streams that ended with OK after every line once, in order; `duplicates` counts "+
		"extra copies, `gaps` lines skipped over, `missing` lines never received; `resumes` is stream "+
		"attempts the server received beyond each stream's first.",
		tailStreams, tailLines, tailEvery, tailFirstReset, tailResetEvery, tailResets)
	contendersTable(e)
	rows := make([][]string, len(figs.Tails))
	for i, f := range figs.Tails {
		rows[i] = []string{f.Contender, fmt.Sprintf("%d of %d", f.Complete, f.Streams),
			fmt.Sprintf("%d of %d", f.Delivered, f.Expected), strconv.Itoa(f.Duplicates), strconv.Itoa(f.Gaps),
			strconv.Itoa(f.Missing), strconv.Itoa(f.Resumes), noneIfEmpty(describeCounts(f.Failures))}
	}
	e.r.table([]string{"contender", "complete", "lines delivered", "duplicates", "gaps", "missing", "resumes",
		"streams that failed, by what they returned"}, rows)
	checksGoal(e, "with faultline's defaults every tail completes and delivers every line once.", TailsChecks(figs.Tails))
	return nil
}

// contendersTable lists the contenders of the virtual-time scenarios.
func contendersTable(e *env) {
	cs := Contenders()
	rows := make([][]string, len(cs))
	for i, c := range cs {
		rows[i] = []string{c.Name, c.Setup}
	}
	e.r.table([]string{"contender", "setup"}, rows)
}

// checksGoal writes the goal of a virtual-time scenario: met when every check is.
func checksGoal(e *env, what string, checks []Check) {
	var missed []string
	for _, c := range checks {
		if !c.Met {
			missed = append(missed, c.String())
		}
	}
	text := fmt.Sprintf("%s %d of %d checks met.", what, len(checks)-len(missed), len(checks))
	if len(missed) > 0 {
		text += " Missed: " + strings.Join(missed, "; ") + "."
	}
	if len(checks) == 0 {
		text += " No run of faultline's defaults was measured."
	}
	e.r.goal(len(checks) > 0 && len(missed) == 0, e.short, text)
}

func noneIfEmpty(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
