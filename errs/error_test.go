package errs_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/details"
)

// view is every observable attribute of an *errs.Error, for comparison with cmp.
type view struct {
	Kind            errs.Kind
	Code            codes.Code
	Error           string
	StatusMessage   string
	Cause           error
	Reason, Domain  string
	Metadata        map[string]string
	RetryDelay      time.Duration
	HasRetryDelay   bool
	FieldViolations []errs.FieldViolation
	Operation       string
	SandboxID       string
	FilePath        string
	SnapshotID      string
	RunnerID        string
	ProfileName     string
	StreamCode      string
	ExecResult      *errs.ExecResult
	ExceptionType   string
	ExceptionMsg    string
}

func viewOf(e *errs.Error) view {
	d, ok := e.RetryDelay()
	return view{
		Kind: e.Kind(), Code: e.Code(), Error: e.Error(), StatusMessage: e.GRPCStatus().Message(),
		Cause: e.Unwrap(), Reason: e.Reason(), Domain: e.Domain(), Metadata: e.Metadata(),
		RetryDelay: d, HasRetryDelay: ok, FieldViolations: e.FieldViolations(),
		Operation: e.Resource().Operation, SandboxID: e.Resource().SandboxID, FilePath: e.Resource().FilePath,
		SnapshotID: e.Resource().SnapshotID, RunnerID: e.Resource().RunnerID, ProfileName: e.Resource().ProfileName,
		StreamCode: e.StreamCode(), ExecResult: e.ExecResult(),
		ExceptionType: e.ExceptionType(), ExceptionMsg: e.ExceptionMessage(),
	}
}

const pyTraceback = "Traceback (most recent call last):\n  File \"main.py\", line 3, in <module>\n    f()\nValueError: bad input\n"

