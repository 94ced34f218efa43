package errs

import (
	"github.com/faultline-go/faultline/internal/details"

	"strings"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// newStatus returns the status of a client-made error: code, message and, when info says
// anything, the AIP-193 details a server would have sent for it, in this order:
//   - a google.rpc.ErrorInfo (reason, domain, metadata) when WithErrorInfo was given (info
//     has a reason, a domain or a non-nil metadata map);
//   - a google.rpc.RetryInfo whose retry_delay is the delay, as given (zero and negative
//     included), when a delay is present;
//   - a google.rpc.BadRequest with one field violation (field, description) per violation,
//     in order, when there are any.
//
// Protobuf strings must be valid UTF-8: a string that is not is written with each invalid
// byte sequence replaced by U+FFFD. A detail that still fails to encode is left out, so
// newStatus never fails.
func newStatus(code codes.Code, msg string, info details.Info) *status.Status {
	var details []*anypb.Any
	var fix utf8Fixer
	if info.Reason != "" || info.Domain != "" || info.Metadata != nil {
		md := make(map[string]string, len(info.Metadata))
		for k, v := range info.Metadata {
			md[fix.valid(k)] = fix.valid(v)
		}
		details = appendDetail(details, &errdetails.ErrorInfo{
			Reason: fix.valid(info.Reason), Domain: fix.valid(info.Domain), Metadata: md})
	}
	if info.HasRetryDelay {
		details = appendDetail(details, &errdetails.RetryInfo{RetryDelay: durationpb.New(info.RetryDelay)})
	}
	if len(info.Violations) > 0 {
		br := &errdetails.BadRequest{
			FieldViolations: make([]*errdetails.BadRequest_FieldViolation, len(info.Violations)),
		}
		for i, v := range info.Violations {
			br.FieldViolations[i] = &errdetails.BadRequest_FieldViolation{
				Field: fix.valid(v.Field), Description: fix.valid(v.Description)}
		}
		details = appendDetail(details, br)
	}
	if len(details) == 0 {
		return status.New(code, msg)
	}
	return status.FromProto(&spb.Status{Code: int32(code), Message: msg, Details: details})
}

func appendDetail(details []*anypb.Any, m proto.Message) []*anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		return details
	}
	return append(details, a)
}

// utf8Fixer replaces invalid UTF-8, remembering its last repair: violations often repeat
// one description, and repairing is the costly part of building the status.
type utf8Fixer struct{ in, out string }

func (f *utf8Fixer) valid(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	if s != f.in {
		f.in, f.out = s, strings.ToValidUTF8(s, "\uFFFD")
	}
	return f.out
}
