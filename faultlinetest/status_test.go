package faultlinetest_test

import (
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/details"
)

func anyOf(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatalf("anypb.New(%v): %v", m, err)
	}
	return a
}

// TestStatus checks the status Status builds, detail by detail, odd input included.
func TestStatus(t *testing.T) {
	var nilInfo *errdetails.ErrorInfo
	garbage := &anypb.Any{TypeUrl: "type.googleapis.com/google.rpc.RetryInfo", Value: []byte{0xff, 0xff}}
	tests := []struct {
		name    string
		code    codes.Code
		msg     string
		details []proto.Message
		want    func(t *testing.T) *spb.Status
	}{
		{"no details", codes.Unavailable, "down", nil, func(*testing.T) *spb.Status {
			return &spb.Status{Code: int32(codes.Unavailable), Message: "down"}
		}},
		{"error info and retry info", codes.Unavailable, "down", []proto.Message{
			faultlinetest.ErrorInfo("cwsandbox.com", "CWSANDBOX_RUNNER_UNAVAILABLE", map[string]string{"k": "v"}),
			faultlinetest.RetryInfo(2 * time.Second),
		}, func(t *testing.T) *spb.Status {
			return &spb.Status{Code: int32(codes.Unavailable), Message: "down", Details: []*anypb.Any{
				anyOf(t, &errdetails.ErrorInfo{Domain: "cwsandbox.com", Reason: "CWSANDBOX_RUNNER_UNAVAILABLE", Metadata: map[string]string{"k": "v"}}),
				anyOf(t, &errdetails.RetryInfo{RetryDelay: durationpb.New(2 * time.Second)}),
			}}
		}},
		{"every builder, in order", codes.FailedPrecondition, "no", []proto.Message{
			faultlinetest.LocalizedMessage("en-US", "No."),
			faultlinetest.ResourceInfo("sandbox", "sb-1", "team", "gone"),
			faultlinetest.PreconditionFailure(faultlinetest.PreconditionViolation("TOS", "user:u", "not accepted")),
			faultlinetest.QuotaFailure(faultlinetest.QuotaViolation("project:p", "gpus")),
			faultlinetest.BadRequest(faultlinetest.FieldViolation("a", "b"), faultlinetest.FieldViolation("c", "d")),
			&errdetails.DebugInfo{Detail: "any message works"},
		}, func(t *testing.T) *spb.Status {
			return &spb.Status{Code: int32(codes.FailedPrecondition), Message: "no", Details: []*anypb.Any{
				anyOf(t, &errdetails.LocalizedMessage{Locale: "en-US", Message: "No."}),
				anyOf(t, &errdetails.ResourceInfo{ResourceType: "sandbox", ResourceName: "sb-1", Owner: "team", Description: "gone"}),
				anyOf(t, &errdetails.PreconditionFailure{Violations: []*errdetails.PreconditionFailure_Violation{{Type: "TOS", Subject: "user:u", Description: "not accepted"}}}),
				anyOf(t, &errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{Subject: "project:p", Description: "gpus"}}}),
				anyOf(t, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "a", Description: "b"}, {Field: "c", Description: "d"}}}),
				anyOf(t, &errdetails.DebugInfo{Detail: "any message works"}),
			}}
		}},
		{"nil details skipped", codes.Internal, "m", []proto.Message{nil, nilInfo, faultlinetest.RetryInfo(0)}, func(t *testing.T) *spb.Status {
			return &spb.Status{Code: int32(codes.Internal), Message: "m", Details: []*anypb.Any{
				anyOf(t, &errdetails.RetryInfo{RetryDelay: durationpb.New(0)}),
			}}
		}},
		{"only nil details", codes.Internal, "m\xff", []proto.Message{nil, nilInfo}, func(*testing.T) *spb.Status {
			return &spb.Status{Code: int32(codes.Internal), Message: "m\xff"}
		}},
		{"an Any is sent as it is", codes.Internal, "m", []proto.Message{garbage}, func(*testing.T) *spb.Status {
			return &spb.Status{Code: int32(codes.Internal), Message: "m", Details: []*anypb.Any{garbage}}
		}},
		{"nil violations skipped", codes.InvalidArgument, "m", []proto.Message{
			faultlinetest.BadRequest(nil, faultlinetest.FieldViolation("f", "d"), nil),
			faultlinetest.QuotaFailure(nil), faultlinetest.PreconditionFailure(),
		}, func(t *testing.T) *spb.Status {
			return &spb.Status{Code: int32(codes.InvalidArgument), Message: "m", Details: []*anypb.Any{
				anyOf(t, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "f", Description: "d"}}}),
				anyOf(t, &errdetails.QuotaFailure{}),
				anyOf(t, &errdetails.PreconditionFailure{}),
			}}
		}},
		{"invalid UTF-8 repaired", codes.InvalidArgument, "bad \xff", []proto.Message{
			faultlinetest.ErrorInfo("d\xff", "R\xfe", map[string]string{"k\xff": "v\xfe", "ok": "fine"}),
			faultlinetest.BadRequest(&errdetails.BadRequest_FieldViolation{Field: "f\xff",
				LocalizedMessage: &errdetails.LocalizedMessage{Message: "m\xff"}}),
			&errdetails.DebugInfo{StackEntries: []string{"a\xff", "b"}},
			&anypb.Any{TypeUrl: "type.googleapis.com/x\xff"},
		}, func(t *testing.T) *spb.Status {
			return &spb.Status{Code: int32(codes.InvalidArgument), Message: "bad \uFFFD", Details: []*anypb.Any{
				anyOf(t, &errdetails.ErrorInfo{Domain: "d\uFFFD", Reason: "R\uFFFD", Metadata: map[string]string{"k\uFFFD": "v\uFFFD", "ok": "fine"}}),
				anyOf(t, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "f\uFFFD",
					LocalizedMessage: &errdetails.LocalizedMessage{Message: "m\uFFFD"}}}}),
				anyOf(t, &errdetails.DebugInfo{StackEntries: []string{"a\uFFFD", "b"}}),
				{TypeUrl: "type.googleapis.com/x\uFFFD"},
			}}
		}},
		{"OK keeps its details", codes.OK, "", []proto.Message{faultlinetest.RetryInfo(time.Second)}, func(t *testing.T) *spb.Status {
			return &spb.Status{Details: []*anypb.Any{anyOf(t, &errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})}}
		}},
		{"undefined code", codes.Code(99), "m", []proto.Message{faultlinetest.RetryInfo(time.Second)}, func(t *testing.T) *spb.Status {
			return &spb.Status{Code: 99, Message: "m", Details: []*anypb.Any{anyOf(t, &errdetails.RetryInfo{RetryDelay: durationpb.New(time.Second)})}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := faultlinetest.Status(tc.code, tc.msg, tc.details...)
			if diff := cmp.Diff(tc.want(t), st.Proto(), protocmp.Transform()); diff != "" {
				t.Errorf("Status(%v, %q, ...) differs (-want +got):\n%s", tc.code, tc.msg, diff)
			}
			// What grpc-go does to send details must work, or it would drop them.
			if _, err := proto.Marshal(st.Proto()); err != nil && len(st.Proto().GetDetails()) > 0 {
				t.Errorf("proto.Marshal(Status(%v, %q, ...).Proto()) error = %v, want none", tc.code, tc.msg, err)
			}
			err := faultlinetest.Error(tc.code, tc.msg, tc.details...)
			if tc.code == codes.OK {
				if err != nil {
					t.Errorf("Error(OK, ...) = %v, want nil", err)
				}
				return
			}
			if diff := cmp.Diff(st.Proto(), status.Convert(err).Proto(), protocmp.Transform()); diff != "" {
				t.Errorf("status.Convert(Error(%v, %q, ...)) differs from Status (-want +got):\n%s", tc.code, tc.msg, diff)
			}
		})
	}
}

