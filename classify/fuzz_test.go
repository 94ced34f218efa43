package classify_test

import (
	"context"
	"encoding/base64"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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
	"github.com/faultline-go/faultline/errs"
	aip "github.com/faultline-go/faultline/internal/details"
)

// seedDetails are detail messages the fuzz targets start from: every field of the three
// parsed types, empty and edge values, and their neighbours.
func seedDetails() []proto.Message {
	return []proto.Message{
		&errdetails.ErrorInfo{},
		&errdetails.ErrorInfo{Domain: "x"},
		&errdetails.ErrorInfo{Reason: "CWSANDBOX_FILE_NOT_FOUND", Domain: "cwsandbox.com",
			Metadata: map[string]string{"filepath": "/etc/hosts", "region": "us-east-04"}},
		&errdetails.ErrorInfo{Reason: "CWSANDBOX_BACKEND_UNAVAILABLE", Domain: "cwsandbox.com", Metadata: map[string]string{
			"a": "1", "b": "2", "c": "3", "d": "4", "e": "5", "f": "6", "g": "7", "h": "8", "i": "9", "": ""}},
		&errdetails.RetryInfo{},
		&errdetails.RetryInfo{RetryDelay: &durationpb.Duration{}},
		&errdetails.RetryInfo{RetryDelay: durationpb.New(7 * time.Second)},
		&errdetails.RetryInfo{RetryDelay: &durationpb.Duration{Seconds: -5}},
		&errdetails.RetryInfo{RetryDelay: &durationpb.Duration{Seconds: 1e18}},
		&errdetails.RetryInfo{RetryDelay: &durationpb.Duration{Seconds: 9223372036, Nanos: 854775807}},
		&errdetails.RetryInfo{RetryDelay: &durationpb.Duration{Seconds: 9223372036, Nanos: 854775808}},
		&errdetails.RetryInfo{RetryDelay: &durationpb.Duration{Seconds: -9223372036, Nanos: -854775808}},
		&errdetails.RetryInfo{RetryDelay: &durationpb.Duration{Seconds: 1, Nanos: -1}},
		&errdetails.RetryInfo{RetryDelay: &durationpb.Duration{Nanos: 1e9}},
		&errdetails.BadRequest{},
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "tags[0]", LocalizedMessage: &errdetails.LocalizedMessage{Locale: "en-US", Message: "Invalid tag"}, Reason: "TAG_INVALID"},
			{Field: "spec.image", Description: "must not be empty"},
			{Reason: "ONLY_REASON"},
			{},
		}},
		&errdetails.QuotaFailure{Violations: []*errdetails.QuotaFailure_Violation{{Subject: "s", Description: "d"}}},
		&errdetails.DebugInfo{Detail: "secret stack"},
	}
}

// seedStatuses are real encoded statuses.
func seedStatuses(tb testing.TB) [][]byte {
	var out [][]byte
	ds := seedDetails()
	for i, d := range ds {
		out = append(out, marshal(tb, &spb.Status{Code: int32(i % 17), Message: "m", Details: []*anypb.Any{anyOf(tb, d)}}))
	}
	all := &spb.Status{Code: int32(codes.Unavailable), Message: "backend is restarting"}
	for _, d := range ds {
		all.Details = append(all.Details, anyOf(tb, d))
	}
	out = append(out, marshal(tb, all), marshal(tb, benchStatus.Proto()), nil)
	// Failures grpc-go makes on the client: a size limit, a rejected certificate.
	out = append(out,
		marshal(tb, &spb.Status{Code: int32(codes.ResourceExhausted), Message: "grpc: received message larger than max (9 vs. 1)"}),
		marshal(tb, &spb.Status{Code: int32(codes.Unavailable),
			Message: `connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: x509: unknown"`}))
	return out
}

// deepGroups is an unknown field 15 holding n nested groups: valid for proto.Unmarshal up to
// n = 10001.
func deepGroups(n int) []byte {
	return []byte(strings.Repeat("\x7b", n) + strings.Repeat("\x7c", n))
}

