package classify_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	aip "github.com/faultline-go/faultline/internal/details"
)

var (
	sandboxCall   = classify.Call{Method: "/coreweave.sandbox.v1.SandboxService/GetSandbox", Resource: errs.Resource{SandboxID: "sb-1"}}
	discoveryCall = classify.Call{Method: "/coreweave.sandbox.v1.DiscoveryService/GetRunner", Resource: errs.Resource{RunnerID: "r-1"}}
	otherCall     = classify.Call{Method: "/acme.billing.v1.Billing/Charge"}
	noMethodCall  = classify.Call{}
)

// reasonKinds is the reason table of classification.md, section 2, rule 1, copied by hand.
var reasonKinds = []struct {
	reason string
	kind   errs.Kind
}{
	{"CWSANDBOX_FILE_NOT_FOUND", errs.ErrSandboxFile},
	{"CWSANDBOX_FILE_IS_DIRECTORY", errs.ErrSandboxFile},
	{"CWSANDBOX_FILE_IO_FAILED", errs.ErrSandboxFile},
	{"CWSANDBOX_FILE_PERMISSION_DENIED", errs.ErrSandboxFile},
	{"CWSANDBOX_FILE_TOO_LARGE", errs.ErrSandboxFile},
	{"CWSANDBOX_FILE_TRUNCATED", errs.ErrSandboxFile},
	{"CWSANDBOX_SANDBOX_NOT_FOUND", errs.ErrSandboxNotFound},
	{"CWSANDBOX_SANDBOX_NOT_RUNNING", errs.ErrSandboxNotRunning},
	{"CWSANDBOX_COMMAND_TIMEOUT", errs.ErrSandboxCommandTimeout},
	{"CWSANDBOX_RUNNER_UNAVAILABLE", errs.ErrSandboxUnavailable},
	{"CWSANDBOX_BACKEND_UNAVAILABLE", errs.ErrSandboxUnavailable},
	{"CWSANDBOX_FSS_BUCKET_PROVISIONING", errs.ErrSandboxUnavailable},
	{"CWSANDBOX_FSS_NOT_FOUND", errs.ErrSnapshotNotFound},
	{"CWSANDBOX_FSS_NOT_READY", errs.ErrSnapshotNotReady},
	{"CWSANDBOX_FSS_NOT_SUPPORTED", errs.ErrSnapshotNotSupported},
	{"CWSANDBOX_FSS_SIZE_EXCEEDED", errs.ErrSnapshotSizeExceeded},
	{"CWSANDBOX_FSS_QUOTA_EXCEEDED", errs.ErrSnapshotQuotaExceeded},
	{"CWSANDBOX_FSS_BUCKET_MISMATCH", errs.ErrSnapshotBucketMismatch},
	{"CWSANDBOX_FSS_BUCKET_UNAVAILABLE", errs.ErrSandboxSnapshot},
	{"CWSANDBOX_FSS_RESTORE_FAILED", errs.ErrSandboxSnapshot},
	{"CWSANDBOX_FSS_CREATE_FAILED", errs.ErrSandboxSnapshot},
	{"CWSANDBOX_FSS_CREATE_TIMED_OUT", errs.ErrSandboxSnapshot},
	{"CWSANDBOX_FSS_AUTH_FAILED", errs.ErrSandboxSnapshot},
	{"CWSANDBOX_FSS_TRANSPORT_FAILED", errs.ErrSandboxSnapshot},
	{"CWSANDBOX_FSS_CANCELED", errs.ErrSandboxSnapshot},
	{"CWSANDBOX_FSS_WAIT_TIMEOUT", errs.ErrSnapshotWaitTimeout},
	{"CWSANDBOX_FSS_BACKEND_THROTTLED", errs.ErrSnapshotBackendThrottled},
	{"CWSANDBOX_FSS_INFLIGHT_LIMIT", errs.ErrSnapshotBackendThrottled},
}

// TestClassifyReason checks every reason of the table under the trusted domain, and the same
// reasons under untrusted and empty domains, where the code decides and the reason stays
// attached. On a discovery call no reason of the table picks a kind (rule 3): the failure
// stays a DiscoveryError with the reason attached.
func TestClassifyReason(t *testing.T) {
	c := classify.New()
	for _, tc := range reasonKinds {
		for _, fam := range []struct {
			name  string
			call  classify.Call
			base  errs.Kind
			picks bool // whether a trusted reason of the table picks the kind
		}{
			{"sandbox", sandboxCall, errs.ErrSandbox, true},
			{"discovery", discoveryCall, errs.ErrDiscovery, false},
			{"unknown service", otherCall, errs.ErrCWSandbox, true},
			{"no method", noMethodCall, errs.ErrSandbox, true},
		} {
			t.Run(tc.reason+"/"+fam.name, func(t *testing.T) {
				trusted := fam.base
				if fam.picks {
					trusted = tc.kind
				}
				for _, d := range []struct {
					domain string
					want   errs.Kind
				}{
					{classify.DefaultDomain, trusted},
					{"evil.example.com", fam.base},
					{"CWSANDBOX.COM", fam.base}, // matched case-sensitively
					{"cwsandbox.com.evil", fam.base},
					{"", fam.base},
				} {
					md := map[string]string{"k": "v"}
					err := faultlinetest.Error(codes.Internal, "server message", faultlinetest.ErrorInfo(d.domain, tc.reason, md), faultlinetest.RetryInfo(2*time.Second))
					e := c.Classify(err, fam.call)
					if e.Kind() != d.want {
						t.Errorf("Classify(Internal, %s@%q) on %s = %v, want %v", tc.reason, d.domain, fam.name, e.Kind(), d.want)
					}
					if fam.base == errs.ErrDiscovery && !errors.Is(e, errs.ErrDiscovery) {
						t.Errorf("errors.Is(Classify(Internal, %s@%q) on discovery, ErrDiscovery) = false, want true", tc.reason, d.domain)
					}
					delay, ok := e.RetryDelay()
					if e.Reason() != tc.reason || e.Domain() != d.domain || !cmp.Equal(e.Metadata(), md) || delay != 2*time.Second || !ok {
						t.Errorf("Classify(%s@%q) attached %q, %q, %v, %v, %v, want %q, %q, %v, 2s, true",
							tc.reason, d.domain, e.Reason(), e.Domain(), e.Metadata(), delay, ok, tc.reason, d.domain, md)
					}
				}
			})
		}
	}
}