// TestBuildersCopy checks that the builders and Status keep copies of their input.
func TestBuildersCopy(t *testing.T) {
	md := map[string]string{"k": "v"}
	ei := faultlinetest.ErrorInfo("d", "R", md)
	md["k"] = "changed"
	if ei.GetMetadata()["k"] != "v" {
		t.Errorf("ErrorInfo kept the caller's map: metadata k = %q, want %q", ei.GetMetadata()["k"], "v")
	}
	if got := faultlinetest.ErrorInfo("d", "R", map[string]string{}).GetMetadata(); got != nil {
		t.Errorf("ErrorInfo(empty map) metadata = %v, want nil", got)
	}
	fv := faultlinetest.FieldViolation("f", "d")
	br := faultlinetest.BadRequest(fv)
	fv.Field = "changed"
	st := faultlinetest.Status(codes.InvalidArgument, "m", br)
	br.FieldViolations[0].Description = "changed too"
	want := faultlinetest.BadRequest(faultlinetest.FieldViolation("f", "d"))
	if diff := cmp.Diff([]any{want}, st.Details(), protocmp.Transform()); diff != "" {
		t.Errorf("Status details changed with their input (-want +got):\n%s", diff)
	}
}

// TestRetryInfoDurations checks that every duration is sent as given and parsed back.
func TestRetryInfoDurations(t *testing.T) {
	for _, d := range []time.Duration{0, time.Nanosecond, -time.Nanosecond, 5 * time.Second, -1500 * time.Millisecond,
		math.MaxInt64, math.MinInt64} {
		ri := faultlinetest.RetryInfo(d)
		if err := ri.GetRetryDelay().CheckValid(); err != nil || ri.GetRetryDelay().AsDuration() != d {
			t.Errorf("RetryInfo(%v) = %v (valid: %v), want %v", d, ri.GetRetryDelay(), err, d)
		}
		info := details.Parse(faultlinetest.Status(codes.Unavailable, "m", ri))
		if info.RetryDelay != d || !info.HasRetryDelay {
			t.Errorf("Parse(Status(RetryInfo(%v))) = %v, %v, want %v, true", d, info.RetryDelay, info.HasRetryDelay, d)
		}
	}
}

