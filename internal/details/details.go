// Package details reads the AIP-193 details of a failed call's status (google.rpc.ErrorInfo,
// RetryInfo, BadRequest, and the others kept as they are), for package classify, which
// chooses the kind, and package errs, which keeps them on the error. It is total: it never
// fails and never panics; a detail that does not decode is skipped, and the work stays
// bounded for statuses with thousands of details or huge metadata.
package details

import (
	"encoding/base64"
	"slices"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Info is what an AIP-193 status says beyond its code and message: the first usable
// google.rpc.ErrorInfo, the first present google.rpc.RetryInfo and the violations of every
// google.rpc.BadRequest. The zero Info says nothing.
type Info struct {
	Reason   string            // ErrorInfo.reason
	Domain   string            // ErrorInfo.domain
	Metadata map[string]string // ErrorInfo.metadata; non-nil when an ErrorInfo was found

	RetryDelay    time.Duration // RetryInfo.retry_delay, as given (may be zero or negative)
	HasRetryDelay bool          // whether a RetryInfo with a valid delay was present

	Violations []Violation // BadRequest.field_violations, in order

	// Other holds the details other than ErrorInfo, RetryInfo and BadRequest
	// (QuotaFailure, PreconditionFailure, ResourceInfo, RequestInfo, DebugInfo, Help,
	// LocalizedMessage, unknown types), decoded once, in order. A detail whose type is not
	// linked into the program, or whose bytes do not decode, is kept as its *anypb.Any.
	Other []proto.Message
}

// Violation is one google.rpc.BadRequest field violation.
type Violation struct {
	Field       string
	Description string
}

// StatusDetailsKey is the trailer that carries a google.rpc.Status with details.
const StatusDetailsKey = "grpc-status-details-bin"

// Parse reads the AIP-193 details of st: the first google.rpc.ErrorInfo with a non-empty
// reason (reason, domain and metadata as a unit), the first google.rpc.RetryInfo whose
// retry_delay is present and valid, and the field violations of every google.rpc.BadRequest,
// in order. A detail whose bytes do not decode is skipped; the others still count. Parse
// never fails and never panics: a nil st, or one without usable details, gives the zero
// Info (with a non-nil Metadata when an ErrorInfo had a reason).
//
// Parse decodes each detail once, with the protobuf library and its global type registry
// ([status.Status.Details]), and keeps every other detail in Info.Other, in order, for
// errs.Error.OtherDetails: decoded, or as its *anypb.Any when its type is not linked into
// the program or its bytes do not decode (an ErrorInfo, RetryInfo or BadRequest that does
// not decode is dropped).
func Parse(st *status.Status) Info {
	if st == nil {
		return Info{}
	}
	var p parser
	var raw []*anypb.Any // the encoded details, copied from st only when one does not decode
	for i, d := range st.Details() {
		if m, ok := d.(protoadapt.MessageV1); ok {
			p.detail(protoadapt.MessageV2Of(m))
			continue
		}
		// d is the error of a detail that did not decode.
		if raw == nil {
			raw = st.Proto().GetDetails()
		}
		if i < len(raw) {
			p.undecoded(raw[i])
		}
	}
	return p.info
}

// ParseTrailer applies the rules of [Parse] to raw trailer metadata: the values of
// grpc-status-details-bin (key matched case-insensitively) are tried in order, each as the
// binary google.rpc.Status grpc-go stores in metadata or, failing that, as its base64 text
// form; the first that decodes to a Status with usable details wins, with no merging across
// values. A malformed value is skipped.
func ParseTrailer(md metadata.MD) Info {
	for _, key := range detailKeys(md) {
		for _, v := range md[key] {
			if info, ok := parseStatus([]byte(v)); ok {
				return info
			}
			if raw, ok := decodeBase64(v); ok {
				if info, ok := parseStatus(raw); ok {
					return info
				}
			}
		}
	}
	return Info{}
}

// detailKeys returns the keys of md that name the details trailer: the canonical lower-case
// key first, then other spellings in sorted order, so the result does not depend on map order.
func detailKeys(md metadata.MD) []string {
	var keys []string
	if _, ok := md[StatusDetailsKey]; ok {
		keys = append(keys, StatusDetailsKey)
	}
	var others []string
	for k := range md {
		if k != StatusDetailsKey && strings.EqualFold(k, StatusDetailsKey) {
			others = append(others, k)
		}
	}
	slices.Sort(others)
	return append(keys, others...)
}

func decodeBase64(s string) ([]byte, bool) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, true
		}
	}
	return nil, false
}

// Usable reports whether info says anything: an ErrorInfo with a reason, a present
// RetryInfo, or a field violation.
func Usable(info Info) bool {
	return info.Reason != "" || info.HasRetryDelay || len(info.Violations) > 0
}

// parseStatus decodes a google.rpc.Status and parses its details. It reports false when b is
// not a valid Status or its details say nothing usable.
func parseStatus(b []byte) (Info, bool) {
	var sp spb.Status
	if proto.Unmarshal(b, &sp) != nil {
		return Info{}, false
	}
	var p parser
	for _, a := range sp.GetDetails() {
		if m, err := a.UnmarshalNew(); err == nil {
			p.detail(m)
		} else {
			p.undecoded(a)
		}
	}
	return p.info, Usable(p.info)
}

// parser accumulates decoded details into an Info by the rules of Parse. It keeps the
// messages, their maps and strings: they must not be shared.
type parser struct {
	info      Info
	haveError bool
}

func (p *parser) detail(m proto.Message) {
	switch m := m.(type) {
	case *errdetails.ErrorInfo:
		if p.haveError || m.GetReason() == "" {
			return
		}
		md := m.GetMetadata()
		if md == nil {
			md = map[string]string{}
		}
		p.haveError = true
		p.info.Reason, p.info.Domain, p.info.Metadata = m.GetReason(), m.GetDomain(), md
	case *errdetails.RetryInfo:
		if p.info.HasRetryDelay {
			return
		}
		if d, ok := retryDelay(m.GetRetryDelay()); ok {
			p.info.RetryDelay, p.info.HasRetryDelay = d, true
		}
	case *errdetails.BadRequest:
		for _, v := range m.GetFieldViolations() {
			desc := v.GetDescription()
			if desc == "" {
				desc = v.GetLocalizedMessage().GetMessage()
			}
			if desc == "" {
				desc = v.GetReason()
			}
			if v.GetField() != "" || desc != "" {
				p.info.Violations = append(p.info.Violations, Violation{Field: v.GetField(), Description: desc})
			}
		}
	default:
		p.info.Other = append(p.info.Other, m)
	}
}

var (
	errorInfoName  = (*errdetails.ErrorInfo)(nil).ProtoReflect().Descriptor().FullName()
	retryInfoName  = (*errdetails.RetryInfo)(nil).ProtoReflect().Descriptor().FullName()
	badRequestName = (*errdetails.BadRequest)(nil).ProtoReflect().Descriptor().FullName()
)

// undecoded takes a detail that did not decode: kept as is unless it is of a parsed type.
func (p *parser) undecoded(a *anypb.Any) {
	switch a.MessageName() {
	case errorInfoName, retryInfoName, badRequestName:
		return
	}
	p.info.Other = append(p.info.Other, a)
}

// retryDelay converts a retry_delay: absent (false) when the field is missing or fails
// durationpb.CheckValid; a valid delay too long for time.Duration is clamped to the longest
// one (the shortest, for a negative one).
func retryDelay(d *durationpb.Duration) (time.Duration, bool) {
	if d == nil || d.CheckValid() != nil {
		return 0, false
	}
	return d.AsDuration(), true
}