func TestNew(t *testing.T) {
	cause := errors.New("the cause")
	tests := []struct {
		name string
		kind errs.Kind
		msg  string
		opts []errs.Option
		want view
	}{
		{
			name: "no options",
			kind: errs.ErrSandboxExecution, msg: "boom",
			want: view{Kind: errs.ErrSandboxExecution, Code: codes.Unknown, Error: "execution failed: boom"},
		},
		{
			name: "empty message",
			kind: errs.ErrSandboxTerminalStateUnavailable,
			want: view{Kind: errs.ErrSandboxTerminalStateUnavailable, Code: codes.Unknown, Error: "terminal state unavailable"},
		},
		{
			name: "every option",
			kind: errs.ErrSandboxExecution, msg: "command failed",
			opts: []errs.Option{
				errs.WithCode(codes.Internal),
				errs.WithCause(cause),
				errs.WithErrorInfo("example.com", "REASON", map[string]string{"secret": "hunter2"}),
				errs.WithRetryDelay(3 * time.Second),
				errs.WithFieldViolations(errs.FieldViolation{Field: "spec.image", Description: "must not be empty"}),
				errs.WithResource(errs.Resource{Operation: "Exec"}),
				errs.WithResource(errs.Resource{SandboxID: "sb-1"}),
				errs.WithResource(errs.Resource{FilePath: "/tmp/a"}),
				errs.WithResource(errs.Resource{SnapshotID: "fss-1"}),
				errs.WithResource(errs.Resource{RunnerID: "r-1"}),
				errs.WithResource(errs.Resource{ProfileName: "gpu"}),
				errs.WithStreamCode("STREAM_TRUNCATED"),
				errs.WithExecResult(errs.ExecResult{ExitCode: 1, Stdout: "out", Stderr: pyTraceback}),
			},
			want: view{
				Kind: errs.ErrSandboxExecution, Code: codes.Internal, Cause: cause,
				Error: "Exec: execution failed: command failed: ValueError: bad input (sandbox sb-1, file /tmp/a, " +
					"snapshot fss-1, runner r-1, profile gpu, stream code STREAM_TRUNCATED, exit code 1); " +
					"field violations: spec.image: must not be empty",
				Reason: "REASON", Domain: "example.com", Metadata: map[string]string{"secret": "hunter2"},
				RetryDelay: 3 * time.Second, HasRetryDelay: true,
				FieldViolations: []errs.FieldViolation{{Field: "spec.image", Description: "must not be empty"}},
				Operation:       "Exec", SandboxID: "sb-1", FilePath: "/tmp/a", SnapshotID: "fss-1", RunnerID: "r-1",
				ProfileName: "gpu", StreamCode: "STREAM_TRUNCATED",
				ExecResult:    &errs.ExecResult{ExitCode: 1, Stdout: "out", Stderr: pyTraceback},
				ExceptionType: "ValueError", ExceptionMsg: "bad input",
			},
		},
		{
			name: "exec result without traceback",
			kind: errs.ErrSandboxExecution,
			opts: []errs.Option{errs.WithExecResult(errs.ExecResult{ExitCode: 127, Stderr: "sh: foo: not found\n"})},
			want: view{Kind: errs.ErrSandboxExecution, Code: codes.Unknown, Error: "execution failed (exit code 127)",
				ExecResult: &errs.ExecResult{ExitCode: 127, Stderr: "sh: foo: not found\n"}},
		},
		{
			name: "last option wins",
			kind: errs.ErrSandboxNotFound, msg: "gone",
			opts: []errs.Option{errs.WithCode(codes.Internal), errs.WithResource(errs.Resource{SandboxID: "a"}), errs.WithCode(codes.NotFound), errs.WithResource(errs.Resource{SandboxID: "b"})},
			want: view{Kind: errs.ErrSandboxNotFound, Code: codes.NotFound, Error: "sandbox not found: gone (sandbox b)", SandboxID: "b"},
		},
		{
			name: "ErrorInfo without metadata has an empty map",
			kind: errs.ErrSandbox, msg: "m",
			opts: []errs.Option{errs.WithErrorInfo("", "R", nil)},
			want: view{Kind: errs.ErrSandbox, Code: codes.Unknown, Error: "failed: m", Reason: "R", Metadata: map[string]string{}},
		},
		{
			name: "present zero retry delay",
			kind: errs.ErrSandboxUnavailable,
			opts: []errs.Option{errs.WithRetryDelay(0)},
			want: view{Kind: errs.ErrSandboxUnavailable, Code: codes.Unavailable, Error: "unavailable", HasRetryDelay: true},
		},
		{
			name: "negative retry delay kept",
			kind: errs.ErrSandboxUnavailable,
			opts: []errs.Option{errs.WithRetryDelay(-5 * time.Second)},
			want: view{Kind: errs.ErrSandboxUnavailable, Code: codes.Unavailable, Error: "unavailable", RetryDelay: -5 * time.Second, HasRetryDelay: true},
		},
		{
			name: "file kind with a file reason",
			kind: errs.ErrSandboxFile, msg: "no such file",
			opts: []errs.Option{errs.WithErrorInfo("cwsandbox.com", "CWSANDBOX_FILE_NOT_FOUND", nil), errs.WithResource(errs.Resource{Operation: "ReadFile"}), errs.WithResource(errs.Resource{FilePath: "/etc/x"})},
			want: view{Kind: errs.ErrSandboxFile, Code: codes.Unknown, Error: "ReadFile: file operation failed: no such file (file /etc/x)",
				Reason: "CWSANDBOX_FILE_NOT_FOUND", Domain: "cwsandbox.com", Metadata: map[string]string{}, Operation: "ReadFile", FilePath: "/etc/x"},
		},
		{
			name: "invalid kind is the base",
			kind: errs.Kind(0), msg: "m",
			want: view{Kind: errs.ErrCWSandbox, Code: codes.Unknown, Error: "failed: m"},
		},
		{
			name: "out of range kind is the base",
			kind: errs.Kind(200), msg: "m",
			want: view{Kind: errs.ErrCWSandbox, Code: codes.Unknown, Error: "failed: m"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := errs.New(tc.kind, tc.msg, tc.opts...)
			tc.want.StatusMessage = tc.msg // the status carries the raw message; Error() renders
			if diff := cmp.Diff(tc.want, viewOf(e), cmpopts.EquateErrors()); diff != "" {
				t.Errorf("New(%v, %q, ...) differs (-want +got):\n%s", tc.kind, tc.msg, diff)
			}
			if got := e.Message(); got != tc.msg {
				t.Errorf("Message() = %q, want the message given, %q", got, tc.msg)
			}
			if got := status.Code(e); got != tc.want.Code {
				t.Errorf("status.Code(New(%v)) = %v, want %v", tc.kind, got, tc.want.Code)
			}
			if tc.want.Cause != nil && !errors.Is(e, tc.want.Cause) {
				t.Errorf("errors.Is(New(%v, WithCause(c)), c) = false, want true", tc.kind)
			}
			if !errors.Is(e, tc.want.Kind) {
				t.Errorf("errors.Is(New(%v), %v) = false, want true", tc.kind, tc.want.Kind)
			}
		})
	}
}