// TestClassifyReasonFallsThrough checks trusted reasons that pick no kind of their own on
// the call they come with: reasons without a rule (the code decides), sandbox-only reasons
// on a discovery call (the discovery rules decide), and CWSANDBOX_RUNNER_NOT_FOUND outside
// the discovery family (the family base, whatever the code).
func TestClassifyReasonFallsThrough(t *testing.T) {
	violation := faultlinetest.BadRequest(faultlinetest.FieldViolation("f", "d"))
	tests := []struct {
		name    string
		call    classify.Call
		code    codes.Code
		reason  string
		details []proto.Message
		want    errs.Kind
	}{
		{"runner not found on a discovery call", discoveryCall, codes.Internal, "CWSANDBOX_RUNNER_NOT_FOUND", nil, errs.ErrRunnerNotFound},
		{"runner not found on a discovery call, any code", discoveryCall, codes.FailedPrecondition, "CWSANDBOX_RUNNER_NOT_FOUND", nil, errs.ErrRunnerNotFound},
		{"runner not found on a discovery call, unavailable", discoveryCall, codes.Unavailable, "CWSANDBOX_RUNNER_NOT_FOUND", nil, errs.ErrRunnerNotFound},
		{"runner not found on a sandbox call is not a SandboxNotFoundError", sandboxCall, codes.Internal, "CWSANDBOX_RUNNER_NOT_FOUND", nil, errs.ErrSandbox},
		{"runner not found on a sandbox call, unavailable", sandboxCall, codes.Unavailable, "CWSANDBOX_RUNNER_NOT_FOUND", nil, errs.ErrSandbox},
		{"runner not found on a sandbox call, resource exhausted", sandboxCall, codes.ResourceExhausted, "CWSANDBOX_RUNNER_NOT_FOUND", nil, errs.ErrSandbox},
		{"runner not found on a sandbox call, deadline exceeded", sandboxCall, codes.DeadlineExceeded, "CWSANDBOX_RUNNER_NOT_FOUND", nil, errs.ErrSandbox},
		{"runner not found on a sandbox call, cancelled", sandboxCall, codes.Canceled, "CWSANDBOX_RUNNER_NOT_FOUND", nil, errs.ErrSandbox},
		{"runner not found on a sandbox call with NOT_FOUND is not a SandboxNotFoundError", sandboxCall, codes.NotFound, "CWSANDBOX_RUNNER_NOT_FOUND", nil, errs.ErrSandbox},
		{"runner not found on a sandbox call with violations", sandboxCall, codes.InvalidArgument, "CWSANDBOX_RUNNER_NOT_FOUND", []proto.Message{violation}, errs.ErrSandbox},
		{"runner not found without a method", noMethodCall, codes.FailedPrecondition, "CWSANDBOX_RUNNER_NOT_FOUND", nil, errs.ErrSandbox},
		{"runner not found without a method, unavailable", noMethodCall, codes.Unavailable, "CWSANDBOX_RUNNER_NOT_FOUND", nil, errs.ErrSandbox},
		{"runner not found on another service", otherCall, codes.Internal, "CWSANDBOX_RUNNER_NOT_FOUND", nil, errs.ErrCWSandbox},
		{"runner not found on another service, not found", otherCall, codes.NotFound, "CWSANDBOX_RUNNER_NOT_FOUND", nil, errs.ErrCWSandbox},
		{"invalid request with violations", sandboxCall, codes.InvalidArgument, "CWSANDBOX_INVALID_REQUEST", []proto.Message{violation}, errs.ErrSandboxValidation},
		{"invalid request without violations", sandboxCall, codes.InvalidArgument, "CWSANDBOX_INVALID_REQUEST", nil, errs.ErrSandbox},
		{"placement reason", sandboxCall, codes.ResourceExhausted, "CWSANDBOX_PLACEMENT_FAILED", nil, errs.ErrSandboxResourceExhausted},
		{"serverless gate", sandboxCall, codes.FailedPrecondition, "CWSANDBOX_SERVERLESS_DISABLED", nil, errs.ErrSandbox},
		{"unknown future reason", sandboxCall, codes.NotFound, "CWSANDBOX_SOMETHING_NEW", nil, errs.ErrSandboxNotFound},
		{"unknown future reason on another service", otherCall, codes.Unavailable, "CWSANDBOX_SOMETHING_NEW", nil, errs.ErrCWSandbox},
		{"reasons match case-sensitively", sandboxCall, codes.Internal, "cwsandbox_file_not_found", nil, errs.ErrSandbox},
		{"file reason on a discovery call", discoveryCall, codes.Internal, "CWSANDBOX_FILE_NOT_FOUND", nil, errs.ErrDiscovery},
		{"sandbox not found reason on a discovery call", discoveryCall, codes.Internal, "CWSANDBOX_SANDBOX_NOT_FOUND", nil, errs.ErrDiscovery},
		{"sandbox not found reason on a discovery call, not found", discoveryCall, codes.NotFound, "CWSANDBOX_SANDBOX_NOT_FOUND", nil, errs.ErrRunnerNotFound},
		{"snapshot reason on a discovery call", discoveryCall, codes.FailedPrecondition, "CWSANDBOX_FSS_NOT_READY", nil, errs.ErrDiscovery},
		{"command timeout reason on a discovery call", discoveryCall, codes.DeadlineExceeded, "CWSANDBOX_COMMAND_TIMEOUT", nil, errs.ErrDiscovery},
		{"transient reason on a discovery call", discoveryCall, codes.Unavailable, "CWSANDBOX_RUNNER_UNAVAILABLE", nil, errs.ErrDiscovery},
		{"bucket provisioning on a discovery call", discoveryCall, codes.FailedPrecondition, "CWSANDBOX_FSS_BUCKET_PROVISIONING", nil, errs.ErrDiscovery},
		{"sandbox reason on a discovery call with violations", discoveryCall, codes.InvalidArgument, "CWSANDBOX_FILE_NOT_FOUND", []proto.Message{violation}, errs.ErrDiscoveryValidation},
		{"snapshot reason on another service", otherCall, codes.Internal, "CWSANDBOX_FSS_NOT_READY", nil, errs.ErrSnapshotNotReady},
		{"bucket provisioning on any code", sandboxCall, codes.FailedPrecondition, "CWSANDBOX_FSS_BUCKET_PROVISIONING", nil, errs.ErrSandboxUnavailable},
		{"bucket provisioning on another service", otherCall, codes.Internal, "CWSANDBOX_FSS_BUCKET_PROVISIONING", nil, errs.ErrSandboxUnavailable},
		{"sandbox not running on CANCELLED", sandboxCall, codes.Canceled, "CWSANDBOX_SANDBOX_NOT_RUNNING", nil, errs.ErrSandboxNotRunning},
		{"sandbox not running on FAILED_PRECONDITION", sandboxCall, codes.FailedPrecondition, "CWSANDBOX_SANDBOX_NOT_RUNNING", nil, errs.ErrSandboxNotRunning},
		{"sandbox not running on UNAVAILABLE is still not transient", sandboxCall, codes.Unavailable, "CWSANDBOX_SANDBOX_NOT_RUNNING", nil, errs.ErrSandboxNotRunning},
	}
	c := classify.New()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			details := append([]proto.Message{faultlinetest.ErrorInfo(classify.DefaultDomain, tc.reason, nil)}, tc.details...)
			e := c.Classify(faultlinetest.Error(tc.code, "m", details...), tc.call)
			if e.Kind() != tc.want || e.Reason() != tc.reason {
				t.Errorf("Classify(%v, %s) on %q = %v, reason %q, want %v, reason %q", tc.code, tc.reason, tc.call.Method, e.Kind(), e.Reason(), tc.want, tc.reason)
			}
		})
	}
}

