package classify_test

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	aip "github.com/faultline-go/faultline/internal/details"
)

// TestHostile classifies statuses a hostile or broken server could send: nothing panics,
// Error() stays one bounded line, and nothing is mapped to a kind the rules do not give.
func TestHostile(t *testing.T) {
	manyMetadata := make(map[string]string, 10000)
	for i := range 10000 {
		manyMetadata[fmt.Sprintf("key-%05d", i)] = "SECRET-" + strings.Repeat("v", 100)
	}
	var unknown, garbageAll, manyBadRequests, manyEmptyInfos, manyDebug []*anypb.Any
	for i := range 20000 {
		unknown = append(unknown, &anypb.Any{TypeUrl: fmt.Sprintf("type.googleapis.com/evil.Type%d", i),
			Value: marshal(t, &errdetails.ErrorInfo{Reason: "CWSANDBOX_BACKEND_UNAVAILABLE", Domain: classify.DefaultDomain})})
		garbageAll = append(garbageAll, garbage(detailURLs[i%3]))
		manyBadRequests = append(manyBadRequests, anyOf(t, faultlinetest.BadRequest(&errdetails.BadRequest_FieldViolation{
			Field: fmt.Sprintf("f%d\n", i), Description: "bad\r\x00value"})))
		manyEmptyInfos = append(manyEmptyInfos, anyOf(t, &errdetails.ErrorInfo{Domain: classify.DefaultDomain}))
		manyDebug = append(manyDebug, anyOf(t, &errdetails.DebugInfo{Detail: "SECRET-STACK"}))
	}
	trusted := func(reason string) *anypb.Any {
		return anyOf(t, &errdetails.ErrorInfo{Reason: reason, Domain: classify.DefaultDomain, Metadata: map[string]string{"filepath": "/p"}})
	}
	tests := []struct {
		name      string
		code      codes.Code
		msg       string
		details   []*anypb.Any
		want      errs.Kind
		wantDelay time.Duration
		wantHas   bool
		wantViols int
		wantOther int
	}{
		{name: "20k details under unknown type URLs", code: codes.Internal, details: unknown, want: errs.ErrSandbox, wantOther: 20000},
		{name: "20k garbage details under known type URLs", code: codes.Internal, details: garbageAll, want: errs.ErrSandbox},
		{name: "garbage around one valid detail", code: codes.Internal,
			details: append(append(append([]*anypb.Any{}, garbageAll[:100]...), trusted("CWSANDBOX_COMMAND_TIMEOUT")), garbageAll[:100]...),
			want:    errs.ErrSandboxCommandTimeout},
		{name: "20k BadRequests", code: codes.InvalidArgument, details: manyBadRequests, want: errs.ErrSandboxValidation, wantViols: 20000},
		{name: "20k empty ErrorInfos, then a trusted reason", code: codes.Internal,
			details: append(append([]*anypb.Any{}, manyEmptyInfos...), trusted("CWSANDBOX_FILE_TOO_LARGE")), want: errs.ErrSandboxFile},
		{name: "10k metadata entries", code: codes.Unavailable,
			details: []*anypb.Any{anyOf(t, &errdetails.ErrorInfo{Reason: "CWSANDBOX_FSS_NOT_READY", Domain: classify.DefaultDomain, Metadata: manyMetadata})},
			want:    errs.ErrSnapshotNotReady},
		{name: "10k metadata entries, untrusted", code: codes.Unavailable,
			details: []*anypb.Any{anyOf(t, &errdetails.ErrorInfo{Reason: "CWSANDBOX_FSS_NOT_READY", Domain: "evil.example.com", Metadata: manyMetadata})},
			want:    errs.ErrSandboxUnavailable},
		{name: "1 MiB server message", code: codes.Unavailable, msg: strings.Repeat("m\n\x00\xff", 1<<18), want: errs.ErrSandboxUnavailable},
		{name: "RetryInfo of 10^18 s", code: codes.Unavailable, details: []*anypb.Any{anyOf(t, rawRetryInfo(1e18, 0))}, want: errs.ErrSandboxUnavailable},
		{name: "RetryInfo of 10^10 s", code: codes.Unavailable, details: []*anypb.Any{anyOf(t, rawRetryInfo(1e10, 0))},
			want: errs.ErrSandboxUnavailable, wantDelay: math.MaxInt64, wantHas: true},
		{name: "20k DebugInfos", code: codes.Internal, details: manyDebug, want: errs.ErrSandbox, wantOther: 20000},
		{name: "RetryInfo of -5 s", code: codes.ResourceExhausted, details: []*anypb.Any{anyOf(t, faultlinetest.RetryInfo(-5*time.Second))},
			want: errs.ErrSandboxResourceExhausted, wantDelay: -5 * time.Second, wantHas: true},
		{name: "untrusted reason does not make an error retryable", code: codes.PermissionDenied,
			details: []*anypb.Any{anyOf(t, &errdetails.ErrorInfo{Reason: "CWSANDBOX_BACKEND_UNAVAILABLE", Domain: "sidecar.local"}), anyOf(t, faultlinetest.RetryInfo(time.Second))},
			want:    errs.ErrCWSandboxAuthentication, wantDelay: time.Second, wantHas: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := rawStatus(tc.code, tc.msg, tc.details...)
			e := classify.New().Classify(st.Err(), sandboxCall)
			if e.Kind() != tc.want {
				t.Errorf("Classify(%s) = %v, want %v", tc.name, e.Kind(), tc.want)
			}
			checkLine(t, e.Error())
			if strings.Contains(e.Error(), "SECRET") {
				t.Errorf("Classify(%s).Error() = %q, want no metadata", tc.name, e.Error())
			}
			if d, ok := e.RetryDelay(); d != tc.wantDelay || ok != tc.wantHas {
				t.Errorf("Classify(%s).RetryDelay() = %v, %v, want %v, %v", tc.name, d, ok, tc.wantDelay, tc.wantHas)
			}
			if got := len(e.FieldViolations()); got != tc.wantViols {
				t.Errorf("len(Classify(%s).FieldViolations()) = %d, want %d", tc.name, got, tc.wantViols)
			}
			if got := len(e.OtherDetails()); got != tc.wantOther {
				t.Errorf("len(Classify(%s).OtherDetails()) = %d, want %d", tc.name, got, tc.wantOther)
			}
			info := aip.Parse(st)
			checkRules(t, tc.details, info)
			if b, err := proto.Marshal(st.Proto()); err == nil && aip.Usable(info) { // not when the message is not UTF-8
				md := metadata.MD{aip.StatusDetailsKey: {string(b)}}
				if d := diffInfo(aip.ParseTrailer(md), info); d != "" {
					t.Errorf("ParseTrailer(%s) differs from Parse (-want +got):\n%s", tc.name, d)
				}
			}
		})
	}
}
