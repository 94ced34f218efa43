package main

import (
	"encoding/base64"
	"os"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
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
	st, _ := status.New(codes.Unavailable, "runner is restarting").WithDetails(
		&errdetails.ErrorInfo{Reason: "CWSANDBOX_RUNNER_UNAVAILABLE", Domain: "cwsandbox.com", Metadata: map[string]string{"runner": "r-7"}},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(2 * time.Second)},
	)
	_ = run([]string{"-method", "/coreweave.sandbox.v1.SandboxService/GetSandbox", detailsBin(st)}, nil, os.Stdout, os.Stderr)
	// Output:
	// code:          Unavailable
	// message:       runner is restarting
	// reason:        CWSANDBOX_RUNNER_UNAVAILABLE
	// domain:        cwsandbox.com (trusted)
	// metadata:      runner=r-7
	// retry delay:   2s
	// kind:          SandboxUnavailableError < SandboxNotRunningError < SandboxError < CWSandboxError
	// retried:       yes, after the server's RetryInfo of 2s (plus up to 10%)
	// error:         GetSandbox: unavailable: runner is restarting
}

func Example_grpcurlDetails() {
	_ = run([]string{"-code", "InvalidArgument", "-message", "invalid spec",
		`{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"spec.image","description":"must not be empty"}]}`,
		`{"@type":"type.googleapis.com/google.rpc.Help","links":[{"url":"https://example.invalid/docs"}]}`,
	}, nil, os.Stdout, os.Stderr)
	// Output:
	// code:          InvalidArgument
	// message:       invalid spec
	// violation:     spec.image: must not be empty
	// other detail:  google.rpc.Help
	// kind:          SandboxValidationError < SandboxError & CWSandboxValidationError < CWSandboxError
	// retried:       no: not retryable
	// error:         invalid argument: invalid spec; field violations: spec.image: must not be empty
}

// b64 returns the base64 form of raw bytes.
func b64(raw ...byte) string { return base64.StdEncoding.EncodeToString(raw) }