// TestClassifyCode checks every code on every family, without details and with the caller's
// context alive: rule 2 for sandbox calls and calls without a method, rule 3 for discovery
// calls (every failure but an auth one is a DiscoveryError, transient codes included), rule 4
// for unknown services (a code alone never makes a SandboxError).
func TestClassifyCode(t *testing.T) {
	// want[code] = {sandbox, discovery, unknown service, no method}
	want := map[codes.Code][4]errs.Kind{
		codes.OK:                 {errs.ErrSandbox, errs.ErrDiscovery, errs.ErrCWSandbox, errs.ErrSandbox},
		codes.Canceled:           {errs.ErrSandboxNotRunning, errs.ErrDiscovery, errs.ErrCWSandbox, errs.ErrSandboxNotRunning},
		codes.Unknown:            {errs.ErrSandbox, errs.ErrDiscovery, errs.ErrCWSandbox, errs.ErrSandbox},
		codes.InvalidArgument:    {errs.ErrSandbox, errs.ErrDiscovery, errs.ErrCWSandbox, errs.ErrSandbox},
		codes.DeadlineExceeded:   {errs.ErrSandboxRequestTimeout, errs.ErrDiscovery, errs.ErrCWSandbox, errs.ErrSandboxRequestTimeout},
		codes.NotFound:           {errs.ErrSandboxNotFound, errs.ErrRunnerNotFound, errs.ErrCWSandbox, errs.ErrSandboxNotFound},
		codes.AlreadyExists:      {errs.ErrSandbox, errs.ErrDiscovery, errs.ErrCWSandbox, errs.ErrSandbox},
		codes.PermissionDenied:   {errs.ErrCWSandboxAuthentication, errs.ErrCWSandboxAuthentication, errs.ErrCWSandboxAuthentication, errs.ErrCWSandboxAuthentication},
		codes.ResourceExhausted:  {errs.ErrSandboxResourceExhausted, errs.ErrDiscovery, errs.ErrCWSandbox, errs.ErrSandboxResourceExhausted},
		codes.FailedPrecondition: {errs.ErrSandbox, errs.ErrDiscovery, errs.ErrCWSandbox, errs.ErrSandbox},
		codes.Aborted:            {errs.ErrSandbox, errs.ErrDiscovery, errs.ErrCWSandbox, errs.ErrSandbox},
		codes.OutOfRange:         {errs.ErrSandbox, errs.ErrDiscovery, errs.ErrCWSandbox, errs.ErrSandbox},
		codes.Unimplemented:      {errs.ErrSandbox, errs.ErrDiscovery, errs.ErrCWSandbox, errs.ErrSandbox},
		codes.Internal:           {errs.ErrSandbox, errs.ErrDiscovery, errs.ErrCWSandbox, errs.ErrSandbox},
		codes.Unavailable:        {errs.ErrSandboxUnavailable, errs.ErrDiscovery, errs.ErrCWSandbox, errs.ErrSandboxUnavailable},
		codes.DataLoss:           {errs.ErrSandbox, errs.ErrDiscovery, errs.ErrCWSandbox, errs.ErrSandbox},
		codes.Unauthenticated:    {errs.ErrCWSandboxAuthentication, errs.ErrCWSandboxAuthentication, errs.ErrCWSandboxAuthentication, errs.ErrCWSandboxAuthentication},
	}
	if len(want) != 17 {
		t.Fatalf("the table has %d codes, want 17", len(want))
	}
	calls := [4]struct {
		name string
		call classify.Call
	}{{"sandbox", sandboxCall}, {"discovery", discoveryCall}, {"unknown service", otherCall}, {"no method", noMethodCall}}
	c := classify.New()
	for code, kinds := range want {
		for i, call := range calls {
			t.Run(code.String()+"/"+call.name, func(t *testing.T) {
				if got := c.Kind(code, aip.Info{}, call.call); got != kinds[i] {
					t.Errorf("Kind(%v, {}, %s) = %v, want %v", code, call.name, got, kinds[i])
				}
				if code == codes.OK {
					return // an OK status has no error
				}
				st := status.New(code, "server message")
				e := c.Classify(st.Err(), call.call)
				if e.Kind() != kinds[i] {
					t.Errorf("Classify(%v) on %s = %v, want %v", code, call.name, e.Kind(), kinds[i])
				}
				if e.Code() != code || status.Code(e) != code || e.GRPCStatus() != st {
					t.Errorf("Classify(%v) on %s: code %v, status.Code %v, status %p, want %v, %v, %p",
						code, call.name, e.Code(), status.Code(e), e.GRPCStatus(), code, code, st)
				}
				if !strings.Contains(e.Error(), "server message") {
					t.Errorf("Classify(%v).Error() = %q, want the server's message in it", code, e.Error())
				}
				if fam := c.Family(call.call.Method); fam != errs.ErrSandbox && errors.Is(e, errs.ErrSandbox) {
					t.Errorf("errors.Is(Classify(%v) on %s, ErrSandbox) = true, want false: a code alone never makes a non-sandbox failure a SandboxError", code, call.name)
				}
				auth := code == codes.Unauthenticated || code == codes.PermissionDenied
				if call.call.Method == discoveryCall.Method && !auth && !errors.Is(e, errs.ErrDiscovery) {
					t.Errorf("errors.Is(Classify(%v) on discovery, ErrDiscovery) = false, want true", code)
				}
				if errors.Is(e, context.Canceled) || errors.Is(e, context.DeadlineExceeded) {
					t.Errorf("errors.Is(Classify(%v) on %s, a context error) = true, want false: the caller's context was alive", code, call.name)
				}
			})
		}
	}
}