// TestNewCopies checks that options copy their arguments and accessors return copies.
func TestNewCopies(t *testing.T) {
	md := map[string]string{"k": "v"}
	fv := []errs.FieldViolation{{Field: "f", Description: "d"}}
	e := errs.New(errs.ErrSandboxExecution, "m",
		errs.WithErrorInfo("d", "R", md), errs.WithFieldViolations(fv...),
		errs.WithExecResult(errs.ExecResult{ExitCode: 3}))
	md["k"], fv[0].Field = "changed", "changed"
	e.Metadata()["k"] = "changed"
	e.FieldViolations()[0].Field = "changed"
	e.ExecResult().ExitCode = 9
	if got := e.Metadata()["k"]; got != "v" {
		t.Errorf("Metadata()[k] = %q, want %q", got, "v")
	}
	if got := e.FieldViolations()[0].Field; got != "f" {
		t.Errorf("FieldViolations()[0].Field = %q, want %q", got, "f")
	}
	if got := e.ExecResult().ExitCode; got != 3 {
		t.Errorf("ExecResult().ExitCode = %d, want 3", got)
	}
	if got := errs.New(errs.ErrSandbox, "m").Metadata(); got != nil {
		t.Errorf("Metadata() without ErrorInfo = %v, want nil", got)
	}
}

// TestNewDefaultCode pins the code each kind's client-made errors get without WithCode.
func TestNewDefaultCode(t *testing.T) {
	want := map[errs.Kind]codes.Code{
		errs.ErrCWSandbox:                       codes.Unknown,
		errs.ErrCWSandboxAuthentication:         codes.Unauthenticated,
		errs.ErrCWSandboxValidation:             codes.InvalidArgument,
		errs.ErrSandbox:                         codes.Unknown,
		errs.ErrSandboxValidation:               codes.InvalidArgument,
		errs.ErrSandboxNotRunning:               codes.FailedPrecondition,
		errs.ErrSandboxUnavailable:              codes.Unavailable,
		errs.ErrSnapshotBackendThrottled:        codes.Unavailable,
		errs.ErrSandboxTimeout:                  codes.DeadlineExceeded,
		errs.ErrSandboxRequestTimeout:           codes.DeadlineExceeded,
		errs.ErrSandboxCommandTimeout:           codes.DeadlineExceeded,
		errs.ErrSnapshotWaitTimeout:             codes.DeadlineExceeded,
		errs.ErrSandboxTerminated:               codes.FailedPrecondition,
		errs.ErrSandboxFailed:                   codes.Internal,
		errs.ErrSandboxNotFound:                 codes.NotFound,
		errs.ErrSandboxExecution:                codes.Unknown,
		errs.ErrSandboxStreamBackpressure:       codes.ResourceExhausted,
		errs.ErrSandboxStreamTruncated:          codes.DataLoss,
		errs.ErrSandboxFile:                     codes.Unknown,
		errs.ErrSandboxResourceExhausted:        codes.ResourceExhausted,
		errs.ErrSandboxTerminalStateUnavailable: codes.Unknown,
		errs.ErrSandboxSnapshot:                 codes.Unknown,
		errs.ErrSnapshotNotFound:                codes.NotFound,
		errs.ErrSnapshotNotReady:                codes.FailedPrecondition,
		errs.ErrSnapshotNotSupported:            codes.FailedPrecondition,
		errs.ErrSnapshotSizeExceeded:            codes.FailedPrecondition,
		errs.ErrSnapshotQuotaExceeded:           codes.ResourceExhausted,
		errs.ErrSnapshotBucketMismatch:          codes.FailedPrecondition,
		errs.ErrSnapshotOnStopConflict:          codes.FailedPrecondition,
		errs.ErrDiscovery:                       codes.Unknown,
		errs.ErrDiscoveryValidation:             codes.InvalidArgument,
		errs.ErrRunnerNotFound:                  codes.NotFound,
		errs.ErrProfileNotFound:                 codes.NotFound,
		errs.ErrFunction:                        codes.Unknown,
		errs.ErrAsyncFunction:                   codes.InvalidArgument,
		errs.ErrFunctionSerialization:           codes.InvalidArgument,
	}
	for _, c := range taxonomy {
		t.Run(c.name, func(t *testing.T) {
			e := errs.New(c.kind, "m")
			if got := e.Code(); got != want[c.kind] {
				t.Errorf("New(%v).Code() = %v, want %v", c.kind, got, want[c.kind])
			}
			st := e.GRPCStatus()
			if st == nil {
				t.Fatalf("New(%v).GRPCStatus() = nil, want a status", c.kind)
			}
			if st.Code() != want[c.kind] || st.Message() != "m" {
				t.Errorf("New(%v).GRPCStatus() = %v, %q, want %v, %q", c.kind, st.Code(), st.Message(), want[c.kind], "m")
			}
			if got, ok := status.FromError(e); !ok || got != st {
				t.Errorf("status.FromError(New(%v)) = %p, %v, want %p, true", c.kind, got, ok, st)
			}
		})
	}
}