var detailURLs = [...]string{errorInfoURL, retryInfoURL, badRequestURL}

// fuzzURLs are the type URLs FuzzParseDetails puts its values under: the parsed types, one
// other linked type and one that is not linked into the program.
var fuzzURLs = [...]string{errorInfoURL, retryInfoURL, badRequestURL,
	"type.googleapis.com/google.rpc.QuotaFailure", "type.googleapis.com/example.Unknown"}

// FuzzParseDetails parses statuses with two fuzzed Any values under the parsed type URLs and
// others, and checks the parse rules.
func FuzzParseDetails(f *testing.F) {
	var values [][]byte
	for _, d := range seedDetails() {
		values = append(values, marshal(f, d))
	}
	// Merged occurrences of a message field, unknown fields, groups, wrong wire types.
	values = append(values,
		append(marshal(f, &errdetails.RetryInfo{RetryDelay: &durationpb.Duration{Seconds: 1}}),
			marshal(f, &errdetails.RetryInfo{RetryDelay: &durationpb.Duration{Nanos: 5}})...),
		append(marshal(f, &errdetails.ErrorInfo{Reason: "R"}), deepGroups(70)...),
		[]byte("\x08\x01"),         // reason as a varint: an unknown field
		[]byte("\x0a\x01\xff"),     // invalid UTF-8
		[]byte("\x0a\x00\x0c"),     // a lone end group
		[]byte("\x0e"),             // wire type 6
		[]byte("\x0a\x05\x08\x01"), // truncated
	)
	n := len(fuzzURLs)
	for i, a := range values {
		for url := range n { // every value a under every URL, then b under another
			f.Add(uint8(url+n*(i%n)), a, values[(i+1)%len(values)])
		}
	}
	f.Fuzz(func(t *testing.T, sel uint8, a, b []byte) {
		ds := []*anypb.Any{
			{TypeUrl: fuzzURLs[int(sel)%n], Value: a},
			{TypeUrl: fuzzURLs[int(sel)/n%n], Value: b},
		}
		checkRules(t, ds, aip.Parse(rawStatus(codes.Internal, "", ds...)))
	})
}

// FuzzParse parses fuzzed google.rpc.Status messages, checks the parse rules, and checks
// that ParseTrailer reads the same from the encoded status.
func FuzzParse(f *testing.F) {
	for _, s := range seedStatuses(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var sp spb.Status
		if proto.Unmarshal(data, &sp) != nil {
			return
		}
		got := aip.Parse(status.FromProto(&sp))
		checkRules(t, sp.GetDetails(), got)
		if aip.Usable(got) {
			md := metadata.MD{aip.StatusDetailsKey: {string(data)}}
			if d := diffInfo(aip.ParseTrailer(md), got); d != "" {
				t.Errorf("ParseTrailer(%x) differs from Parse (-want +got):\n%s", data, d)
			}
		}
	})
}

// FuzzParseTrailer parses two fuzzed trailer values under differently cased keys and checks
// the raw-trailer rules.
func FuzzParseTrailer(f *testing.F) {
	ss := seedStatuses(f)
	for i, s := range ss {
		f.Add(uint8(i), string(s), base64.StdEncoding.EncodeToString(ss[(i+1)%len(ss)]))
		f.Add(uint8(i), base64.RawURLEncoding.EncodeToString(s), "garbage")
	}
	keys := [...]string{aip.StatusDetailsKey, "Grpc-Status-Details-Bin", "GRPC-STATUS-DETAILS-BIN", "grpc-status-details"}
	f.Fuzz(func(t *testing.T, sel uint8, a, b string) {
		md := metadata.MD{}
		if sel&0x80 != 0 { // two keys
			md[keys[int(sel)%4]] = []string{a}
			md[keys[int(sel>>2)%4]] = append(md[keys[int(sel>>2)%4]], b)
		} else {
			md[keys[int(sel)%4]] = []string{a, b}
		}
		got := aip.ParseTrailer(md)
		checkInfo(t, got)
		if d := diffInfo(got, trailerRule(md)); d != "" {
			t.Errorf("ParseTrailer(%q) breaks the raw-trailer rule (-want +got):\n%s", md, d)
		}
	})
}