// TestClassifyValidation checks INVALID_ARGUMENT with and without violations in each family.
func TestClassifyValidation(t *testing.T) {
	violations := faultlinetest.BadRequest(
		faultlinetest.FieldViolation("spec.image", "must not be empty"),
		&errdetails.BadRequest_FieldViolation{Field: "tags[0]", LocalizedMessage: &errdetails.LocalizedMessage{Message: "Invalid tag"}})
	tests := []struct {
		name       string
		call       classify.Call
		violations bool
		want       errs.Kind
		wantError  string
	}{
		{"sandbox with violations", sandboxCall, true, errs.ErrSandboxValidation,
			"GetSandbox: invalid argument: bad request (sandbox sb-1); field violations: spec.image: must not be empty; tags[0]: Invalid tag"},
		{"sandbox without violations", sandboxCall, false, errs.ErrSandbox, "GetSandbox: invalid argument: bad request (sandbox sb-1)"},
		{"discovery with violations", discoveryCall, true, errs.ErrDiscoveryValidation,
			"GetRunner: invalid argument: bad request (runner r-1); field violations: spec.image: must not be empty; tags[0]: Invalid tag"},
		{"discovery without violations", discoveryCall, false, errs.ErrDiscovery, "GetRunner: invalid argument: bad request (runner r-1)"},
		{"unknown service with violations", otherCall, true, errs.ErrCWSandboxValidation,
			"Charge: invalid argument: bad request; field violations: spec.image: must not be empty; tags[0]: Invalid tag"},
		{"unknown service without violations", otherCall, false, errs.ErrCWSandbox, "Charge: invalid argument: bad request"},
		{"no method with violations", noMethodCall, true, errs.ErrSandboxValidation,
			"invalid argument: bad request; field violations: spec.image: must not be empty; tags[0]: Invalid tag"},
	}
	c := classify.New()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ds []proto.Message
			if tc.violations {
				ds = append(ds, violations)
			}
			e := c.Classify(faultlinetest.Error(codes.InvalidArgument, "bad request", ds...), tc.call)
			if e.Kind() != tc.want || e.Error() != tc.wantError {
				t.Errorf("Classify(InvalidArgument) on %q = %v, %q, want %v, %q", tc.call.Method, e.Kind(), e.Error(), tc.want, tc.wantError)
			}
			if tc.violations && !errors.Is(e, errs.ErrCWSandboxValidation) {
				t.Errorf("errors.Is(Classify(InvalidArgument with violations), ErrCWSandboxValidation) = false, want true")
			}
		})
	}
}