func TestFromStatus(t *testing.T) {
	cause := errors.New("dial tcp: connection refused")
	st := status.New(codes.Unavailable, "backend is restarting")
	tests := []struct {
		name      string
		kind      errs.Kind
		st        *status.Status
		cause     error
		res       errs.Resource
		wantKind  errs.Kind
		wantCode  codes.Code
		wantError string
		wantCause error
	}{
		{"status and cause", errs.ErrSandboxUnavailable, st, cause, errs.Resource{Operation: "GetSandbox", SandboxID: "sb-1"},
			errs.ErrSandboxUnavailable, codes.Unavailable, "GetSandbox: unavailable: backend is restarting (sandbox sb-1)", cause},
		{"status without cause unwraps to the status error", errs.ErrSandboxUnavailable, st, nil, errs.Resource{},
			errs.ErrSandboxUnavailable, codes.Unavailable, "unavailable: backend is restarting", st.Err()},
		{"nil status", errs.ErrSandbox, nil, cause, errs.Resource{},
			errs.ErrSandbox, codes.Unknown, "failed: dial tcp: connection refused", cause},
		{"invalid kind", errs.Kind(0), st, nil, errs.Resource{},
			errs.ErrCWSandbox, codes.Unavailable, "unavailable: backend is restarting", st.Err()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := errs.FromStatus(tc.kind, tc.st, tc.cause, details.Info{}, tc.res)
			if e.Kind() != tc.wantKind || e.Code() != tc.wantCode || e.Error() != tc.wantError {
				t.Errorf("FromStatus(%v, %v) = %v, %v, %q, want %v, %v, %q",
					tc.kind, tc.st, e.Kind(), e.Code(), e.Error(), tc.wantKind, tc.wantCode, tc.wantError)
			}
			if !errors.Is(e.Unwrap(), tc.wantCause) {
				t.Errorf("FromStatus(%v, %v).Unwrap() = %v, want %v", tc.kind, tc.st, e.Unwrap(), tc.wantCause)
			}
			if e.GRPCStatus() == nil {
				t.Errorf("FromStatus(%v, %v).GRPCStatus() = nil, want a status", tc.kind, tc.st)
			}
			if tc.st != nil && e.GRPCStatus() != tc.st {
				t.Errorf("FromStatus(%v, st).GRPCStatus() = %p, want st %p", tc.kind, e.GRPCStatus(), tc.st)
			}
		})
	}
	t.Run("nil status and nil cause", func(t *testing.T) {
		e := errs.FromStatus(errs.ErrSandbox, nil, nil, details.Info{}, errs.Resource{})
		if e.Code() != codes.Unknown || e.GRPCStatus() == nil || e.Error() != "failed" {
			t.Errorf("FromStatus(ErrSandbox, nil, nil) = %v, %v, %q, want Unknown, a status, %q", e.Code(), e.GRPCStatus(), e.Error(), "failed")
		}
	})
}

