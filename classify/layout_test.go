package classify_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/faultline-go/faultline/classify"
)

// TestLayoutProbe checks that the start-up probe of grpc-go's Status layout succeeds with
// the grpc version in go.mod, and that a status parsed in place gives its details (that it
// allocates nothing is TestLayoutProbeAllocs, run without -race).
func TestLayoutProbe(t *testing.T) {
	if !classify.InPlace() {
		t.Errorf("InPlace() = false, want true: the layout probe failed with this grpc-go version; " +
			"statuses are deep-copied on every classification")
	}
	st := withDetails(t, codes.Unavailable, "down", retryInfo(2, 0))
	info := classify.Parse(st)
	if !info.HasRetryDelay || info.RetryDelay != 2e9 {
		t.Errorf("Parse(RetryInfo status) = %v, %v, want 2s, true", info.RetryDelay, info.HasRetryDelay)
	}
}