func TestClassifyOptions(t *testing.T) {
	const partner = "partner.example.com"
	tests := []struct {
		name   string
		opts   []classify.Option
		call   classify.Call
		code   codes.Code
		reason string
		domain string
		want   errs.Kind
	}{
		{"default trusts cwsandbox.com", nil, sandboxCall, codes.Internal, "CWSANDBOX_FILE_NOT_FOUND", classify.DefaultDomain, errs.ErrSandboxFile},
		{"WithTrustedDomains trusts the new domain", []classify.Option{classify.WithTrustedDomains(partner)},
			sandboxCall, codes.Internal, "CWSANDBOX_FILE_NOT_FOUND", partner, errs.ErrSandboxFile},
		{"WithTrustedDomains replaces the default", []classify.Option{classify.WithTrustedDomains(partner)},
			sandboxCall, codes.Internal, "CWSANDBOX_FILE_NOT_FOUND", classify.DefaultDomain, errs.ErrSandbox},
		{"WithTrustedDomains with several domains", []classify.Option{classify.WithTrustedDomains(partner, classify.DefaultDomain)},
			sandboxCall, codes.Internal, "CWSANDBOX_COMMAND_TIMEOUT", classify.DefaultDomain, errs.ErrSandboxCommandTimeout},
		{"WithTrustedDomains with none trusts nothing", []classify.Option{classify.WithTrustedDomains()},
			sandboxCall, codes.Internal, "CWSANDBOX_FILE_NOT_FOUND", classify.DefaultDomain, errs.ErrSandbox},
		{"last WithTrustedDomains wins", []classify.Option{classify.WithTrustedDomains(partner), classify.WithTrustedDomains(classify.DefaultDomain)},
			sandboxCall, codes.Internal, "CWSANDBOX_FILE_NOT_FOUND", partner, errs.ErrSandbox},
		{"WithRule maps an untrusted domain's reason", []classify.Option{classify.WithRule(partner, "PARTNER_BUSY", errs.ErrSandboxUnavailable)},
			sandboxCall, codes.Internal, "PARTNER_BUSY", partner, errs.ErrSandboxUnavailable},
		{"WithRule applies to its domain only", []classify.Option{classify.WithRule(partner, "PARTNER_BUSY", errs.ErrSandboxUnavailable)},
			sandboxCall, codes.Internal, "PARTNER_BUSY", "other.example.com", errs.ErrSandbox},
		{"WithRule overrides a built-in reason", []classify.Option{classify.WithRule(classify.DefaultDomain, "CWSANDBOX_FILE_NOT_FOUND", errs.ErrSandboxNotFound)},
			sandboxCall, codes.Internal, "CWSANDBOX_FILE_NOT_FOUND", classify.DefaultDomain, errs.ErrSandboxNotFound},
		{"WithRule on a sandbox call's runner reason", []classify.Option{classify.WithRule(classify.DefaultDomain, "CWSANDBOX_RUNNER_NOT_FOUND", errs.ErrSandboxFailed)},
			sandboxCall, codes.NotFound, "CWSANDBOX_RUNNER_NOT_FOUND", classify.DefaultDomain, errs.ErrSandboxFailed},
		{"WithRule with an invalid kind removes the rule", []classify.Option{
			classify.WithRule(partner, "PARTNER_BUSY", errs.ErrSandboxUnavailable), classify.WithRule(partner, "PARTNER_BUSY", errs.Kind(0))},
			sandboxCall, codes.Internal, "PARTNER_BUSY", partner, errs.ErrSandbox},
		{"WithRule rules add up", []classify.Option{
			classify.WithRule(partner, "A", errs.ErrSandboxFailed), classify.WithRule(partner, "B", errs.ErrSandboxTerminated)},
			sandboxCall, codes.Internal, "A", partner, errs.ErrSandboxFailed},
		{"WithService puts a service in the discovery family", []classify.Option{classify.WithService("acme.billing.v1.Billing", errs.ErrDiscovery)},
			otherCall, codes.NotFound, "", "", errs.ErrRunnerNotFound},
		{"WithService puts a service in the sandbox family", []classify.Option{classify.WithService("acme.billing.v1.Billing", errs.ErrSandbox)},
			otherCall, codes.Canceled, "", "", errs.ErrSandboxNotRunning},
		{"WithService overrides a default service", []classify.Option{classify.WithService("coreweave.sandbox.v1.DiscoveryService", errs.ErrCWSandbox)},
			discoveryCall, codes.NotFound, "", "", errs.ErrCWSandbox},
		{"WithService entries add up", []classify.Option{
			classify.WithService("a.A", errs.ErrSandbox), classify.WithService("acme.billing.v1.Billing", errs.ErrDiscovery)},
			otherCall, codes.Internal, "", "", errs.ErrDiscovery},
		{"WithService keeps the defaults", []classify.Option{classify.WithService("a.A", errs.ErrCWSandbox)},
			discoveryCall, codes.NotFound, "", "", errs.ErrRunnerNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ds []proto.Message
			if tc.reason != "" {
				ds = append(ds, faultlinetest.ErrorInfo(tc.domain, tc.reason, nil))
			}
			e := classify.New(tc.opts...).Classify(faultlinetest.Error(tc.code, "m", ds...), tc.call)
			if e.Kind() != tc.want {
				t.Errorf("New(...).Classify(%v, %s@%q) on %q = %v, want %v", tc.code, tc.reason, tc.domain, tc.call.Method, e.Kind(), tc.want)
			}
		})
	}
	t.Run("options do not change other classifiers", func(t *testing.T) {
		classify.New(classify.WithService("coreweave.sandbox.v1.DiscoveryService", errs.ErrCWSandbox), classify.WithTrustedDomains())
		if got := classify.New().Family(discoveryCall.Method); got != errs.ErrDiscovery {
			t.Errorf("New().Family(%q) = %v after another classifier's WithService, want DiscoveryError", discoveryCall.Method, got)
		}
		e := classify.Classify(faultlinetest.Error(codes.Internal, "m", faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_FILE_NOT_FOUND", nil)))
		if e.Kind() != errs.ErrSandboxFile {
			t.Errorf("Classify(FILE_NOT_FOUND) = %v after another classifier's options, want ErrSandboxFile", e.Kind())
		}
	})
}

func TestFamily(t *testing.T) {
	c := classify.New(classify.WithService("acme.v1.Runners", errs.ErrDiscovery))
	tests := []struct {
		method string
		want   errs.Kind
	}{
		{"", errs.ErrSandbox},
		{"/coreweave.sandbox.v1.SandboxService/Exec", errs.ErrSandbox},
		{"/coreweave.sandbox.v1.DiscoveryService/ListRunners", errs.ErrDiscovery},
		{"/acme.v1.Runners/Get", errs.ErrDiscovery},
		{"/coreweave.sandbox.v2.SandboxService/Exec", errs.ErrCWSandbox},
		{"/other.Service/Method", errs.ErrCWSandbox},
	}
	for _, tc := range tests {
		if got := c.Family(tc.method); got != tc.want {
			t.Errorf("Family(%q) = %v, want %v", tc.method, got, tc.want)
		}
	}
}

// TestClassifyResource checks the call context: the file path from the call or from
// metadata["filepath"] (the call wins), and the snapshot id on NOT_FOUND.
func TestClassifyResource(t *testing.T) {
	fileInfo := faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_FILE_NOT_FOUND", map[string]string{"filepath": "/from/metadata"})
	tests := []struct {
		name      string
		call      classify.Call
		code      codes.Code
		details   []proto.Message
		wantKind  errs.Kind
		wantPath  string
		wantSnap  string
		wantError string
	}{
		{"file path from the call wins",
			classify.Call{Method: "/coreweave.sandbox.v1.SandboxService/ReadFile", Resource: errs.Resource{SandboxID: "sb-1", FilePath: "/from/call"}},
			codes.NotFound, []proto.Message{fileInfo}, errs.ErrSandboxFile, "/from/call", "",
			"ReadFile: file not found: no such file (sandbox sb-1, file /from/call)"},
		{"file path from metadata when the call has none",
			classify.Call{Method: "/coreweave.sandbox.v1.SandboxService/ReadFile", Resource: errs.Resource{SandboxID: "sb-1"}},
			codes.NotFound, []proto.Message{fileInfo}, errs.ErrSandboxFile, "/from/metadata", "",
			"ReadFile: file not found: no such file (sandbox sb-1, file /from/metadata)"},
		{"no file path at all",
			classify.Call{Method: "/coreweave.sandbox.v1.SandboxService/ReadFile"},
			codes.NotFound, []proto.Message{faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_FILE_TOO_LARGE", nil)}, errs.ErrSandboxFile, "", "",
			"ReadFile: file too large: no such file"},
		{"metadata file path only for file errors",
			classify.Call{Method: "/coreweave.sandbox.v1.SandboxService/GetSandbox"},
			codes.NotFound, []proto.Message{faultlinetest.ErrorInfo(classify.DefaultDomain, "R", map[string]string{"filepath": "/x"})}, errs.ErrSandboxNotFound, "", "",
			"GetSandbox: sandbox not found: no such file"},
		{"metadata file path ignored under an untrusted domain",
			classify.Call{Method: "/coreweave.sandbox.v1.SandboxService/ReadFile"},
			codes.NotFound, []proto.Message{faultlinetest.ErrorInfo("evil.example.com", "CWSANDBOX_FILE_NOT_FOUND", map[string]string{"filepath": "/x"})}, errs.ErrSandboxNotFound, "", "",
			"ReadFile: sandbox not found: no such file"},
		{"snapshot id: NOT_FOUND is a SnapshotNotFoundError",
			classify.Call{Method: "/coreweave.sandbox.v1.SandboxService/RestoreSnapshot", Resource: errs.Resource{SnapshotID: "fss-9"}},
			codes.NotFound, nil, errs.ErrSnapshotNotFound, "", "fss-9",
			"RestoreSnapshot: snapshot not found: no such file (snapshot fss-9)"},
		{"snapshot id on a discovery call: runner not found",
			classify.Call{Method: "/coreweave.sandbox.v1.DiscoveryService/GetRunner", Resource: errs.Resource{SnapshotID: "fss-9", RunnerID: "r-2"}},
			codes.NotFound, nil, errs.ErrRunnerNotFound, "", "fss-9",
			"GetRunner: runner not found: no such file (snapshot fss-9, runner r-2)"},
		{"snapshot id without NOT_FOUND",
			classify.Call{Method: "/coreweave.sandbox.v1.SandboxService/RestoreSnapshot", Resource: errs.Resource{SnapshotID: "fss-9"}},
			codes.Internal, nil, errs.ErrSandbox, "", "fss-9",
			"RestoreSnapshot: internal error: no such file (snapshot fss-9)"},
	}
	c := classify.New()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := c.Classify(faultlinetest.Error(tc.code, "no such file", tc.details...), tc.call)
			if e.Kind() != tc.wantKind || e.Resource().FilePath != tc.wantPath || e.Resource().SnapshotID != tc.wantSnap || e.Error() != tc.wantError {
				t.Errorf("Classify(%v) on %+v = %v, file %q, snapshot %q, %q, want %v, %q, %q, %q",
					tc.code, tc.call, e.Kind(), e.Resource().FilePath, e.Resource().SnapshotID, e.Error(), tc.wantKind, tc.wantPath, tc.wantSnap, tc.wantError)
			}
			if e.Resource().Operation == "" || e.Resource().SandboxID != tc.call.Resource.SandboxID || e.Resource().RunnerID != tc.call.Resource.RunnerID {
				t.Errorf("Classify on %+v: operation %q, sandbox %q, runner %q, want the call's", tc.call, e.Resource().Operation, e.Resource().SandboxID, e.Resource().RunnerID)
			}
		})
	}
}