// FuzzClassify classifies fuzzed statuses on calls of every family and checks what must hold
// for any input.
func FuzzClassify(f *testing.F) {
	for i, s := range seedStatuses(f) {
		f.Add(uint8(i), s)
	}
	methods := [...]string{
		"/coreweave.sandbox.v1.SandboxService/GetSandbox",
		"/coreweave.sandbox.v1.DiscoveryService/GetRunner",
		"/other.v1.Service/Do",
		"",
	}
	c := classify.New()
	f.Fuzz(func(t *testing.T, sel uint8, data []byte) {
		var sp spb.Status
		if proto.Unmarshal(data, &sp) != nil || sp.GetCode() == 0 {
			return
		}
		st := status.FromProto(&sp)
		orig := st.Err()
		call := classify.Call{Method: methods[int(sel)%len(methods)]}
		if sel&4 != 0 {
			call.Resource.SnapshotID = "fss-1"
		}
		if sel&8 != 0 {
			call.Resource.FilePath = "/call/path"
		}
		if sel&16 != 0 {
			call.ContextErr = context.Canceled
		}
		e := c.Classify(orig, call)
		if e == nil {
			t.Fatalf("Classify(%x) = nil, want an error", data)
		}
		checkLine(t, e.Error())
		if e.GRPCStatus() != st {
			t.Errorf("Classify(%x).GRPCStatus() = %p, want the original status %p", data, e.GRPCStatus(), st)
		}
		if got := status.Code(e); got != st.Code() {
			t.Errorf("status.Code(Classify(%x)) = %v, want %v", data, got, st.Code())
		}
		if !errors.Is(e, orig) {
			t.Errorf("errors.Is(Classify(%x), original) = false, want true", data)
		}
		if !errors.Is(e, e.Kind()) || !errors.Is(e, errs.ErrCWSandbox) {
			t.Errorf("Classify(%x) does not match its own kind %v and the base", data, e.Kind())
		}
		info := aip.Parse(st)
		local := classify.LocalFailure(st)
		if local {
			// grpc-go's own failure: the family's base kind (that of INTERNAL), whatever the code.
			if want := c.Kind(codes.Internal, aip.Info{}, call); e.Kind() != want {
				t.Errorf("Classify(%x), a client failure: kind %v, want the base %v", data, e.Kind(), want)
			}
		} else if want := c.Kind(st.Code(), info, call); e.Kind() != want {
			t.Errorf("Classify(%x).Kind() = %v, want %v", data, e.Kind(), want)
		}
		if info.Domain != classify.DefaultDomain && !local {
			// The domain gate: an untrusted reason never chooses the kind.
			if want := c.Kind(st.Code(), aip.Info{Violations: info.Violations}, call); e.Kind() != want {
				t.Errorf("Classify(%x) with untrusted domain %q: kind %v, want %v (the code's)", data, info.Domain, e.Kind(), want)
			}
		}
		if e.Reason() != info.Reason || e.Domain() != info.Domain {
			t.Errorf("Classify(%x) reason, domain = %q, %q, want %q, %q", data, e.Reason(), e.Domain(), info.Reason, info.Domain)
		}
		fam, auth := c.Family(call.Method), st.Code() == codes.Unauthenticated || st.Code() == codes.PermissionDenied
		if fam == errs.ErrDiscovery && !auth && !errors.Is(e, errs.ErrDiscovery) {
			t.Errorf("Classify(%x) on a discovery call = %v, want a DiscoveryError", data, e.Kind())
		}
		if fam != errs.ErrSandbox && info.Domain != classify.DefaultDomain && errors.Is(e, errs.ErrSandbox) {
			t.Errorf("Classify(%x) on %q without a trusted reason = %v, want no SandboxError", data, call.Method, e.Kind())
		}
		if got := errors.Is(e, context.Canceled); got != (call.ContextErr != nil) {
			t.Errorf("errors.Is(Classify(%x) with ContextErr %v, context.Canceled) = %v, want %v", data, call.ContextErr, got, !got)
		}
		if call.ContextErr != nil && st.Code() == codes.Canceled && info.Domain != classify.DefaultDomain && e.Kind() != c.Kind(codes.Internal, aip.Info{}, call) {
			t.Errorf("Classify(%x) cancelled by the caller = %v, want the family base %v", data, e.Kind(), c.Kind(codes.Internal, aip.Info{}, call))
		}
		if e.Kind() == errs.ErrSandboxFile && call.Resource.FilePath != "" && e.Resource().FilePath != call.Resource.FilePath {
			t.Errorf("Classify(%x).Resource().FilePath = %q, want the call's %q", data, e.Resource().FilePath, call.Resource.FilePath)
		}
		if d := cmp.Diff(info.Other, e.OtherDetails(), protocmp.Transform(), cmpopts.EquateEmpty()); d != "" {
			t.Errorf("Classify(%x).OtherDetails() differs from Parse's (-want +got):\n%s", data, d)
		}
	})
}

