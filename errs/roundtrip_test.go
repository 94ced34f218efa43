package errs_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
)

// facts is what must survive errs.New -> GRPCStatus -> the wire -> classify.Classify.
type facts struct {
	Kind       errs.Kind
	Code       codes.Code
	Reason     string
	Domain     string
	Metadata   map[string]string
	Delay      time.Duration
	HasDelay   bool
	Violations []errs.FieldViolation
	FilePath   string // from metadata["filepath"], for file errors only
}

func factsOf(e *errs.Error) facts {
	d, ok := e.RetryDelay()
	return facts{Kind: e.Kind(), Code: e.Code(), Reason: e.Reason(), Domain: e.Domain(), Metadata: e.Metadata(),
		Delay: d, HasDelay: ok, Violations: e.FieldViolations(), FilePath: e.Resource().FilePath}
}

// roundTripRows says, for every kind, how a server would say it (the kind's natural code,
// or another code, or a reason under the trusted domain) and which kind classify.Classify,
// without call context (a sandbox call), gives back. Where that is not the kind, why says
// why: the classifier names what a code and a trusted reason tell it, and
//   - some kinds are detected by client code only (an exec result, a stream's in-band code,
//     a missing terminal state, function errors): no code or reason names them;
//   - without call context the call is a sandbox call, so the discovery and generic families
//     come back as their sandbox counterparts (TestRoundTripFamilies gives them the call);
//   - SandboxTimeoutError is only a parent: DEADLINE_EXCEEDED is the request's own timeout.
//
// wantViolations is the kind when field violations are added (zero: want): INVALID_ARGUMENT
// with violations is a validation error.
var roundTripRows = []struct {
	kind           errs.Kind
	code           codes.Code // 0: the kind's natural code
	reason         string     // a reason under classify.DefaultDomain that chooses the kind
	want           errs.Kind
	wantViolations errs.Kind
	why            string
}{
	{kind: errs.ErrCWSandbox, want: errs.ErrSandbox, why: "no call context: the sandbox family's base"},
	{kind: errs.ErrCWSandboxAuthentication, want: errs.ErrCWSandboxAuthentication},
	{kind: errs.ErrCWSandboxValidation, want: errs.ErrSandbox, wantViolations: errs.ErrSandboxValidation,
		why: "no call context: the sandbox family; INVALID_ARGUMENT without violations is its base"},
	{kind: errs.ErrSandbox, want: errs.ErrSandbox},
	{kind: errs.ErrSandboxValidation, want: errs.ErrSandbox, wantViolations: errs.ErrSandboxValidation,
		why: "INVALID_ARGUMENT without violations is not a validation error"},
	{kind: errs.ErrSandboxNotRunning, code: codes.Canceled, want: errs.ErrSandboxNotRunning},
	{kind: errs.ErrSandboxUnavailable, want: errs.ErrSandboxUnavailable},
	{kind: errs.ErrSnapshotBackendThrottled, reason: "CWSANDBOX_FSS_BACKEND_THROTTLED", want: errs.ErrSnapshotBackendThrottled},
	{kind: errs.ErrSandboxTimeout, want: errs.ErrSandboxRequestTimeout, why: "a parent only: DEADLINE_EXCEEDED is the request's timeout"},
	{kind: errs.ErrSandboxRequestTimeout, want: errs.ErrSandboxRequestTimeout},
	{kind: errs.ErrSandboxCommandTimeout, reason: "CWSANDBOX_COMMAND_TIMEOUT", want: errs.ErrSandboxCommandTimeout},
	{kind: errs.ErrSnapshotWaitTimeout, reason: "CWSANDBOX_FSS_WAIT_TIMEOUT", want: errs.ErrSnapshotWaitTimeout},
	{kind: errs.ErrSandboxTerminated, want: errs.ErrSandbox, why: "client-only: no code or reason says terminated"},
	{kind: errs.ErrSandboxFailed, want: errs.ErrSandbox, why: "client-only: INTERNAL is the base"},
	{kind: errs.ErrSandboxNotFound, want: errs.ErrSandboxNotFound},
	{kind: errs.ErrSandboxExecution, want: errs.ErrSandbox, why: "client-only: an exec result is not a detail"},
	{kind: errs.ErrSandboxStreamBackpressure, want: errs.ErrSandboxResourceExhausted,
		why: "client-only: the stream code is in-band, not a reason; RESOURCE_EXHAUSTED says the rest"},
	{kind: errs.ErrSandboxStreamTruncated, want: errs.ErrSandbox, why: "client-only: the stream code is in-band, not a reason"},
	{kind: errs.ErrSandboxFile, reason: "CWSANDBOX_FILE_NOT_FOUND", want: errs.ErrSandboxFile},
	{kind: errs.ErrSandboxResourceExhausted, want: errs.ErrSandboxResourceExhausted},
	{kind: errs.ErrSandboxTerminalStateUnavailable, want: errs.ErrSandbox, why: "client-only: detected after stop"},
	{kind: errs.ErrSandboxSnapshot, reason: "CWSANDBOX_FSS_CREATE_FAILED", want: errs.ErrSandboxSnapshot},
	{kind: errs.ErrSnapshotNotFound, reason: "CWSANDBOX_FSS_NOT_FOUND", want: errs.ErrSnapshotNotFound},
	{kind: errs.ErrSnapshotNotReady, reason: "CWSANDBOX_FSS_NOT_READY", want: errs.ErrSnapshotNotReady},
	{kind: errs.ErrSnapshotNotSupported, reason: "CWSANDBOX_FSS_NOT_SUPPORTED", want: errs.ErrSnapshotNotSupported},
	{kind: errs.ErrSnapshotSizeExceeded, reason: "CWSANDBOX_FSS_SIZE_EXCEEDED", want: errs.ErrSnapshotSizeExceeded},
	{kind: errs.ErrSnapshotQuotaExceeded, reason: "CWSANDBOX_FSS_QUOTA_EXCEEDED", want: errs.ErrSnapshotQuotaExceeded},
	{kind: errs.ErrSnapshotBucketMismatch, reason: "CWSANDBOX_FSS_BUCKET_MISMATCH", want: errs.ErrSnapshotBucketMismatch},
	{kind: errs.ErrSnapshotOnStopConflict, want: errs.ErrSandbox, why: "client-only: no reason names it"},
	{kind: errs.ErrDiscovery, want: errs.ErrSandbox, why: "no call context: the sandbox family's base"},
	{kind: errs.ErrDiscoveryValidation, want: errs.ErrSandbox, wantViolations: errs.ErrSandboxValidation,
		why: "no call context: the sandbox family's validation"},
	{kind: errs.ErrRunnerNotFound, reason: "CWSANDBOX_RUNNER_NOT_FOUND", want: errs.ErrSandbox,
		why: "a missing runner is not a missing sandbox: on a sandbox call it is the base"},
	{kind: errs.ErrProfileNotFound, want: errs.ErrSandboxNotFound, why: "no reason names it: NOT_FOUND on a sandbox call"},
	{kind: errs.ErrFunction, want: errs.ErrSandbox, why: "client-only"},
	{kind: errs.ErrAsyncFunction, want: errs.ErrSandbox, wantViolations: errs.ErrSandboxValidation, why: "client-only"},
	{kind: errs.ErrFunctionSerialization, want: errs.ErrSandbox, wantViolations: errs.ErrSandboxValidation, why: "client-only"},
}