// TestClassifyMessages checks the phrases users know, and that metadata is never printed.
func TestClassifyMessages(t *testing.T) {
	secret := map[string]string{"token": "SECRET"}
	tests := []struct {
		code codes.Code
		call classify.Call
		want string
	}{
		{codes.Unavailable, sandboxCall, "GetSandbox: unavailable: server message (sandbox sb-1)"},
		{codes.DeadlineExceeded, sandboxCall, "GetSandbox: timed out: server message (sandbox sb-1)"},
		{codes.ResourceExhausted, discoveryCall, "GetRunner: resource exhausted: server message (runner r-1)"},
		{codes.NotFound, sandboxCall, "GetSandbox: sandbox not found: server message (sandbox sb-1)"},
		{codes.NotFound, discoveryCall, "GetRunner: runner not found: server message (runner r-1)"},
		{codes.NotFound, otherCall, "Charge: not found: server message"},
		{codes.Canceled, sandboxCall, "GetSandbox: cancelled: server message (sandbox sb-1)"},
		{codes.Unauthenticated, sandboxCall, "GetSandbox: authentication failed: server message (sandbox sb-1)"},
		{codes.PermissionDenied, otherCall, "Charge: permission denied: server message"},
	}
	for _, tc := range tests {
		t.Run(tc.code.String()+tc.call.Method, func(t *testing.T) {
			err := faultlinetest.Error(tc.code, "server message", faultlinetest.ErrorInfo("other.example.com", "R", secret), &errdetails.DebugInfo{Detail: "SECRET"})
			if got := classify.New().Classify(err, tc.call).Error(); got != tc.want {
				t.Errorf("Classify(%v).Error() = %q, want %q", tc.code, got, tc.want)
			}
		})
	}
}

