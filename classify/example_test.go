package classify_test

import (
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
)

// fileNotFound is an AIP-193 status as the sandbox service sends it.
func fileNotFound() *status.Status {
	return faultlinetest.Status(codes.NotFound, "no such file or directory",
		faultlinetest.ErrorInfo("cwsandbox.com", "CWSANDBOX_FILE_NOT_FOUND",
			map[string]string{"filepath": "/workspace/data.csv"}),
		faultlinetest.RetryInfo(0))
}

func ExampleClassify() {
	err := classify.Classify(fileNotFound().Err())

	fmt.Println(err)
	fmt.Println(err.Kind(), errors.Is(err, errs.ErrSandbox), status.Code(err))
	fmt.Println(err.Reason(), err.Resource().FilePath)
	// Output:
	// file not found: no such file or directory (file /workspace/data.csv)
	// SandboxFileError true NotFound
	// CWSANDBOX_FILE_NOT_FOUND /workspace/data.csv
}

func ExampleClassifier_Classify() {
	st := status.New(codes.NotFound, "sandbox does not exist")
	call := classify.Call{Method: "/coreweave.sandbox.v1.SandboxService/GetSandbox", Resource: errs.Resource{SandboxID: "sb-42"}}

	err := classify.New().Classify(st.Err(), call)
	fmt.Println(err)
	fmt.Println(err.Kind(), err.Resource().SandboxID)
	// Output:
	// GetSandbox: sandbox not found: sandbox does not exist (sandbox sb-42)
	// SandboxNotFoundError sb-42
}

func ExampleNew() {
	c := classify.New(
		// Reasons from this domain may choose the kind too.
		classify.WithTrustedDomains(classify.DefaultDomain, "gateway.example.com"),
		// The gateway's own reason for a busy backend is a transient unavailability.
		classify.WithRule("gateway.example.com", "BACKEND_BUSY", errs.ErrSandboxUnavailable),
		// Errors of this service are discovery errors.
		classify.WithService("example.runners.v1.Runners", errs.ErrDiscovery),
	)

	busy := faultlinetest.Status(codes.Internal, "backend busy",
		faultlinetest.ErrorInfo("gateway.example.com", "BACKEND_BUSY", nil),
		faultlinetest.RetryInfo(2*time.Second))
	err := c.Classify(busy.Err(), classify.Call{Method: "/coreweave.sandbox.v1.SandboxService/Exec"})
	delay, _ := err.RetryDelay()
	fmt.Println(err.Kind(), delay)

	gone := status.New(codes.NotFound, "no such runner")
	err = c.Classify(gone.Err(), classify.Call{Method: "/example.runners.v1.Runners/Get", Resource: errs.Resource{RunnerID: "r-7"}})
	fmt.Println(err.Kind(), err.Resource().RunnerID)
	// Output:
	// SandboxUnavailableError 2s
	// RunnerNotFoundError r-7
}