// TestPhrases checks the words messages use for each code on the family base kinds and for
// the kinds whose phrase depends on the code or the reason.
func TestPhrases(t *testing.T) {
	tests := []struct {
		kind   errs.Kind
		code   codes.Code
		reason string
		want   string
	}{
		{errs.ErrSandbox, codes.Canceled, "", "cancelled"},
		{errs.ErrSandbox, codes.Unknown, "", "failed"},
		{errs.ErrSandbox, codes.InvalidArgument, "", "invalid argument"},
		{errs.ErrSandbox, codes.DeadlineExceeded, "", "timed out"},
		{errs.ErrSandbox, codes.NotFound, "", "not found"},
		{errs.ErrSandbox, codes.AlreadyExists, "", "already exists"},
		{errs.ErrSandbox, codes.PermissionDenied, "", "permission denied"},
		{errs.ErrSandbox, codes.ResourceExhausted, "", "resource exhausted"},
		{errs.ErrSandbox, codes.FailedPrecondition, "", "failed precondition"},
		{errs.ErrSandbox, codes.Aborted, "", "aborted"},
		{errs.ErrSandbox, codes.OutOfRange, "", "out of range"},
		{errs.ErrSandbox, codes.Unimplemented, "", "unimplemented"},
		{errs.ErrSandbox, codes.Internal, "", "internal error"},
		{errs.ErrDiscovery, codes.Unavailable, "", "unavailable"},
		{errs.ErrCWSandbox, codes.DataLoss, "", "data loss"},
		{errs.ErrCWSandbox, codes.Unauthenticated, "", "authentication failed"},
		{errs.ErrCWSandbox, codes.Code(99), "", "failed (code 99)"},
		{errs.ErrCWSandboxAuthentication, codes.Unauthenticated, "", "authentication failed"},
		{errs.ErrCWSandboxAuthentication, codes.PermissionDenied, "", "permission denied"},
		{errs.ErrSandboxNotRunning, codes.Canceled, "", "cancelled"},
		{errs.ErrSandboxNotRunning, codes.FailedPrecondition, "", "sandbox not running"},
		{errs.ErrSandboxUnavailable, codes.Unavailable, "", "unavailable"},
		{errs.ErrSandboxRequestTimeout, codes.DeadlineExceeded, "", "timed out"},
		{errs.ErrSandboxResourceExhausted, codes.ResourceExhausted, "", "resource exhausted"},
		{errs.ErrSandboxNotFound, codes.NotFound, "", "sandbox not found"},
		// errs knows no server reasons: the classifier says what a file reason means.
		{errs.ErrSandboxFile, codes.NotFound, "CWSANDBOX_FILE_NOT_FOUND", "file operation failed"},
		{errs.ErrSandboxFile, codes.Unknown, "OTHER", "file operation failed"},
		{errs.ErrSandboxValidation, codes.InvalidArgument, "", "invalid argument"},
	}
	for _, tc := range tests {
		t.Run(tc.kind.String()+"/"+tc.code.String()+"/"+tc.reason, func(t *testing.T) {
			e := errs.FromStatus(tc.kind, status.New(tc.code, ""), nil, details.Info{Reason: tc.reason}, errs.Resource{})
			if got := e.Error(); got != tc.want {
				t.Errorf("FromStatus(%v, %v, reason %q).Error() = %q, want %q", tc.kind, tc.code, tc.reason, got, tc.want)
			}
		})
	}
}