// TestClassifyErrors checks the errors Classify is given that are not a bare status error.
func TestClassifyErrors(t *testing.T) {
	c := classify.New()
	t.Run("nil", func(t *testing.T) {
		if got := c.Classify(nil, sandboxCall); got != nil {
			t.Errorf("Classify(nil) = %v, want nil", got)
		}
		if got := classify.Classify(nil); got != nil {
			t.Errorf("classify.Classify(nil) = %v, want nil", got)
		}
	})
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"plain error", errors.New("connection reset")},
		{"context error", context.Canceled},
		{"wrapped plain error", fmt.Errorf("dial: %w", errors.New("connection reset"))},
	} {
		for _, fam := range []struct {
			call classify.Call
			want errs.Kind
		}{
			{sandboxCall, errs.ErrSandbox}, {discoveryCall, errs.ErrDiscovery}, {otherCall, errs.ErrCWSandbox}, {noMethodCall, errs.ErrSandbox},
		} {
			t.Run("non-status/"+tc.name+"/"+fam.call.Method, func(t *testing.T) {
				e := c.Classify(tc.err, fam.call)
				if e.Kind() != fam.want || e.Code() != codes.Unknown || status.Code(e) != codes.Unknown {
					t.Errorf("Classify(%v) on %q = %v, %v, want %v, Unknown", tc.err, fam.call.Method, e.Kind(), e.Code(), fam.want)
				}
				if !errors.Is(e, tc.err) || e.Unwrap() != tc.err {
					t.Errorf("Classify(%v).Unwrap() = %v, want the original", tc.err, e.Unwrap())
				}
				if !strings.Contains(e.Error(), tc.err.Error()) {
					t.Errorf("Classify(%v).Error() = %q, want the original text in it", tc.err, e.Error())
				}
			})
		}
	}
	t.Run("wrapped status error", func(t *testing.T) {
		orig := faultlinetest.Error(codes.Unavailable, "down", faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_FSS_INFLIGHT_LIMIT", nil))
		err := fmt.Errorf("create snapshot: %w", orig)
		e := c.Classify(err, sandboxCall)
		if e.Kind() != errs.ErrSnapshotBackendThrottled || status.Code(e) != codes.Unavailable {
			t.Errorf("Classify(wrapped) = %v, %v, want ErrSnapshotBackendThrottled, Unavailable", e.Kind(), status.Code(e))
		}
		if !errors.Is(e, orig) || e.Unwrap() != err {
			t.Errorf("Classify(wrapped).Unwrap() = %v, want the wrapped error", e.Unwrap())
		}
	})
	done := c.Classify(faultlinetest.Error(codes.Unavailable, "down"), sandboxCall)
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"already classified", done},
		{"already classified, wrapped", fmt.Errorf("retry: %w", done)},
		{"already classified, joined", errors.Join(errors.New("other"), done)},
		{"client-made", errs.New(errs.ErrSandboxStreamTruncated, "cut")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want *errs.Error
			errors.As(tc.err, &want)
			if got := c.Classify(tc.err, discoveryCall); got != want {
				t.Errorf("Classify(%v) = %p, want the same *errs.Error %p", tc.err, got, want)
			}
		})
	}
}

