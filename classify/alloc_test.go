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

// TestLayoutProbe checks that the start-up probe of grpc-go's Status layout succeeds with
// the grpc version in go.mod, and that details are then read without copying the status:
// parsing a status whose only detail is a RetryInfo allocates nothing.
func TestLayoutProbe(t *testing.T) {
	if !classify.InPlace() {
		t.Errorf("InPlace() = false, want true: the layout probe failed with this grpc-go version; " +
			"statuses are deep-copied on every classification")
	}
	st := withDetails(t, codes.Unavailable, "down", retryInfo(2, 0))
	var info errs.Info
	if got := testing.AllocsPerRun(100, func() { info = classify.Parse(st) }); got != 0 {
		t.Errorf("Parse(RetryInfo status) allocates %v times per call, want 0", got)
	}
	if !info.HasRetryDelay || info.RetryDelay != 2e9 {
		t.Errorf("Parse(RetryInfo status) = %v, %v, want 2s, true", info.RetryDelay, info.HasRetryDelay)
	}
}
