package bench_test

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/faultline-go/faultline/bench"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRunShort runs every scenario in short mode (seconds, no goals checked), so that the
// harness keeps building and running against the current library and peers: each must
// finish without error and print its section with a row for every contender it covers.
func TestRunShort(t *testing.T) {
	everyone := []string{"| faultline |", "| go-grpc-middleware retry |", "| grpc-go service config |", "| gax-go Invoke |"}
	tests := []struct {
		scenario string
		want     []string // lines or cells the section must contain
	}{
		{"success", append([]string{"## 1. Success path", "| none |", "| no-op interceptor |", "Unary GetSandbox over TCP loopback", "Server-streaming StreamLogs"}, everyone...)},
		{"decode", []string{"## 2. Error-path decoding", "| status.FromError + Details() |", "| faultline classify.Classify -> *errs.Error |", "| gax-go apierror.FromError |"}},
		{"retryinfo", append([]string{"## 3. RetryInfo fidelity", "### RetryInfo 50ms", "### RetryInfo 500ms", "| failsafe-go |"}, everyone...)},
		{"deadline", append([]string{"## 4. Deadline honesty", "| none |", "| failsafe-go |"}, everyone...)},
		{"overload", append([]string{"## 5. Overload amplification", "### Rejections without RetryInfo", "### Rejections with RetryInfo 250ms", "| faultline, no budget |"}, everyone...)},
		{"outage", append([]string{"## 6. Outage recovery", "| none |"}, everyone...)},
	}
	// The virtual-time scenarios have tests of their own (virtual_test.go).
	covered := []string{bench.ScenarioFleet, bench.ScenarioRestart, bench.ScenarioTails, bench.ScenarioProxy}
	for _, tt := range tests {
		covered = append(covered, tt.scenario)
	}
	slices.Sort(covered)
	if all := slices.Sorted(slices.Values(bench.Scenarios())); !slices.Equal(covered, all) {
		t.Fatalf("TestRunShort and the virtual-time tests cover %v, bench.Scenarios() is %v", covered, all)
	}
	for _, tt := range tests {
		t.Run(tt.scenario, func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			var out bytes.Buffer
			if err := bench.Run(ctx, &out, bench.Config{Short: true, Scenarios: []string{tt.scenario}}); err != nil {
				t.Fatalf("Run(short, %s) = %v, want nil; report so far:\n%s", tt.scenario, err, out.String())
			}
			report := out.String()
			for _, w := range append([]string{"## Machine", "## Versions", "Goal (not checked in -short mode)"}, tt.want...) {
				if tt.scenario == "outage" && strings.HasPrefix(w, "Goal") {
					continue // the outage scenario reports figures, not a goal
				}
				if !strings.Contains(report, w) {
					t.Errorf("Run(short, %s) report lacks %q; report:\n%s", tt.scenario, w, report)
				}
			}
		})
	}
}

func TestRunUnknownScenario(t *testing.T) {
	var out bytes.Buffer
	err := bench.Run(context.Background(), &out, bench.Config{Short: true, Scenarios: []string{"decode", "nope"}})
	if err == nil || !strings.Contains(err.Error(), `"nope"`) {
		t.Errorf(`Run(scenarios decode, nope) = %v, want an error naming "nope"`, err)
	}
	if out.Len() != 0 {
		t.Errorf("Run(scenarios decode, nope) wrote %d bytes, want none (nothing runs)", out.Len())
	}
}