// TestClassifyKeepsStatus checks that the classified error keeps the original status and
// error for status.FromError, status.Code and errors.Is.
func TestClassifyKeepsStatus(t *testing.T) {
	st := faultlinetest.Status(codes.Unavailable, "backend is restarting",
		faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_BACKEND_UNAVAILABLE", map[string]string{"k": "v"}), faultlinetest.RetryInfo(2*time.Second))
	before := st.Proto()
	orig := st.Err()
	e := classify.Classify(orig)
	got, ok := status.FromError(e)
	if !ok || got != st {
		t.Fatalf("status.FromError(Classify(err)) = %p, %v, want %p, true", got, ok, st)
	}
	if !cmp.Equal(got.Proto(), before, protocmp.Transform()) {
		t.Errorf("status.FromError(Classify(err)).Proto() = %v, want %v", got.Proto(), before)
	}
	if e.Unwrap() != orig || !errors.Is(e, orig) {
		t.Errorf("Classify(err).Unwrap() = %v, want err", e.Unwrap())
	}
	if !errors.Is(e, errs.ErrSandboxNotRunning) || !errors.Is(e, errs.ErrSandbox) {
		t.Errorf("errors.Is(Classify(unavailable), ancestors) = false, want true")
	}
}

// TestFilePhrases: a trusted file reason says what happened in the message; the same reason
// from an untrusted domain, or an unknown one, leaves the kind's own phrase.
func TestFilePhrases(t *testing.T) {
	for _, tc := range []struct {
		reason, domain, want string
	}{
		{"CWSANDBOX_FILE_NOT_FOUND", classify.DefaultDomain, "ReadFile: file not found: x (file /f)"},
		{"CWSANDBOX_FILE_IS_DIRECTORY", classify.DefaultDomain, "ReadFile: file is a directory: x (file /f)"},
		{"CWSANDBOX_FILE_IO_FAILED", classify.DefaultDomain, "ReadFile: file i/o failed: x (file /f)"},
		{"CWSANDBOX_FILE_PERMISSION_DENIED", classify.DefaultDomain, "ReadFile: file permission denied: x (file /f)"},
		{"CWSANDBOX_FILE_TOO_LARGE", classify.DefaultDomain, "ReadFile: file too large: x (file /f)"},
		{"CWSANDBOX_FILE_TRUNCATED", classify.DefaultDomain, "ReadFile: file truncated: x (file /f)"},
		{"CWSANDBOX_FILE_NOT_FOUND", "proxy.example", "ReadFile: failed: x (file /f)"},
	} {
		t.Run(tc.reason+"@"+tc.domain, func(t *testing.T) {
			err := faultlinetest.Error(codes.Unknown, "x", faultlinetest.ErrorInfo(tc.domain, tc.reason, nil))
			got := classify.New().Classify(err, classify.Call{Method: "/coreweave.sandbox.v1.SandboxService/ReadFile", Resource: errs.Resource{FilePath: "/f"}})
			if got.Error() != tc.want {
				t.Errorf("Classify(%s@%s).Error() = %q, want %q", tc.reason, tc.domain, got.Error(), tc.want)
			}
		})
	}
}