func TestOtherDetails(t *testing.T) {
	quota := &errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{Subject: "project", Description: "over"}}}
	debug := &errdetails.DebugInfo{Detail: "stack"}
	help := &errdetails.Help{Links: []*errdetails.Help_Link{{Description: "docs", Url: "https://example.com"}}}
	unknown := &anypb.Any{TypeUrl: "type.googleapis.com/example.Unknown", Value: []byte("\x08\x01")}
	garbage := &anypb.Any{TypeUrl: "type.googleapis.com/google.rpc.QuotaFailure", Value: []byte("\x0a\x05")}
	other := []proto.Message{quota, debug, help, unknown, garbage}
	// The status holds details that OtherDetails must not decode: only Info.Other counts.
	st := faultlinetest.Status(codes.Internal, "", faultlinetest.ErrorInfo("", "R", nil), quota, debug)
	tests := []struct {
		name string
		e    *errs.Error
		want []proto.Message
	}{
		{"FromStatus with Other", errs.FromStatus(errs.ErrSandbox, st, nil, details.Info{Other: other}, errs.Resource{}), other},
		{"FromStatus without Other", errs.FromStatus(errs.ErrSandbox, st, nil, details.Info{}, errs.Resource{}), nil},
		{"New", errs.New(errs.ErrSandbox, "m"), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.e.OtherDetails()
			if diff := cmp.Diff(tc.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("OtherDetails() differs (-want +got):\n%s", diff)
			}
			if len(got) == 0 {
				return
			}
			// The caller owns what it got: changing it changes neither the error nor Other.
			got[0].(*errdetails.QuotaFailure).Violations[0].Subject = "changed"
			got[3] = nil
			if diff := cmp.Diff(tc.want, tc.e.OtherDetails(), protocmp.Transform()); diff != "" {
				t.Errorf("OtherDetails() after changing an earlier result differs (-want +got):\n%s", diff)
			}
			if quota.Violations[0].Subject != "project" {
				t.Errorf("changing OtherDetails()[0] changed Info.Other: subject %q, want %q", quota.Violations[0].Subject, "project")
			}
		})
	}
}

// TestErrorHostile checks that Error() stays one bounded line for hostile input in every
// attribute that reaches the message.
func TestErrorHostile(t *testing.T) {
	huge := strings.Repeat("x", 1<<20)
	control := "a\nb\rc\td\x00e\x1bf\x7fg\u0085h\u2028i\u2029j"
	invalid := "\xff\xfe\xc3(\xe2\x82" + strings.Repeat("\xf0\x9f\x98", 400)
	many := make([]errs.FieldViolation, 10000)
	for i := range many {
		many[i] = errs.FieldViolation{Field: "f\n" + huge[:100], Description: "d\r" + invalid}
	}
	multibyte := strings.Repeat("é", 600) // two bytes each
	tests := []struct {
		name string
		msg  string
		opts []errs.Option
	}{
		{"1 MiB message", huge, nil},
		{"control characters", control, []errs.Option{errs.WithResource(errs.Resource{Operation: control}), errs.WithResource(errs.Resource{SandboxID: control})}},
		{"invalid UTF-8", invalid, []errs.Option{errs.WithResource(errs.Resource{FilePath: invalid}), errs.WithResource(errs.Resource{Operation: invalid})}},
		{"10k violations", "m", []errs.Option{errs.WithFieldViolations(many...)}},
		{"multibyte at every cut", multibyte, []errs.Option{errs.WithResource(errs.Resource{SandboxID: multibyte}), errs.WithResource(errs.Resource{FilePath: multibyte}),
			errs.WithResource(errs.Resource{SnapshotID: multibyte}), errs.WithResource(errs.Resource{RunnerID: multibyte}), errs.WithResource(errs.Resource{ProfileName: multibyte}), errs.WithStreamCode(multibyte)}},
		{"everything huge", huge, []errs.Option{
			errs.WithResource(errs.Resource{Operation: huge}), errs.WithResource(errs.Resource{SandboxID: huge}), errs.WithResource(errs.Resource{FilePath: huge}), errs.WithResource(errs.Resource{SnapshotID: huge}),
			errs.WithResource(errs.Resource{RunnerID: huge}), errs.WithResource(errs.Resource{ProfileName: huge}), errs.WithStreamCode(huge), errs.WithExecResult(errs.ExecResult{Stderr: "Traceback (most recent call last):\n" + huge + ": " + huge}),
			errs.WithExecResult(errs.ExecResult{ExitCode: -1, Stdout: huge, Stderr: huge}), errs.WithFieldViolations(many...)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, k := range errs.Kinds() {
				e := errs.New(k, tc.msg, tc.opts...)
				checkLine(t, "New("+k.String()+")", e.Error())
				if e.GRPCStatus().Message() != tc.msg {
					t.Errorf("New(%v).GRPCStatus().Message() differs from the message given", k)
				}
				st := status.New(codes.Internal, tc.msg)
				checkLine(t, "FromStatus("+k.String()+")", errs.FromStatus(k, st, nil, details.Info{Violations: violations(many)}, errs.Resource{Operation: tc.msg}).Error())
			}
		})
	}
	// Every length around the bound, in one- to four-byte runes and invalid bytes.
	for _, unit := range []string{"a", "é", "€", "😀", "\xff", "\n"} {
		for n := 900; n <= 1100; n++ {
			s := strings.Repeat(unit, n/len(unit)+1)[:n]
			checkLine(t, "New(message of "+unit+")", errs.New(errs.ErrSandbox, s, errs.WithResource(errs.Resource{SandboxID: s})).Error())
		}
	}
}