// checkInfo checks what every parsed Info must satisfy.
func checkInfo(t *testing.T, info aip.Info) {
	t.Helper()
	if (info.Reason != "") != (info.Metadata != nil) {
		t.Errorf("Info reason %q with metadata %v: metadata must be non-nil exactly when a reason was found", info.Reason, info.Metadata)
	}
	if info.Reason == "" && info.Domain != "" {
		t.Errorf("Info domain %q without a reason", info.Domain)
	}
	if !info.HasRetryDelay && info.RetryDelay != 0 {
		t.Errorf("Info retry delay %v with HasRetryDelay false", info.RetryDelay)
	}
	for _, v := range info.Violations {
		if v.Field == "" && v.Description == "" {
			t.Errorf("Info kept an empty violation: %+v", info.Violations)
		}
	}
	for _, m := range info.Other {
		if parsedType(m) {
			t.Errorf("Info.Other holds a parsed detail: %v", m)
		}
	}
}

// parsedType reports whether m is, or is an Any naming, an ErrorInfo, RetryInfo or
// BadRequest.
func parsedType(m proto.Message) bool {
	if a, ok := m.(*anypb.Any); ok {
		return a.MessageIs((*errdetails.ErrorInfo)(nil)) || a.MessageIs((*errdetails.RetryInfo)(nil)) ||
			a.MessageIs((*errdetails.BadRequest)(nil))
	}
	switch m.(type) {
	case *errdetails.ErrorInfo, *errdetails.RetryInfo, *errdetails.BadRequest:
		return true
	}
	return false
}