const (
	otherDomain = "example.com"
	otherReason = "EXAMPLE_REASON"
)

// TestRoundTrip builds every kind with errs.New and every AIP-193 attribute, sends it the
// way a server handler's error travels (status.Convert(e).Err()), classifies that with
// classify.Classify, and compares the code, reason, domain, metadata, retry delay and
// violations, and the kind as roundTripRows says. A kind without a trusted reason carries
// an ErrorInfo under an untrusted domain, which is attached but does not choose the kind.
// Resource ids, stream codes, exec results and exceptions are not status details: they are
// set in "everything" to show they do not disturb the rest, and not compared.
func TestRoundTrip(t *testing.T) {
	rows := map[errs.Kind]int{}
	for i, r := range roundTripRows {
		rows[r.kind] = i
	}
	md := map[string]string{"k": "v", "filepath": "/data/in.txt"}
	violations := []errs.FieldViolation{{Field: "name", Description: "must not be empty"}, {Field: "tags[0]", Description: "invalid tag"}}
	for _, k := range errs.Kinds() {
		i, ok := rows[k]
		if !ok {
			t.Errorf("no round-trip row for %v", k)
			continue
		}
		r := roundTripRows[i]
		if (r.why == "") != (r.want == k) {
			t.Errorf("row %v: want %v, why %q; a row must say why exactly when the kind differs", k, r.want, r.why)
		}
		code := r.code
		if code == 0 {
			code = errs.New(k, "").Code()
		}
		domain, reason := classify.DefaultDomain, r.reason
		if reason == "" {
			domain, reason = otherDomain, otherReason
		}
		ei := errs.WithErrorInfo(domain, reason, md)
		want := facts{Kind: r.want, Code: code, Reason: reason, Domain: domain, Metadata: md}
		if r.want.IsA(errs.ErrSandboxFile) {
			want.FilePath = md["filepath"]
		}
		withViolations := want
		withViolations.Violations = violations
		if r.wantViolations != 0 {
			withViolations.Kind = r.wantViolations
		}
		type variant struct {
			name string
			opts []errs.Option
			want facts
		}
		variants := []variant{
			{"error info", []errs.Option{ei}, want},
			{"retry delay", []errs.Option{ei, errs.WithRetryDelay(2 * time.Second)}, with(want, 2*time.Second)},
			{"zero retry delay", []errs.Option{ei, errs.WithRetryDelay(0)}, with(want, 0)},
			{"negative retry delay", []errs.Option{ei, errs.WithRetryDelay(-1500 * time.Millisecond)}, with(want, -1500*time.Millisecond)},
			{"violations", []errs.Option{ei, errs.WithFieldViolations(violations...)}, withViolations},
			{"everything", []errs.Option{
				ei, errs.WithRetryDelay(time.Minute), errs.WithFieldViolations(violations...),
				errs.WithResource(errs.Resource{Operation: "Exec"}), errs.WithResource(errs.Resource{SandboxID: "sb-1"}), errs.WithStreamCode("STREAM_TRUNCATED"),
				errs.WithExecResult(errs.ExecResult{ExitCode: 1, Stderr: "ValueError: bad\n"}),
			}, with(withViolations, time.Minute)},
		}
		if r.reason == "" { // the code alone says the kind
			variants = append(variants, variant{"code only", nil, facts{Kind: r.want, Code: code}})
		}
		for _, v := range variants {
			t.Run(k.String()+"/"+v.name, func(t *testing.T) {
				e := errs.New(k, "server said no", append([]errs.Option{errs.WithCode(code)}, v.opts...)...)
				got := classify.Classify(status.Convert(e).Err())
				if diff := cmp.Diff(v.want, factsOf(got), cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("Classify(status.Convert(New(%v, %s)).Err()) differs (-want +got):\n%s", k, v.name, diff)
				}
			})
		}
	}
}

