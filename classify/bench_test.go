package classify_test

import (
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
)

// benchStatus is the error-path benchmark's status: ErrorInfo with two metadata entries,
// RetryInfo and a BadRequest with one violation.
func benchStatus(tb testing.TB) *status.Status {
	st, err := status.New(codes.Unavailable, "backend is restarting").WithDetails(
		&errdetails.ErrorInfo{Reason: "CWSANDBOX_BACKEND_UNAVAILABLE", Domain: "cwsandbox.com",
			Metadata: map[string]string{"region": "us-east-04", "runner": "r-17"}},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(2 * time.Second)},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "spec.image", Description: "must not be empty"}}},
	)
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

func BenchmarkErrorPath(b *testing.B) {
	err := benchStatus(b).Err()
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
