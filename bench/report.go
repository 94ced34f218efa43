package bench

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// report accumulates the markdown report. Write errors are kept and returned by err, so
// that the scenarios can write without checking each line.
type report struct {
	w       io.Writer
	failed  error
	section string     // the scenario being written
	goals   []string   // one line per goal written, for the summary
	pending []goalLine // goals of the scenario being run, written by flushGoals
}

// goalLine is a goal whose verdict is written when its scenario has ended.
type goalLine struct {
	met, short bool
	text       string
}

func (r *report) printf(format string, args ...any) {
	if r.failed == nil {
		_, r.failed = fmt.Fprintf(r.w, format, args...)
	}
}

func (r *report) heading(level int, title string) {
	r.printf("\n%s %s\n\n", strings.Repeat("#", level), title)
}

func (r *report) para(format string, args ...any) {
	r.printf(format+"\n\n", args...)
}

// table writes a markdown table. A column whose cells all start like a number is
// right-aligned; other columns are left-aligned.
func (r *report) table(header []string, rows [][]string) {
	r.printf("| %s |\n", strings.Join(header, " | "))
	align := make([]string, len(header))
	for j := range align {
		align[j] = "---"
		if numeric(rows, j) {
			align[j] = "---:"
		}
	}
	r.printf("|%s|\n", strings.Join(align, "|"))
	for _, row := range rows {
		r.printf("| %s |\n", strings.Join(row, " | "))
	}
	r.printf("\n")
}

// goal records a goal's verdict, "met" or "MISSED", with what was measured; the verdicts
// of sub-goals in text are written with [metOrMissed]. It is written when the scenario
// has ended (see [report.flushGoals]), as the scenario's last paragraph.
func (r *report) goal(met bool, short bool, text string) {
	r.pending = append(r.pending, goalLine{met: met, short: short, text: text})
}

// Marks of a sub-goal's verdict in a goal's text: flushGoals writes them as "met" and
// "missed", or as "not judged" when the goal's verdict is withheld.
const (
	markMet    = "\x1fmet\x1f"
	markMissed = "\x1fmissed\x1f"
)

// metOrMissed returns the mark of a sub-goal's verdict, for a goal's text.
func metOrMissed(ok bool) string {
	if ok {
		return markMet
	}
	return markMissed
}

// flushGoals writes the goals of the scenario that has just ended. A non-empty withheld
// says why their verdicts are not given (the machine was loaded during a wall-clock
// scenario); short-mode goals are never judged.
func (r *report) flushGoals(withheld string) {
	judged := strings.NewReplacer(markMet, "met", markMissed, "missed")
	unjudged := strings.NewReplacer(markMet, "not judged", markMissed, "not judged")
	for _, g := range r.pending {
		verdict, text := "**MISSED**", judged.Replace(g.text)
		switch {
		case g.short:
			verdict = "(not checked in -short mode)"
		case withheld != "":
			verdict, text = "verdict **withheld**", fmt.Sprintf("%s. The goal: %s", withheld, unjudged.Replace(g.text))
		case g.met:
			verdict = "**met**"
		}
		r.para("Goal %s: %s", verdict, text)
		r.goals = append(r.goals, fmt.Sprintf("- %s: goal %s", r.section, verdict))
	}
	r.pending = nil
}

// numeric reports whether every cell of column j starts with a digit, a sign or "n/a".
func numeric(rows [][]string, j int) bool {
	if len(rows) == 0 {
		return false
	}
	for _, row := range rows {
		if j >= len(row) || row[j] == "" {
			return false
		}
		c := row[j][0]
		if !('0' <= c && c <= '9' || c == '+' || c == '-' || strings.HasPrefix(row[j], "n/a")) {
			return false
		}
	}
	return true
}

func (r *report) err() error { return r.failed }

// machine describes where the report was made.
func machine() [][]string {
	return [][]string{
		{"Go", runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH},
		{"GOMAXPROCS", fmt.Sprint(runtime.GOMAXPROCS(0))},
		{"NumCPU", fmt.Sprint(runtime.NumCPU())},
		{"CPU", cpuModel()},
		{"load average at start (1, 5, 15 min)", loadAverage()},
	}
}

// load1 returns the 1-minute load average of /proc/loadavg; false when it is unknown.
func load1() (float64, bool) {
	b, err := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if err != nil || len(f) == 0 {
		return 0, false
	}
	x, err := strconv.ParseFloat(f[0], 64)
	return x, err == nil
}

// loaded says why wall-clock timings taken now would say little: the 1-minute load
// average is above the number of CPUs (at when, "the start" or "the end"). It returns ""
// when the machine is not loaded, or when the load is unknown.
func loaded(when string) string {
	x, ok := load1()
	return loadNote(x, ok, runtime.NumCPU(), when)
}

// loadNote is [loaded] for a 1-minute load average of load (known if ok) on cpus CPUs.
func loadNote(load float64, ok bool, cpus int, when string) string {
	if !ok || load <= float64(cpus) {
		return ""
	}
	return fmt.Sprintf("the 1-minute load average was %.2f at %s of the scenario, above the machine's %d CPUs, "+
		"so its wall-clock timings say as much about the other work as about the contenders", load, when, cpus)
}

// loadAverage returns the three load averages of /proc/loadavg, or "unknown".
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) >= 3 {
		return strings.Join(f[:3], ", ")
	}
	return "unknown"
}

// cpuModel returns the first "model name" of /proc/cpuinfo, or "unknown".
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

// versions returns the version of each module the peers name, from the build info.
func versions(peers []Peer) [][]string {
	info, ok := debug.ReadBuildInfo()
	deps := map[string]string{}
	if ok {
		for _, d := range info.Deps {
			v := d.Version
			if v == "(devel)" {
				v = "(devel: this working tree)"
			}
			if d.Replace != nil {
				v = "replaced by " + d.Replace.Path
				if d.Replace.Version != "" {
					v += " " + d.Replace.Version
				}
			}
			deps[d.Path] = v
		}
		if info.Main.Path != "" {
			deps[info.Main.Path] = info.Main.Version
		}
	}
	seen := map[string]bool{}
	var rows [][]string
	for _, p := range peers {
		if p.Module == "" || seen[p.Module] {
			continue
		}
		seen[p.Module] = true
		v, ok := deps[p.Module]
		if !ok {
			v = "unknown (no build info)"
		}
		rows = append(rows, []string{p.Module, v})
	}
	return rows
}
