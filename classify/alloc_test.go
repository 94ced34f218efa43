//go:build !race

// Allocation ceilings are checked without the race detector only: under -race, sync.Pool
// drops a random share of what is put back, so counts vary from run to run. .ci/run runs
// these tests (go test -run Alloc) without -race.

package classify_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
)

// maxErrorPathAllocs pins the error path's cost: classifying benchStatus (ErrorInfo with two
// metadata entries, RetryInfo, BadRequest with one violation) on a sandbox call.
const maxErrorPathAllocs = 8

func TestErrorPathAllocs(t *testing.T) {
	err := benchStatus(t).Err()
	call := classify.Call{Method: "/coreweave.sandbox.v1.SandboxService/GetSandbox", SandboxID: "sb-1"}
	c := classify.New()
	if e := c.Classify(err, call); e.Kind() != errs.ErrSandboxUnavailable {
		t.Fatalf("Classify(benchStatus) = %v, want %v", e.Kind(), errs.ErrSandboxUnavailable)
	}
	got := testing.AllocsPerRun(100, func() { c.Classify(err, call) })
	if got > maxErrorPathAllocs {
		t.Errorf("Classify(benchStatus) allocates %v times per call, want <= %d", got, maxErrorPathAllocs)
	}
}

// TestLayoutProbeAllocs: once the layout probe succeeded (TestLayoutProbe), details are
// read without copying the status: parsing a status whose only detail is a RetryInfo
// allocates nothing.
func TestLayoutProbeAllocs(t *testing.T) {
	st := withDetails(t, codes.Unavailable, "down", retryInfo(2, 0))
	if got := testing.AllocsPerRun(100, func() { _ = classify.Parse(st) }); got != 0 {
		t.Errorf("Parse(RetryInfo status) allocates %v times per call, want 0", got)
	}
}
