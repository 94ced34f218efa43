package classify_test

import (
	"encoding/base64"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/faultlinetest"
	aip "github.com/faultline-go/faultline/internal/details"
)

// rawRetryInfo returns a RetryInfo whose retry_delay has the given fields as sent, valid
// or not, in or out of time.Duration's range (faultlinetest.RetryInfo builds valid ones).
func rawRetryInfo(seconds int64, nanos int32) *errdetails.RetryInfo {
	return &errdetails.RetryInfo{RetryDelay: &durationpb.Duration{Seconds: seconds, Nanos: nanos}}
}

func fv(field, description string) aip.Violation {
	return aip.Violation{Field: field, Description: description}
}

func garbage(url string) *anypb.Any {
	// A length-delimited field 1 that claims more bytes than there are.
	return &anypb.Any{TypeUrl: url, Value: []byte("\x0a\x10abc")}
}

func TestParse(t *testing.T) {
	unknownTypes := []proto.Message{
		&anypb.Any{TypeUrl: "type.googleapis.com/google.rpc.ErrorInfoV2", Value: marshal(t, &errdetails.ErrorInfo{Reason: "X"})},
		&anypb.Any{TypeUrl: "type.googleapis.com/evil.google.rpc.ErrorInfo", Value: marshal(t, &errdetails.ErrorInfo{Reason: "X"})},
		&anypb.Any{TypeUrl: "google.rpc.RetryInfoX", Value: marshal(t, faultlinetest.RetryInfo(time.Second))},
		&anypb.Any{TypeUrl: "", Value: marshal(t, faultlinetest.BadRequest(&errdetails.BadRequest_FieldViolation{Field: "f"}))},
		&anypb.Any{TypeUrl: "type.googleapis.com/example.Unknown", Value: []byte("\xff\xff")},
	}
	otherTypes := []proto.Message{
		&errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{Subject: "s"}}},
		&errdetails.PreconditionFailure{}, &errdetails.ResourceInfo{ResourceName: "r"}, &errdetails.RequestInfo{RequestId: "id"},
		&errdetails.DebugInfo{Detail: "d"}, &errdetails.Help{}, &errdetails.LocalizedMessage{Message: "m"},
	}
	badQuota := garbage("type.googleapis.com/google.rpc.QuotaFailure")
	tests := []struct {
		name    string
		details []proto.Message // *anypb.Any is used as is
		want    aip.Info
	}{
		// ErrorInfo.
		{
			name: "example: ErrorInfo with an empty reason is skipped",
			details: []proto.Message{
				&errdetails.ErrorInfo{Domain: "x"},
				&errdetails.ErrorInfo{Reason: "CWSANDBOX_FILE_NOT_FOUND", Domain: "cwsandbox.com"},
			},
			want: aip.Info{Reason: "CWSANDBOX_FILE_NOT_FOUND", Domain: "cwsandbox.com", Metadata: map[string]string{}},
		},
		{
			name: "first ErrorInfo with a reason wins as a unit",
			details: []proto.Message{
				&errdetails.ErrorInfo{Reason: "A", Domain: "d1", Metadata: map[string]string{"k": "1"}},
				&errdetails.ErrorInfo{Reason: "B", Domain: "d2", Metadata: map[string]string{"k": "2", "other": "x"}},
			},
			want: aip.Info{Reason: "A", Domain: "d1", Metadata: map[string]string{"k": "1"}},
		},
		{
			name: "ErrorInfo with many metadata entries",
			details: []proto.Message{&errdetails.ErrorInfo{Reason: "R", Metadata: map[string]string{
				"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "6", "g": "7", "h": "8", "i": "9", "j": "10"}}},
			want: aip.Info{Reason: "R", Metadata: map[string]string{
				"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "6", "g": "7", "h": "8", "i": "9", "j": "10"}},
		},
		{
			name:    "ErrorInfos without a reason say nothing",
			details: []proto.Message{&errdetails.ErrorInfo{Domain: "d", Metadata: map[string]string{"k": "v"}}, &errdetails.ErrorInfo{}},
			want:    aip.Info{},
		},
		{
			name: "ErrorInfo that does not decode is skipped",
			details: []proto.Message{
				garbage(errorInfoURL),
				&anypb.Any{TypeUrl: errorInfoURL, Value: []byte("\x0a\x02\xff\xfe")}, // reason not UTF-8
				&errdetails.ErrorInfo{Reason: "LATER", Domain: "d"},
			},
			want: aip.Info{Reason: "LATER", Domain: "d", Metadata: map[string]string{}},
		},
		// RetryInfo.
		{
			name:    "example: RetryInfo without the field is skipped, a later one wins",
			details: []proto.Message{&errdetails.RetryInfo{}, rawRetryInfo(7, 0)},
			want:    aip.Info{RetryDelay: 7 * time.Second, HasRetryDelay: true},
		},
		{
			name:    "example: present zero",
			details: []proto.Message{rawRetryInfo(0, 0), rawRetryInfo(7, 0)},
			want:    aip.Info{HasRetryDelay: true},
		},
		{
			name:    "first present RetryInfo wins",
			details: []proto.Message{rawRetryInfo(3, 0), rawRetryInfo(7, 0)},
			want:    aip.Info{RetryDelay: 3 * time.Second, HasRetryDelay: true},
		},
		{
			name:    "negative delay kept as given",
			details: []proto.Message{rawRetryInfo(-5, 0)},
			want:    aip.Info{RetryDelay: -5 * time.Second, HasRetryDelay: true},
		},
		{
			name:    "fractional delay",
			details: []proto.Message{rawRetryInfo(1, 500_000_000)},
			want:    aip.Info{RetryDelay: 1500 * time.Millisecond, HasRetryDelay: true},
		},
		{
			name:    "example: 10^18 s is absent",
			details: []proto.Message{rawRetryInfo(1e18, 0)},
			want:    aip.Info{},
		},
		{
			name:    "an invalid delay is absent and a later one wins",
			details: []proto.Message{rawRetryInfo(1e18, 0), rawRetryInfo(2, 0)},
			want:    aip.Info{RetryDelay: 2 * time.Second, HasRetryDelay: true},
		},
		{
			name:    "nanos out of range is absent",
			details: []proto.Message{rawRetryInfo(0, 1e9), rawRetryInfo(0, -1e9)},
			want:    aip.Info{},
		},
		{
			name:    "sign mismatch is absent",
			details: []proto.Message{rawRetryInfo(1, -1), rawRetryInfo(-1, 1)},
			want:    aip.Info{},
		},
		{
			name:    "10^10 s then 2 s: the first, clamped, wins",
			details: []proto.Message{rawRetryInfo(1e10, 0), rawRetryInfo(2, 0)},
			want:    aip.Info{RetryDelay: math.MaxInt64, HasRetryDelay: true},
		},
		{
			name:    "one nanosecond too long for time.Duration is clamped",
			details: []proto.Message{rawRetryInfo(9223372036, 854775808)},
			want:    aip.Info{RetryDelay: math.MaxInt64, HasRetryDelay: true},
		},
		{
			// classification.md section 1 rule 3 and its example row: clamped and present, so
			// that the retry layer stops as "hint too long" instead of reading "no hint".
			name:    "example: 10^10 s is the longest time.Duration, present",
			details: []proto.Message{rawRetryInfo(1e10, 0)},
			want:    aip.Info{RetryDelay: math.MaxInt64, HasRetryDelay: true},
		},
		{
			name:    "one nanosecond past the longest time.Duration is clamped, present",
			details: []proto.Message{rawRetryInfo(9223372036, 854775808), rawRetryInfo(2, 0)},
			want:    aip.Info{RetryDelay: math.MaxInt64, HasRetryDelay: true},
		},
		{
			name:    "durationpb's longest valid duration is clamped, present",
			details: []proto.Message{rawRetryInfo(315576000000, 999999999)},
			want:    aip.Info{RetryDelay: math.MaxInt64, HasRetryDelay: true},
		},
		{
			name:    "one nanosecond beyond the longest valid Duration is absent",
			details: []proto.Message{rawRetryInfo(315576000001, 0), rawRetryInfo(2, 0)},
			want:    aip.Info{RetryDelay: 2 * time.Second, HasRetryDelay: true},
		},
		{
			name:    "-10^10 s is clamped to the most negative, present",
			details: []proto.Message{rawRetryInfo(-1e10, 0)},
			want:    aip.Info{RetryDelay: math.MinInt64, HasRetryDelay: true},
		},
		{
			// A negative delay is kept as given; past time.Duration's range that is its most
			// negative value (as durationpb.Duration.AsDuration saturates). The retry layer
			// reads any delay <= 0 as no hint.
			name:    "too negative for time.Duration is clamped, present",
			details: []proto.Message{rawRetryInfo(-9223372036, -854775809), rawRetryInfo(2, 0)},
			want:    aip.Info{RetryDelay: math.MinInt64, HasRetryDelay: true},
		},
		{
			name:    "one second past durationpb's range is absent",
			details: []proto.Message{rawRetryInfo(315576000001, 0), rawRetryInfo(-315576000001, 0)},
			want:    aip.Info{},
		},
		{
			name:    "the longest time.Duration",
			details: []proto.Message{rawRetryInfo(9223372036, 854775807)},
			want:    aip.Info{RetryDelay: math.MaxInt64, HasRetryDelay: true},
		},
		{
			name:    "the most negative time.Duration",
			details: []proto.Message{rawRetryInfo(-9223372036, -854775808)},
			want:    aip.Info{RetryDelay: math.MinInt64, HasRetryDelay: true},
		},
		{
			name: "repeated retry_delay fields merge, as proto does",
			details: []proto.Message{&anypb.Any{TypeUrl: retryInfoURL, Value: append(
				marshal(t, rawRetryInfo(1, 0)), marshal(t, rawRetryInfo(0, 5))...)}},
			want: aip.Info{RetryDelay: time.Second + 5, HasRetryDelay: true},
		},
		{
			name:    "RetryInfo that does not decode is skipped",
			details: []proto.Message{garbage(retryInfoURL), rawRetryInfo(4, 0)},
			want:    aip.Info{RetryDelay: 4 * time.Second, HasRetryDelay: true},
		},
		// BadRequest.
		{
			name: "example: description falls back to the localized message",
			details: []proto.Message{faultlinetest.BadRequest(&errdetails.BadRequest_FieldViolation{
				Field: "tags[0]", LocalizedMessage: &errdetails.LocalizedMessage{Locale: "en-US", Message: "Invalid tag"}, Reason: "TAG_INVALID"})},
			want: aip.Info{Violations: []aip.Violation{fv("tags[0]", "Invalid tag")}},
		},
		{
			name:    "description falls back to the reason",
			details: []proto.Message{faultlinetest.BadRequest(&errdetails.BadRequest_FieldViolation{Field: "f", Reason: "F_BAD", LocalizedMessage: &errdetails.LocalizedMessage{Locale: "en"}})},
			want:    aip.Info{Violations: []aip.Violation{fv("f", "F_BAD")}},
		},
		{
			name: "description wins over the fallbacks",
			details: []proto.Message{faultlinetest.BadRequest(&errdetails.BadRequest_FieldViolation{
				Field: "f", Description: "D", LocalizedMessage: &errdetails.LocalizedMessage{Message: "L"}, Reason: "R"})},
			want: aip.Info{Violations: []aip.Violation{fv("f", "D")}},
		},
		{
			name: "a violation with neither field nor description is dropped",
			details: []proto.Message{faultlinetest.BadRequest(
				&errdetails.BadRequest_FieldViolation{},
				&errdetails.BadRequest_FieldViolation{LocalizedMessage: &errdetails.LocalizedMessage{Locale: "en"}},
				&errdetails.BadRequest_FieldViolation{Description: "only a description"},
				&errdetails.BadRequest_FieldViolation{Reason: "ONLY_REASON"},
				&errdetails.BadRequest_FieldViolation{Field: "only.field"},
			)},
			want: aip.Info{Violations: []aip.Violation{fv("", "only a description"), fv("", "ONLY_REASON"), fv("only.field", "")}},
		},
		{
			name: "violations of every BadRequest in order",
			details: []proto.Message{
				faultlinetest.BadRequest(faultlinetest.FieldViolation("a", "1"), faultlinetest.FieldViolation("b", "2")),
				&errdetails.ErrorInfo{Reason: "R"},
				faultlinetest.BadRequest(faultlinetest.FieldViolation("c", "3")),
			},
			want: aip.Info{Reason: "R", Metadata: map[string]string{}, Violations: []aip.Violation{fv("a", "1"), fv("b", "2"), fv("c", "3")}},
		},
		{
			name: "BadRequest that does not decode contributes nothing",
			details: []proto.Message{
				faultlinetest.BadRequest(faultlinetest.FieldViolation("a", "1")),
				&anypb.Any{TypeUrl: badRequestURL, Value: append(marshal(t, faultlinetest.BadRequest(&errdetails.BadRequest_FieldViolation{Field: "half"})), 0x0a, 0x05)},
				faultlinetest.BadRequest(faultlinetest.FieldViolation("c", "3")),
			},
			want: aip.Info{Violations: []aip.Violation{fv("a", "1"), fv("c", "3")}},
		},
		// Type URLs and other details.
		{
			name: "garbage under every known type URL is skipped, the others count",
			details: []proto.Message{
				garbage(errorInfoURL), garbage(retryInfoURL), garbage(badRequestURL),
				&errdetails.ErrorInfo{Reason: "R", Domain: "d"}, faultlinetest.RetryInfo(time.Second),
				faultlinetest.BadRequest(faultlinetest.FieldViolation("f", "d")),
				garbage(errorInfoURL), garbage(retryInfoURL), garbage(badRequestURL),
			},
			want: aip.Info{Reason: "R", Domain: "d", Metadata: map[string]string{}, RetryDelay: time.Second, HasRetryDelay: true,
				Violations: []aip.Violation{fv("f", "d")}},
		},
		{
			name:    "unknown type URLs say nothing and are kept as they are",
			details: unknownTypes,
			want:    aip.Info{Other: unknownTypes},
		},
		{
			name: "type URLs match by full name after the last slash",
			details: []proto.Message{
				&anypb.Any{TypeUrl: "google.rpc.ErrorInfo", Value: marshal(t, &errdetails.ErrorInfo{Reason: "BARE"})},
				&anypb.Any{TypeUrl: "example.com/x/google.rpc.RetryInfo", Value: marshal(t, faultlinetest.RetryInfo(2*time.Second))},
			},
			want: aip.Info{Reason: "BARE", Metadata: map[string]string{}, RetryDelay: 2 * time.Second, HasRetryDelay: true},
		},
		{
			name:    "other detail types say nothing and are kept, decoded",
			details: otherTypes,
			want:    aip.Info{Other: otherTypes},
		},
		{
			name: "other details are kept in order around the parsed ones",
			details: []proto.Message{
				otherTypes[0], &errdetails.ErrorInfo{Reason: "R"}, unknownTypes[0], faultlinetest.RetryInfo(time.Second), otherTypes[4],
				faultlinetest.BadRequest(&errdetails.BadRequest_FieldViolation{Field: "f"}), otherTypes[5],
			},
			want: aip.Info{Reason: "R", Metadata: map[string]string{}, RetryDelay: time.Second, HasRetryDelay: true,
				Violations: []aip.Violation{fv("f", "")},
				Other:      []proto.Message{otherTypes[0], unknownTypes[0], otherTypes[4], otherTypes[5]}},
		},
		{
			name:    "another linked type that does not decode is kept as its Any",
			details: []proto.Message{badQuota, &errdetails.DebugInfo{Detail: "d"}},
			want:    aip.Info{Other: []proto.Message{badQuota, &errdetails.DebugInfo{Detail: "d"}}},
		},
		{
			name:    "a nil detail is kept as an empty Any",
			details: []proto.Message{(*anypb.Any)(nil), faultlinetest.RetryInfo(time.Second)},
			want:    aip.Info{RetryDelay: time.Second, HasRetryDelay: true, Other: []proto.Message{&anypb.Any{}}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ds []*anypb.Any
			for _, d := range tc.details {
				a, ok := d.(*anypb.Any)
				if !ok {
					a = anyOf(t, d)
				}
				ds = append(ds, a)
			}
			st := rawStatus(codes.Internal, "m", ds...)
			before := st.Proto()
			got := aip.Parse(st)
			if d := diffInfo(got, tc.want); d != "" {
				t.Errorf("Parse(%v) differs (-want +got):\n%s", ds, d)
			}
			checkRules(t, ds, got)
			wantUsable := tc.want.Reason != "" || tc.want.HasRetryDelay || len(tc.want.Violations) > 0
			if got := aip.Usable(got); got != wantUsable {
				t.Errorf("Usable(Parse(%v)) = %v, want %v", ds, got, wantUsable)
			}
			// ParseTrailer reads the same from the encoded status, when it is usable.
			if b, err := proto.Marshal(st.Proto()); err == nil {
				md := metadata.MD{aip.StatusDetailsKey: {string(b)}}
				want := aip.Info{}
				if wantUsable {
					want = tc.want
				}
				if d := diffInfo(aip.ParseTrailer(md), want); d != "" {
					t.Errorf("ParseTrailer(%v) differs (-want +got):\n%s", ds, d)
				}
			}
			if !proto.Equal(st.Proto(), before) {
				t.Errorf("Parse(st) modified st: %v, want %v", st.Proto(), before)
			}
		})
	}
}

func TestParseNoDetails(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   *status.Status
	}{
		{"nil", nil},
		{"OK", status.New(codes.OK, "")},
		{"no details", status.New(codes.Unavailable, "down")},
		{"empty proto", status.FromProto(&spb.Status{})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := aip.Parse(tc.st); !cmp.Equal(got, aip.Info{}) {
				t.Errorf("Parse(%v) = %+v, want the zero Info", tc.st, got)
			}
		})
	}
}

// TestParseGroupDepth checks that unknown groups nested well within the protobuf library's
// recursion limit do not make a detail undecodable, and far deeper ones do.
func TestParseGroupDepth(t *testing.T) {
	for _, tc := range []struct {
		depth int
		found bool
	}{{1, true}, {64, true}, {1000, true}, {20000, false}} {
		t.Run(fmt.Sprint(tc.depth), func(t *testing.T) {
			value := append(marshal(t, &errdetails.ErrorInfo{Reason: "R"}), deepGroups(tc.depth)...)
			ds := []*anypb.Any{{TypeUrl: errorInfoURL, Value: value}, anyOf(t, faultlinetest.RetryInfo(time.Second))}
			got := aip.Parse(rawStatus(codes.Internal, "", ds...))
			if (got.Reason == "R") != tc.found {
				t.Errorf("Parse(ErrorInfo with %d nested groups).Reason = %q, want found %v", tc.depth, got.Reason, tc.found)
			}
			if !got.HasRetryDelay {
				t.Errorf("Parse(ErrorInfo with %d nested groups, RetryInfo).HasRetryDelay = false, want true", tc.depth)
			}
		})
	}
}

func TestParseTrailer(t *testing.T) {
	encode := func(details ...proto.Message) string {
		sp := &spb.Status{Code: int32(codes.Unavailable), Message: "m"}
		for _, d := range details {
			a, ok := d.(*anypb.Any)
			if !ok {
				a = anyOf(t, d)
			}
			sp.Details = append(sp.Details, a)
		}
		return string(marshal(t, sp))
	}
	reason := encode(&errdetails.ErrorInfo{Reason: "R", Domain: "d"})
	retry := encode(faultlinetest.RetryInfo(3 * time.Second))
	unusable := encode(&errdetails.DebugInfo{Detail: "x"}, &errdetails.ErrorInfo{Domain: "only"})
	badAny := string(append(marshal(t, &spb.Status{Code: 14, Details: []*anypb.Any{anyOf(t, &errdetails.ErrorInfo{Reason: "R"})}}),
		0x1a, 0x03, 0x0a, 0x01, 0xff)) // a second Any whose type URL is not UTF-8
	wantReason := aip.Info{Reason: "R", Domain: "d", Metadata: map[string]string{}}
	wantRetry := aip.Info{RetryDelay: 3 * time.Second, HasRetryDelay: true}
	tests := []struct {
		name string
		md   metadata.MD
		want aip.Info
	}{
		{"binary value", metadata.MD{"grpc-status-details-bin": {reason}}, wantReason},
		{"key matched case-insensitively", metadata.MD{"Grpc-Status-Details-Bin": {reason}}, wantReason},
		{"key in upper case", metadata.MD{"GRPC-STATUS-DETAILS-BIN": {retry}}, wantRetry},
		{"first usable value wins", metadata.MD{"grpc-status-details-bin": {unusable, retry, reason}}, wantRetry},
		{"no merging across values", metadata.MD{"grpc-status-details-bin": {reason, retry}}, wantReason},
		{"malformed value skipped", metadata.MD{"grpc-status-details-bin": {"\xff\xff\xff", "\x1a\x10short", retry}}, wantRetry},
		{"value with an undecodable Any skipped", metadata.MD{"grpc-status-details-bin": {badAny, retry}}, wantRetry},
		{"base64 text", metadata.MD{"grpc-status-details-bin": {base64.StdEncoding.EncodeToString([]byte(reason))}}, wantReason},
		{"unpadded base64 text", metadata.MD{"grpc-status-details-bin": {base64.RawStdEncoding.EncodeToString([]byte(retry))}}, wantRetry},
		{"URL base64 text with spaces", metadata.MD{"grpc-status-details-bin": {" " + base64.URLEncoding.EncodeToString([]byte(reason)) + "\n"}}, wantReason},
		{"base64 of garbage skipped", metadata.MD{"grpc-status-details-bin": {base64.StdEncoding.EncodeToString([]byte("\xff\xff")), reason}}, wantReason},
		{"canonical key first", metadata.MD{"Grpc-Status-Details-Bin": {retry}, "grpc-status-details-bin": {reason}}, wantReason},
		{"other spelling when the canonical one is unusable", metadata.MD{"Grpc-Status-Details-Bin": {retry}, "grpc-status-details-bin": {unusable}}, wantRetry},
		{"other keys ignored", metadata.MD{"grpc-status-details": {reason}, "x-grpc-status-details-bin": {retry}}, aip.Info{}},
		{"no usable value", metadata.MD{"grpc-status-details-bin": {unusable, "", "garbage"}}, aip.Info{}},
		{"empty", metadata.MD{}, aip.Info{}},
		{"nil", nil, aip.Info{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := aip.ParseTrailer(tc.md)
			if d := diffInfo(got, tc.want); d != "" {
				t.Errorf("ParseTrailer(%q) differs (-want +got):\n%s", tc.md, d)
			}
			checkInfo(t, got)
		})
	}
}

// TestOtherDetails checks that a classified error returns the details Parse did not
// consume, in order, decoded or as their Any.
func TestOtherDetails(t *testing.T) {
	quota := &errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{Subject: "project", Description: "over"}}}
	debug := &errdetails.DebugInfo{Detail: "stack"}
	help := &errdetails.Help{Links: []*errdetails.Help_Link{{Description: "docs", Url: "https://example.com"}}}
	unknown := &anypb.Any{TypeUrl: "type.googleapis.com/example.Unknown", Value: []byte("\x08\x01")}
	badQuota := garbage("type.googleapis.com/google.rpc.QuotaFailure")
	st := rawStatus(codes.Unavailable, "down",
		anyOf(t, &errdetails.ErrorInfo{Reason: "R"}), anyOf(t, quota), anyOf(t, faultlinetest.RetryInfo(time.Second)), anyOf(t, debug),
		garbage(errorInfoURL), anyOf(t, faultlinetest.BadRequest()), anyOf(t, help), unknown, badQuota)
	e := classify.New().Classify(st.Err(), sandboxCall)
	want := []proto.Message{quota, debug, help, unknown, badQuota}
	if d := cmp.Diff(want, e.OtherDetails(), protocmp.Transform()); d != "" {
		t.Errorf("Classify(%v).OtherDetails() differs (-want +got):\n%s", st.Proto(), d)
	}
}