func with(f facts, d time.Duration) facts {
	f.Delay, f.HasDelay = d, true
	return f
}

// TestRoundTripFamilies gives the discovery and generic kinds the call context they need:
// on a call of their family's service, they come back as themselves.
func TestRoundTripFamilies(t *testing.T) {
	const (
		discovery = "/coreweave.sandbox.v1.DiscoveryService/GetAvailableRunner"
		other     = "/example.v1.Things/GetThing"
	)
	violation := errs.WithFieldViolations(errs.FieldViolation{Field: "runner_id", Description: "required"})
	tests := []struct {
		kind   errs.Kind
		method string
		opts   []errs.Option
	}{
		{errs.ErrDiscovery, discovery, nil},
		{errs.ErrDiscoveryValidation, discovery, []errs.Option{violation}},
		{errs.ErrRunnerNotFound, discovery, []errs.Option{errs.WithErrorInfo(classify.DefaultDomain, "CWSANDBOX_RUNNER_NOT_FOUND", nil)}},
		{errs.ErrRunnerNotFound, discovery, nil},
		{errs.ErrCWSandbox, other, nil},
		{errs.ErrCWSandboxValidation, other, []errs.Option{violation}},
		{errs.ErrCWSandboxAuthentication, other, nil},
	}
	c := classify.New()
	for _, tc := range tests {
		t.Run(fmt.Sprintf("%v/%d options", tc.kind, len(tc.opts)), func(t *testing.T) {
			e := errs.New(tc.kind, "server said no", tc.opts...)
			got := c.Classify(status.Convert(e).Err(), classify.Call{Method: tc.method})
			if got.Kind() != tc.kind || got.Code() != e.Code() {
				t.Errorf("Classify(New(%v), %s) = %v, %v, want %v, %v", tc.kind, tc.method, got.Kind(), got.Code(), tc.kind, e.Code())
			}
		})
	}
}