func TestRun(t *testing.T) {
	const okLine = "An OK status is not a failure: there is nothing to classify or retry.\n"
	retryInfo, err := anypb.New(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})
	if err != nil {
		t.Fatal(err)
	}
	// status.WithDetails refuses an OK status; a proxy can still send one.
	okWithMessage := status.FromProto(&spb.Status{Code: 0, Message: "fine", Details: []*anypb.Any{retryInfo}})
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantStatus int
		wantOut    string // the whole of stdout
		wantErr    string // a part of the one line on stderr ("" wants stderr empty)
	}{
		{name: "ok", args: []string{"CAA="}, wantOut: "code:          OK\n" + okLine},
		{name: "ok on stdin", stdin: "CAA=\n", wantOut: "code:          OK\n" + okLine},
		{name: "ok unpadded", args: []string{"CAA"}, wantOut: "code:          OK\n" + okLine},
		{name: "ok with message and details", args: []string{detailsBin(okWithMessage)},
			wantOut: "code:          OK\nmessage:       fine\n" + okLine},
		{name: "code OK", args: []string{"-code", "OK"}, wantOut: "code:          OK\n" + okLine},
		{name: "code 0", args: []string{"-code", "0", "-message", "done"},
			wantOut: "code:          OK\nmessage:       done\n" + okLine},
		{name: "empty argument", args: []string{""}, wantStatus: 2, wantErr: "empty input"},
		{name: "blank argument", args: []string{" \t "}, wantStatus: 2, wantErr: "empty input"},
		{name: "empty stdin", wantStatus: 2, wantErr: "empty input"},
		{name: "empty line on stdin", stdin: "\nCAA=\n", wantStatus: 2, wantErr: "empty input"},
		{name: "garbage base64", args: []string{"%%%"}, wantStatus: 2, wantErr: "not base64"},
		{name: "garbage base64 on stdin", stdin: "not a status!\n", wantStatus: 2, wantErr: "not base64"},
		{name: "garbage bytes", args: []string{b64(0xff, 0xff)}, wantStatus: 2, wantErr: "not a google.rpc.Status"},
		{name: "zero bytes", args: []string{b64(0, 0, 0)}, wantStatus: 2, wantErr: "not a google.rpc.Status"},
		{name: "bytes with unknown fields", args: []string{b64(0x28, 0x01)}, wantStatus: 2, wantErr: "fields a Status does not have"},
		{name: "text as base64", args: []string{b64([]byte("hello, world")...)}, wantStatus: 2, wantErr: "not a google.rpc.Status"},
		{name: "json without code", args: []string{`{"@type":"type.googleapis.com/google.rpc.RetryInfo"}`}, wantStatus: 2, wantErr: "-code"},
		{name: "json garbage", args: []string{"-code", "Internal", "{"}, wantStatus: 2, wantErr: "detail 1 is not a JSON detail"},
		{name: "json without type", args: []string{"-code", "Internal", `{"retryDelay":"2s"}`}, wantStatus: 2, wantErr: "detail 1 is not a JSON detail"},
		{name: "json unknown type", args: []string{"-code", "Internal", "{}", `{"@type":"type.googleapis.com/no.Such"}`}, wantStatus: 2, wantErr: "detail 2 is not a JSON detail"},
		{name: "bad code", args: []string{"-code", "Sideways"}, wantStatus: 2, wantErr: "unknown code"},
		{name: "two values", args: []string{"a", "b"}, wantStatus: 2, wantErr: "want one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			got := run(tt.args, strings.NewReader(tt.stdin), &stdout, &stderr)
			if got != tt.wantStatus {
				t.Errorf("run(%q) = %d, want %d", tt.args, got, tt.wantStatus)
			}
			if stdout.String() != tt.wantOut {
				t.Errorf("run(%q) wrote to stdout:\n%s\nwant:\n%s", tt.args, stdout.String(), tt.wantOut)
			}
			if tt.wantErr == "" {
				if stderr.Len() != 0 {
					t.Errorf("run(%q) wrote to stderr %q, want nothing", tt.args, stderr.String())
				}
				return
			}
			line, rest, _ := strings.Cut(stderr.String(), "\n")
			if !strings.HasPrefix(line, "explain: ") || !strings.Contains(line, tt.wantErr) || rest != "" {
				t.Errorf("run(%q) wrote to stderr %q, want one line \"explain: ...\" containing %q", tt.args, stderr.String(), tt.wantErr)
			}
		})
	}
}

func TestRunFlags(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantErr    string
	}{
		{"help", []string{"-h"}, 0, "-method"},
		{"unknown flag", []string{"-sideways"}, 2, "flag provided but not defined: -sideways"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			got := run(tt.args, strings.NewReader(""), &stdout, &stderr)
			if got != tt.wantStatus {
				t.Errorf("run(%q) = %d, want %d", tt.args, got, tt.wantStatus)
			}
			if stdout.Len() != 0 {
				t.Errorf("run(%q) wrote to stdout %q, want nothing", tt.args, stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.wantErr) {
				t.Errorf("run(%q) wrote to stderr %q, want it to contain %q", tt.args, stderr.String(), tt.wantErr)
			}
		})
	}
}

func TestStdinAndUntrusted(t *testing.T) {
	st, _ := status.New(codes.Internal, "boom").WithDetails(
		&errdetails.ErrorInfo{Reason: "CWSANDBOX_BACKEND_UNAVAILABLE", Domain: "evil.example"})
	var out, stderr strings.Builder
	if got := run(nil, strings.NewReader(detailsBin(st)+"\n"), &out, &stderr); got != 0 {
		t.Fatalf("run(stdin) = %d, want 0; stderr: %s", got, stderr.String())
	}
	for _, want := range []string{"evil.example (not trusted", "kind:          SandboxError <", "retried:       no"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