// TestStatusClassified checks the statuses users build most: through the classifier
// they give the kinds and facts the sandbox service's errors do.
func TestStatusClassified(t *testing.T) {
	tests := []struct {
		name string
		st   *status.Status
		want errs.Kind
		info details.Info
	}{
		{"runner unavailable with a hint", faultlinetest.Status(codes.Unavailable, "m",
			faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_RUNNER_UNAVAILABLE", nil), faultlinetest.RetryInfo(2*time.Second)),
			errs.ErrSandboxUnavailable, details.Info{Reason: "CWSANDBOX_RUNNER_UNAVAILABLE", Domain: classify.DefaultDomain,
				Metadata: map[string]string{}, RetryDelay: 2 * time.Second, HasRetryDelay: true}},
		{"two field violations", faultlinetest.Status(codes.InvalidArgument, "m",
			faultlinetest.BadRequest(faultlinetest.FieldViolation("a", "b"), faultlinetest.FieldViolation("c", "d"))),
			errs.ErrSandboxValidation, details.Info{Violations: []details.Violation{{Field: "a", Description: "b"}, {Field: "c", Description: "d"}}}},
		{"untrusted domain", faultlinetest.Status(codes.Internal, "m",
			faultlinetest.ErrorInfo("example.com", "CWSANDBOX_RUNNER_UNAVAILABLE", map[string]string{"k": "v"})),
			errs.ErrSandbox, details.Info{Reason: "CWSANDBOX_RUNNER_UNAVAILABLE", Domain: "example.com", Metadata: map[string]string{"k": "v"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := classify.Classify(tc.st.Err())
			d, ok := e.RetryDelay()
			got := details.Info{Reason: e.Reason(), Domain: e.Domain(), Metadata: e.Metadata(), RetryDelay: d, HasRetryDelay: ok,
				Violations: violations(e.FieldViolations())}
			if e.Kind() != tc.want {
				t.Errorf("Classify(%s).Kind() = %v, want %v", tc.name, e.Kind(), tc.want)
			}
			if diff := cmp.Diff(tc.info, got); diff != "" {
				t.Errorf("Classify(%s) facts differ (-want +got):\n%s", tc.name, diff)
			}
		})
	}
}

// FuzzStatus checks that Status never panics, always produces a status grpc-go can send,
// and that the classifier reads back what was built, with invalid UTF-8 repaired.
func FuzzStatus(f *testing.F) {
	f.Add(uint32(14), "down", "cwsandbox.com", "CWSANDBOX_RUNNER_UNAVAILABLE", "k", "v", int64(2e9), "field", "description")
	f.Add(uint32(0), "\xff", "\xfe", "", "\xff", "", int64(math.MinInt64), "", "")
	f.Add(uint32(99), strings.Repeat("é", 300), "d", "R\x00", "", "\u2028", int64(-1), "f\xff", "\xff")
	f.Fuzz(func(t *testing.T, code uint32, msg, domain, reason, key, value string, delay int64, field, desc string) {
		st := faultlinetest.Status(codes.Code(code), msg,
			faultlinetest.ErrorInfo(domain, reason, map[string]string{key: value}),
			faultlinetest.RetryInfo(time.Duration(delay)),
			faultlinetest.BadRequest(faultlinetest.FieldViolation(field, desc)))
		b, err := proto.Marshal(st.Proto())
		if err != nil {
			t.Fatalf("proto.Marshal(Status(...).Proto()) error = %v", err)
		}
		if got := st.Code(); got != codes.Code(code) {
			t.Errorf("Status(%d).Code() = %v", code, got)
		}
		if len(st.Proto().GetDetails()) != 3 {
			t.Fatalf("Status(...) has %d details, want 3", len(st.Proto().GetDetails()))
		}
		var wire spb.Status
		if err := proto.Unmarshal(b, &wire); err != nil {
			t.Fatalf("proto.Unmarshal: %v", err)
		}
		info := details.Parse(status.FromProto(&wire))
		want := details.Info{RetryDelay: time.Duration(delay), HasRetryDelay: true}
		if r := fix(reason); r != "" {
			want.Reason, want.Domain, want.Metadata = r, fix(domain), map[string]string{fix(key): fix(value)}
		}
		if fix(field) != "" || fix(desc) != "" {
			want.Violations = []details.Violation{{Field: fix(field), Description: fix(desc)}}
		}
		if diff := cmp.Diff(want, info, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("Parse(Status(...)) differs (-want +got):\n%s", diff)
		}
		if !utf8.ValidString(st.Message()) {
			t.Errorf("Status(%q).Message() = %q, want valid UTF-8 when there are details", msg, st.Message())
		}
	})
}

func fix(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// violations converts field violations to the parser's form.
func violations(v []errs.FieldViolation) []details.Violation {
	var out []details.Violation
	for _, fv := range v {
		out = append(out, details.Violation(fv))
	}
	return out
}
