package bench

import (
	"bytes"
	"strings"
	"testing"
)

// TestLoadNote: a wall-clock scenario's verdict is withheld when the 1-minute load average
// is above the number of CPUs, and only then.
func TestLoadNote(t *testing.T) {
	tests := []struct {
		load float64
		ok   bool
		cpus int
		want string // "" or a part of the note
	}{
		{1.5, true, 2, ""},
		{2, true, 2, ""},
		{2.01, true, 2, "the 1-minute load average was 2.01 at the end of the scenario, above the machine's 2 CPUs"},
		{12.5, true, 8, "was 12.50 at the end"},
		{99, false, 2, ""}, // unknown load: judged
	}
	for _, tt := range tests {
		got := loadNote(tt.load, tt.ok, tt.cpus, "the end")
		if tt.want == "" && got != "" || tt.want != "" && !strings.Contains(got, tt.want) {
			t.Errorf("loadNote(%v, %v, %d) = %q, want %q", tt.load, tt.ok, tt.cpus, got, tt.want)
		}
	}
}

// TestFlushGoals: a goal's verdict and its sub-goals' verdicts are written when the
// scenario has ended: judged, withheld with the reason (no "met" or "missed" anywhere), or
// not checked in short mode.
func TestFlushGoals(t *testing.T) {
	text := "ratio 0.98 (" + metOrMissed(true) + "), allocs +1 (" + metOrMissed(false) + ")"
	tests := []struct {
		name     string
		met      bool
		short    bool
		withheld string
		want     string
	}{
		{"judged", false, false, "", "Goal **MISSED**: ratio 0.98 (met), allocs +1 (missed)\n"},
		{"met", true, false, "", "Goal **met**: ratio 0.98 (met), allocs +1 (missed)\n"},
		{"withheld", true, false, "the machine was busy",
			"Goal verdict **withheld**: the machine was busy. The goal: ratio 0.98 (not judged), allocs +1 (not judged)\n"},
		{"short", true, true, "the machine was busy", "Goal (not checked in -short mode): ratio 0.98 (met), allocs +1 (missed)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			r := &report{w: &buf, section: "1. S"}
			r.goal(tt.met, tt.short, text)
			if buf.Len() != 0 {
				t.Fatalf("goal wrote %q before flushGoals, want nothing", buf.String())
			}
			r.flushGoals(tt.withheld)
			if got := buf.String(); got != tt.want+"\n" {
				t.Errorf("flushGoals(%q) wrote %q, want %q", tt.withheld, got, tt.want+"\n")
			}
			if len(r.goals) != 1 || !strings.HasPrefix(r.goals[0], "- 1. S: goal ") {
				t.Errorf("goals at a glance = %q, want one line for section 1. S", r.goals)
			}
			if len(r.pending) != 0 {
				t.Errorf("%d goals still pending after flushGoals", len(r.pending))
			}
		})
	}
}
