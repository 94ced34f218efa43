package errs_test

import (
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
)

func ExampleNew() {
	stderr := "Traceback (most recent call last):\n  File \"main.py\", line 1, in <module>\nValueError: bad input\n"
	err := errs.New(errs.ErrSandboxExecution, "command failed",
		errs.WithResource(errs.Resource{Operation: "Exec"}),
		errs.WithResource(errs.Resource{SandboxID: "sb-1"}),
		errs.WithExecResult(errs.ExecResult{ExitCode: 1, Stderr: stderr}))

	fmt.Println(err)
	fmt.Println(err.Kind(), status.Code(err))
	fmt.Println(err.ExceptionType(), "|", err.ExceptionMessage())
	// Output:
	// Exec: execution failed: command failed: ValueError: bad input (sandbox sb-1, exit code 1)
	// SandboxExecutionError Unknown
	// ValueError | bad input
}

// A kind matches itself and its ancestors, through wrapping.
func ExampleKind() {
	err := fmt.Errorf("create snapshot: %w",
		errs.New(errs.ErrSnapshotBackendThrottled, "too many snapshots in flight"))

	fmt.Println(errors.Is(err, errs.ErrSnapshotBackendThrottled))
	fmt.Println(errors.Is(err, errs.ErrSandboxUnavailable))
	fmt.Println(errors.Is(err, errs.ErrSandboxNotRunning))
	fmt.Println(errors.Is(err, errs.ErrSandboxSnapshot)) // not a snapshot error
	var e *errs.Error
	if errors.As(err, &e) {
		fmt.Println(e.Kind(), e.Code())
	}
	// Output:
	// true
	// true
	// true
	// false
	// SnapshotBackendThrottledError Unavailable
}

func ExampleKind_Parents() {
	for _, k := range []errs.Kind{errs.ErrCWSandbox, errs.ErrSandboxUnavailable, errs.ErrSandboxValidation} {
		fmt.Println(k, k.Parents())
	}
	// Output:
	// CWSandboxError []
	// SandboxUnavailableError [SandboxNotRunningError]
	// SandboxValidationError [SandboxError CWSandboxValidationError]
}

// A command that failed with a Python traceback: the exception is read from its stderr.
func ExampleWithExecResult() {
	stderr := "Traceback (most recent call last):\n" +
		"  File \"train.py\", line 12, in <module>\n" +
		"    import torch\n" +
		"ModuleNotFoundError: No module named 'torch'\n"
	err := errs.New(errs.ErrSandboxExecution, "command failed",
		errs.WithExecResult(errs.ExecResult{ExitCode: 1, Stderr: stderr}))
	fmt.Printf("%q %q\n", err.ExceptionType(), err.ExceptionMessage())
	crashed := errs.New(errs.ErrSandboxExecution, "command failed",
		errs.WithExecResult(errs.ExecResult{ExitCode: 139, Stderr: "Segmentation fault (core dumped)\n"}))
	fmt.Printf("%q %q\n", crashed.ExceptionType(), crashed.ExceptionMessage())
	// Output:
	// "ModuleNotFoundError" "No module named 'torch'"
	// "" ""
}

// A classified error keeps the failed RPC's status for code that switches on codes.
func ExampleError_GRPCStatus() {
	st := status.New(codes.NotFound, "sandbox sb-1 does not exist")
	err := classify.Classify(st.Err())

	fmt.Println(err)
	got, _ := status.FromError(err)
	fmt.Println(got == st, status.Code(err))
	// Output:
	// sandbox not found: sandbox sb-1 does not exist
	// true NotFound
}
