package classify_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
)

// benchStatus is the error-path benchmark's status: ErrorInfo with two metadata entries,
// RetryInfo and a BadRequest with one violation.
var benchStatus = faultlinetest.Status(codes.Unavailable, "backend is restarting",
	faultlinetest.ErrorInfo("cwsandbox.com", "CWSANDBOX_BACKEND_UNAVAILABLE",
		map[string]string{"region": "us-east-04", "runner": "r-17"}),
	faultlinetest.RetryInfo(2*time.Second),
	faultlinetest.BadRequest(faultlinetest.FieldViolation("spec.image", "must not be empty")))

func BenchmarkErrorPath(b *testing.B) {
	err := benchStatus.Err()
	call := classify.Call{Method: "/coreweave.sandbox.v1.SandboxService/GetSandbox", Resource: errs.Resource{SandboxID: "sb-1"}}
	c := classify.New()
	b.Run("impl=faultline", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if e := c.Classify(err, call); e == nil {
				b.Fatal("nil")
			}
		}
	})
	b.Run("impl=status.FromError+Details", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			st, _ := status.FromError(err)
			if len(st.Details()) != 3 {
				b.Fatal("details")
			}
		}
	})
}
