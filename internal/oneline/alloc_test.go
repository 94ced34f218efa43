//go:build !race

// Without -race only: allocation counts vary under the race detector.

package oneline_test

import (
	"testing"

	"github.com/faultline-go/faultline/internal/oneline"
)

// TestCleanNoAllocation checks that clean text that fits comes back as it is, without an
// allocation: the error text of most failures.
func TestCleanNoAllocation(t *testing.T) {
	for _, s := range []string{"GetSandbox: unavailable: backend restarting (sandbox sb-1)", "héllo 世界", ""} {
		if n := testing.AllocsPerRun(100, func() { _ = oneline.Clean(s, oneline.Max) }); n != 0 {
			t.Errorf("Clean(%q, Max) made %v allocations, want 0", s, n)
		}
	}
}
