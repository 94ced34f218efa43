//go:build !race

// Allocation ceilings are checked without the race detector only: under -race, sync.Pool
// drops a random share of what is put back, so counts vary from run to run. .ci/run runs
// these tests (go test -run Alloc) without -race.

package classify_test

import (
	"testing"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
)

// maxErrorPathAllocs pins the error path's cost: classifying benchStatus (ErrorInfo with two
// metadata entries, RetryInfo, BadRequest with one violation) on a sandbox call. 25 of
// them are status.Details decoding the three details; the others are the violation list,
// the *errs.Error and its message.
const maxErrorPathAllocs = 28

func TestErrorPathAllocs(t *testing.T) {
	err := benchStatus.Err()
	call := classify.Call{Method: "/coreweave.sandbox.v1.SandboxService/GetSandbox", Resource: errs.Resource{SandboxID: "sb-1"}}
	c := classify.New()
	if e := c.Classify(err, call); e.Kind() != errs.ErrSandboxUnavailable {
		t.Fatalf("Classify(benchStatus) = %v, want %v", e.Kind(), errs.ErrSandboxUnavailable)
	}
	got := testing.AllocsPerRun(100, func() { c.Classify(err, call) })
	if got > maxErrorPathAllocs {
		t.Errorf("Classify(benchStatus) allocates %v times per call, want <= %d", got, maxErrorPathAllocs)
	}
}