// checkRules checks got, the Info parsed from a status with details, against the parse
// rules of classification.md section 1, with facts read off each detail by
// anypb.UnmarshalTo into the errdetails types.
func checkRules(t *testing.T, details []*anypb.Any, got aip.Info) {
	t.Helper()
	checkInfo(t, got)
	var (
		reason     *errdetails.ErrorInfo
		delay      *durationpb.Duration
		violations []*errdetails.BadRequest_FieldViolation
		others     []*anypb.Any
	)
	for _, a := range details {
		var ei errdetails.ErrorInfo
		var ri errdetails.RetryInfo
		var br errdetails.BadRequest
		switch {
		case !parsedType(a):
			others = append(others, a)
		case a.MessageIs(&ei):
			if reason == nil && a.UnmarshalTo(&ei) == nil && ei.GetReason() != "" {
				reason = &ei
			}
		case a.MessageIs(&ri):
			if delay == nil && a.UnmarshalTo(&ri) == nil && ri.GetRetryDelay() != nil && ri.GetRetryDelay().CheckValid() == nil {
				delay = ri.GetRetryDelay()
			}
		case a.MessageIs(&br):
			if a.UnmarshalTo(&br) == nil {
				violations = append(violations, br.GetFieldViolations()...)
			}
		}
	}
	// Rule 2: the first ErrorInfo with a reason, as a unit.
	if reason == nil && got.Reason != "" {
		t.Errorf("Parse found reason %q, want none: no ErrorInfo with a reason decodes", got.Reason)
	}
	if reason != nil && (got.Reason != reason.GetReason() || got.Domain != reason.GetDomain() || !maps.Equal(got.Metadata, reason.GetMetadata())) {
		t.Errorf("Parse ErrorInfo = %q, %q, %v, want the first with a reason: %q, %q, %v",
			got.Reason, got.Domain, got.Metadata, reason.GetReason(), reason.GetDomain(), reason.GetMetadata())
	}
	// Rule 3: the first present and valid delay, clamped to time.Duration.
	if got.HasRetryDelay != (delay != nil) {
		t.Errorf("Parse HasRetryDelay = %v, want %v (first valid present delay: %v)", got.HasRetryDelay, delay != nil, delay)
	}
	if delay != nil && got.RetryDelay != delay.AsDuration() {
		t.Errorf("Parse RetryDelay = %v, want %v (from %v)", got.RetryDelay, delay.AsDuration(), delay)
	}
	// Rule 4: every violation with a field or a description, in order, with the fallbacks.
	var want []aip.Violation
	for _, v := range violations {
		desc := v.GetDescription()
		if desc == "" {
			desc = v.GetLocalizedMessage().GetMessage()
		}
		if desc == "" {
			desc = v.GetReason()
		}
		if v.GetField() != "" || desc != "" {
			want = append(want, aip.Violation{Field: v.GetField(), Description: desc})
		}
	}
	if d := cmp.Diff(want, got.Violations, cmpopts.EquateEmpty()); d != "" {
		t.Errorf("Parse violations differ (-want +got):\n%s", d)
	}
	// Rule 8: every other detail kept, in order: decoded, or as the Any itself.
	if len(got.Other) != len(others) {
		t.Fatalf("Parse kept %d other details, want %d", len(got.Other), len(others))
	}
	for i, a := range others {
		m := got.Other[i]
		if kept, ok := m.(*anypb.Any); ok {
			if a == nil {
				a = &anypb.Any{} // a nil detail comes back empty
			}
			if !proto.Equal(kept, a) {
				t.Errorf("Parse Other[%d] = %v, want %v", i, kept, a)
			}
			continue
		}
		again := m.ProtoReflect().New().Interface()
		if !a.MessageIs(m) || a.UnmarshalTo(again) != nil || !proto.Equal(m, again) {
			t.Errorf("Parse Other[%d] = %v, want the decoded %q detail", i, m, a.GetTypeUrl())
		}
	}
}

// trailerRule is what ParseTrailer must return for md by rule 7: Parse of the first value
// that holds usable details, keys matched case-insensitively (the canonical spelling first,
// then the others sorted), each value as a binary status, then as base64 text.
func trailerRule(md metadata.MD) aip.Info {
	var keys []string
	for k := range md {
		if k != aip.StatusDetailsKey && strings.EqualFold(k, aip.StatusDetailsKey) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if _, ok := md[aip.StatusDetailsKey]; ok {
		keys = append([]string{aip.StatusDetailsKey}, keys...)
	}
	for _, k := range keys {
		for _, v := range md[k] {
			candidates := [][]byte{[]byte(v)}
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
				if raw, err := enc.DecodeString(strings.TrimSpace(v)); err == nil {
					candidates = append(candidates, raw)
					break
				}
			}
			for _, c := range candidates {
				var sp spb.Status
				if proto.Unmarshal(c, &sp) != nil {
					continue
				}
				if info := aip.Parse(status.FromProto(&sp)); aip.Usable(info) {
					return info
				}
			}
		}
	}
	return aip.Info{}
}

// checkLine checks that an error text is one valid UTF-8 line of at most 1 KiB.
func checkLine(t *testing.T, s string) {
	t.Helper()
	if len(s) > 1024 {
		t.Errorf("Error() is %d bytes, want <= 1024", len(s))
	}
	if strings.ContainsAny(s, "\n\r\u2028\u2029") {
		t.Errorf("Error() = %q, want one line", s)
	}
	if !utf8.ValidString(s) {
		t.Errorf("Error() = %q, want valid UTF-8", s)
	}
}