// TestNewStatusDetails checks the details errs.New puts in its status: none without
// AIP-193 attributes, and ErrorInfo, RetryInfo, BadRequest in that order with them, with
// invalid UTF-8 replaced (protobuf strings must be valid) while the accessors keep it.
func TestNewStatusDetails(t *testing.T) {
	tests := []struct {
		name string
		opts []errs.Option
		want []any
	}{
		{"none", []errs.Option{errs.WithResource(errs.Resource{SandboxID: "sb-1"}), errs.WithStreamCode("X")}, nil},
		{"error info without metadata", []errs.Option{errs.WithErrorInfo("d", "R", nil)},
			[]any{&errdetails.ErrorInfo{Reason: "R", Domain: "d"}}},
		{"all, in order", []errs.Option{
			errs.WithFieldViolations(errs.FieldViolation{Field: "f", Description: "d"}),
			errs.WithRetryDelay(-time.Second),
			errs.WithErrorInfo("d", "R", map[string]string{"k": "v"}),
		}, []any{
			&errdetails.ErrorInfo{Reason: "R", Domain: "d", Metadata: map[string]string{"k": "v"}},
			&errdetails.RetryInfo{RetryDelay: durationpb.New(-time.Second)},
			&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "f", Description: "d"}}},
		}},
		{"invalid UTF-8", []errs.Option{
			errs.WithErrorInfo("d\xfe", "R\xff", map[string]string{"k\xff": "v\xff"}),
			errs.WithFieldViolations(errs.FieldViolation{Field: "f\xff", Description: "\xffd"}),
		}, []any{
			&errdetails.ErrorInfo{Reason: "R\uFFFD", Domain: "d\uFFFD", Metadata: map[string]string{"k\uFFFD": "v\uFFFD"}},
			&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "f\uFFFD", Description: "\uFFFDd"}}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := errs.New(errs.ErrSandboxUnavailable, "m", tc.opts...)
			got := e.GRPCStatus().Details()
			if diff := cmp.Diff(tc.want, got, protocmp.Transform(), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("New(%s).GRPCStatus().Details() differs (-want +got):\n%s", tc.name, diff)
			}
			if len(e.OtherDetails()) != 0 {
				t.Errorf("New(%s).OtherDetails() = %v, want none", tc.name, e.OtherDetails())
			}
		})
	}
	e := errs.New(errs.ErrSandbox, "m", errs.WithErrorInfo("d", "R\xff", nil))
	if e.Reason() != "R\xff" {
		t.Errorf("New(WithErrorInfo(%q)).Reason() = %q, want %q", "R\xff", e.Reason(), "R\xff")
	}
}
