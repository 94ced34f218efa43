package main

import (
	"encoding/base64"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/faultlinetest"
)

// detailsBin returns the base64 grpc-status-details-bin value of st, as a log shows it.
func detailsBin(st *status.Status) string {
	b, err := proto.Marshal(st.Proto())
	if err != nil {
		panic(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func Example() {
	st := faultlinetest.Status(codes.Unavailable, "runner is restarting",
		faultlinetest.ErrorInfo("cwsandbox.com", "CWSANDBOX_RUNNER_UNAVAILABLE", map[string]string{"runner": "r-7"}),
		faultlinetest.RetryInfo(2*time.Second))
	_ = run([]string{"-method", "/coreweave.sandbox.v1.SandboxService/GetSandbox", detailsBin(st)}, nil, os.Stdout)
	// Output:
	// code:          Unavailable
	// message:       runner is restarting
	// reason:        CWSANDBOX_RUNNER_UNAVAILABLE
	// domain:        cwsandbox.com (trusted)
	// metadata:      runner=r-7
	// retry delay:   2s
	// kind:          SandboxUnavailableError < SandboxNotRunningError < SandboxError < CWSandboxError
	// retried:       yes, after at least 2s (the server's hint)
	// error:         GetSandbox: unavailable: runner is restarting
}

func Example_grpcurlDetails() {
	_ = run([]string{"-code", "InvalidArgument", "-message", "invalid spec",
		`{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"spec.image","description":"must not be empty"}]}`,
		`{"@type":"type.googleapis.com/google.rpc.Help","links":[{"url":"https://example.invalid/docs"}]}`,
	}, nil, os.Stdout)
	// Output:
	// code:          InvalidArgument
	// message:       invalid spec
	// violation:     spec.image: must not be empty
	// other detail:  google.rpc.Help
	// kind:          SandboxValidationError < SandboxError & CWSandboxValidationError < CWSandboxError
	// retried:       no: not a kind the default policy retries
	// error:         invalid argument: invalid spec; field violations: spec.image: must not be empty
}

func TestRunErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"not base64", []string{"%%%"}, "not base64"},
		{"not a status", []string{base64.StdEncoding.EncodeToString([]byte{0xff, 0xff})}, "not a google.rpc.Status"},
		{"bad code", []string{"-code", "Sideways"}, "unknown code"},
		{"bad json", []string{"-code", "Internal", "{"}, "detail"},
		{"two values", []string{"a", "b"}, "want one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := run(tt.args, strings.NewReader(""), new(strings.Builder))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("run(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
		})
	}
}

func TestStdinAndUntrusted(t *testing.T) {
	st := faultlinetest.Status(codes.Internal, "boom",
		faultlinetest.ErrorInfo("evil.example", "CWSANDBOX_BACKEND_UNAVAILABLE", nil))
	var out strings.Builder
	if err := run(nil, strings.NewReader(detailsBin(st)+"\n"), &out); err != nil {
		t.Fatalf("run(stdin) = %v", err)
	}
	for _, want := range []string{"evil.example (not trusted", "kind:          SandboxError <", "retried:       no"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