// TestMetadataNeverPrinted checks that ErrorInfo metadata reaches no message.
func TestMetadataNeverPrinted(t *testing.T) {
	md := map[string]string{"token": "SECRET-VALUE", "SECRET-KEY": "v", "filepath": "SECRET-PATH"}
	for _, k := range errs.Kinds() {
		t.Run(k.String(), func(t *testing.T) {
			st := faultlinetest.Status(codes.Internal, "server message", faultlinetest.ErrorInfo("d", "R", md),
				&errdetails.DebugInfo{Detail: "SECRET-DEBUG"})
			for _, e := range []*errs.Error{
				errs.New(k, "m", errs.WithErrorInfo("cwsandbox.com", "CWSANDBOX_FILE_NOT_FOUND", md)),
				errs.FromStatus(k, st, nil, details.Info{Reason: "CWSANDBOX_FILE_NOT_FOUND", Domain: "cwsandbox.com", Metadata: md}, errs.Resource{}),
			} {
				if got := e.Error(); strings.Contains(got, "SECRET") {
					t.Errorf("%v.Error() = %q, want no metadata or debug detail", k, got)
				}
			}
		})
	}
}

// checkLine checks that s is one valid UTF-8 line of at most 1 KiB.
func checkLine(t *testing.T, what, s string) {
	t.Helper()
	if len(s) > 1024 {
		t.Errorf("%s.Error() is %d bytes, want <= 1024", what, len(s))
	}
	if strings.ContainsAny(s, "\n\r\u0085\u2028\u2029") {
		t.Errorf("%s.Error() = %q, want one line", what, s)
	}
	if !utf8.ValidString(s) {
		t.Errorf("%s.Error() = %q, want valid UTF-8", what, s)
	}
}

func TestNewNeverOK(t *testing.T) {
	e := errs.New(errs.ErrSandboxFailed, "boom", errs.WithCode(codes.OK))
	if got := status.Code(e); got != codes.Unknown {
		t.Errorf("status.Code(New(..., WithCode(OK))) = %v, want %v", got, codes.Unknown)
	}
}

// grpc-go turns details that contradict grpc-status into an Internal status whose message
// dumps the details, ErrorInfo metadata included; the error must not print that dump.
func TestDetailsMismatchWithheld(t *testing.T) {
	msg := `grpc-status-details-bin mismatch: grpc-status=Unavailable, grpc-message="", grpc-status-details-bin=code:5 details:{metadata:{key:"t" value:"s3cret"}}`
	e := errs.FromStatus(errs.ErrSandbox, status.New(codes.Internal, msg), nil, details.Info{}, errs.Resource{})
	for _, s := range []string{e.Error(), fmt.Sprintf("%+v", e), fmt.Sprintf("%#v", e)} {
		if strings.Contains(s, "s3cret") || !strings.Contains(s, "details withheld") {
			t.Errorf("rendering = %q, want the details withheld", s)
		}
	}
}

func TestGoStringHidesMetadata(t *testing.T) {
	e := errs.New(errs.ErrSandboxUnavailable, "down", errs.WithErrorInfo("cwsandbox.com", "R", map[string]string{"k": "s3cret"}))
	if s := fmt.Sprintf("%#v", e); strings.Contains(s, "s3cret") || !strings.Contains(s, "SandboxUnavailableError") {
		t.Errorf("%%#v = %q, want the kind and no metadata", s)
	}
}

// violations converts field violations to the parser's form.
func violations(v []errs.FieldViolation) []details.Violation {
	out := make([]details.Violation, len(v))
	for i, fv := range v {
		out[i] = details.Violation(fv)
	}
	return out
}
