package faultlinetest

import (
	"maps"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Status returns a status with code c, message msg and the given details, in order, as an
// AIP-193 server sends them: typically [ErrorInfo], [RetryInfo], [BadRequest],
// [QuotaFailure], [PreconditionFailure], [ResourceInfo] and [LocalizedMessage], but any
// protobuf message works.
//
//	st := faultlinetest.Status(codes.Unavailable, "runner unavailable",
//		faultlinetest.ErrorInfo("cwsandbox.com", "CWSANDBOX_RUNNER_UNAVAILABLE", nil),
//		faultlinetest.RetryInfo(2*time.Second))
//
// Status never panics and never fails; on odd input it does this:
//   - c is used as given, even outside the codes grpc defines. With [codes.OK] the status
//     keeps its details, but its Err is nil: an OK status is not an error.
//   - A nil detail (a nil interface or a typed nil pointer) is skipped.
//   - An [*anypb.Any] is used as it is, not packed again, so a test can send a detail of
//     any type URL with any bytes (for example bytes that do not decode).
//   - Protobuf strings must be valid UTF-8, and grpc-go drops every detail of a status it
//     cannot encode. So a detail whose strings are not valid UTF-8 is sent with each invalid
//     byte sequence replaced by U+FFFD, and so is msg when there are details (without
//     details msg is used as given). Required fields of proto2 details may be missing.
//     A detail that still cannot be encoded (larger than protobuf allows) is skipped.
//
// The details are copies: changing a message after the call does not change the status.
func Status(c codes.Code, msg string, details ...proto.Message) *status.Status {
	p := &spb.Status{Code: int32(c), Message: msg}
	for _, d := range details {
		if a, ok := pack(d); ok {
			p.Details = append(p.Details, a)
		}
	}
	if len(p.Details) == 0 {
		return status.New(c, msg)
	}
	p.Message = validUTF8(p.Message)
	for _, a := range p.Details {
		a.TypeUrl = validUTF8(a.TypeUrl)
	}
	return status.FromProto(p)
}

// Error returns Status(c, msg, details...).Err(): an error whose [status.FromError],
// [status.Code] and [status.Convert] give that status, to return from a server handler or
// a fake client stub. It is nil when c is [codes.OK].
func Error(c codes.Code, msg string, details ...proto.Message) error {
	return Status(c, msg, details...).Err()
}

var marshalOpts = proto.MarshalOptions{AllowPartial: true, Deterministic: true}

// pack returns d as an Any; see Status for the rules.
func pack(d proto.Message) (*anypb.Any, bool) {
	if d == nil || !d.ProtoReflect().IsValid() {
		return nil, false
	}
	if a, ok := d.(*anypb.Any); ok {
		return proto.CloneOf(a), true
	}
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, d, marshalOpts); err == nil {
		return a, true
	}
	fixed := proto.Clone(d)
	repair(fixed.ProtoReflect(), 0)
	if err := anypb.MarshalFrom(a, fixed, marshalOpts); err == nil {
		return a, true
	}
	return nil, false
}

// maxRepairDepth bounds the recursion of repair; protobuf itself refuses deeper nesting.
const maxRepairDepth = 100

// repair replaces invalid UTF-8 in every string field, list element and map key or value
// of m and the messages it holds.
func repair(m protoreflect.Message, depth int) {
	if depth > maxRepairDepth {
		return
	}
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsMap():
			repairMap(fd, v.Map(), depth)
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				switch fd.Kind() {
				case protoreflect.StringKind:
					l.Set(i, protoreflect.ValueOfString(validUTF8(l.Get(i).String())))
				case protoreflect.MessageKind, protoreflect.GroupKind:
					repair(l.Get(i).Message(), depth+1)
				}
			}
		case fd.Kind() == protoreflect.StringKind:
			m.Set(fd, protoreflect.ValueOfString(validUTF8(v.String())))
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			repair(v.Message(), depth+1)
		}
		return true
	})
}

func repairMap(fd protoreflect.FieldDescriptor, mp protoreflect.Map, depth int) {
	type entry struct {
		k protoreflect.MapKey
		v protoreflect.Value
	}
	var bad []entry
	mp.Range(func(k protoreflect.MapKey, v protoreflect.Value) bool {
		switch fd.MapValue().Kind() {
		case protoreflect.StringKind:
			if s := v.String(); !utf8.ValidString(s) {
				v = protoreflect.ValueOfString(validUTF8(s))
				mp.Set(k, v)
			}
		case protoreflect.MessageKind, protoreflect.GroupKind:
			repair(v.Message(), depth+1)
		}
		if fd.MapKey().Kind() == protoreflect.StringKind && !utf8.ValidString(k.String()) {
			bad = append(bad, entry{k, v})
		}
		return true
	})
	for _, e := range bad { // re-key after the walk; a repaired key may meet an existing one
		mp.Clear(e.k)
		mp.Set(protoreflect.ValueOfString(validUTF8(e.k.String())).MapKey(), e.v)
	}
}

func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// ErrorInfo returns a google.rpc.ErrorInfo: the reason, scoped by its domain (a classifier
// trusts a reason only under a domain it trusts, such as "cwsandbox.com"), and a copy of
// metadata. A nil or empty metadata sends none; a classifier then reports an empty,
// non-nil map. An ErrorInfo with an empty reason is skipped by classifiers.
func ErrorInfo(domain, reason string, metadata map[string]string) *errdetails.ErrorInfo {
	var md map[string]string
	if len(metadata) > 0 {
		md = maps.Clone(metadata)
	}
	return &errdetails.ErrorInfo{Reason: reason, Domain: domain, Metadata: md}
}

// RetryInfo returns a google.rpc.RetryInfo whose retry_delay is d, as given: every
// time.Duration, zero and negative included, is a valid protobuf Duration. A classifier
// keeps a zero delay as "zero, present"; a retry policy treats zero and negative delays as
// no hint.
func RetryInfo(d time.Duration) *errdetails.RetryInfo {
	return &errdetails.RetryInfo{RetryDelay: durationpb.New(d)}
}

// BadRequest returns a google.rpc.BadRequest with copies of the given field violations,
// in order; build them with [FieldViolation] or as
// errdetails.BadRequest_FieldViolation values (with a reason or a localized message). Nil
// violations are skipped; with none the BadRequest is empty.
func BadRequest(violations ...*errdetails.BadRequest_FieldViolation) *errdetails.BadRequest {
	return &errdetails.BadRequest{FieldViolations: cloneAll(violations)}
}

// FieldViolation returns a BadRequest field violation: the field's path in the request
// ("resources.gpu", "tags[0]") and what is wrong with it.
func FieldViolation(field, description string) *errdetails.BadRequest_FieldViolation {
	return &errdetails.BadRequest_FieldViolation{Field: field, Description: description}
}

// QuotaFailure returns a google.rpc.QuotaFailure with copies of the given violations, in
// order; build them with [QuotaViolation]. Nil violations are skipped.
func QuotaFailure(violations ...*errdetails.QuotaFailure_Violation) *errdetails.QuotaFailure {
	return &errdetails.QuotaFailure{Violations: cloneAll(violations)}
}

// QuotaViolation returns a QuotaFailure violation: the subject whose quota ran out
// ("project:p-1") and a description.
func QuotaViolation(subject, description string) *errdetails.QuotaFailure_Violation {
	return &errdetails.QuotaFailure_Violation{Subject: subject, Description: description}
}

// PreconditionFailure returns a google.rpc.PreconditionFailure with copies of the given
// violations, in order; build them with [PreconditionViolation]. Nil violations are
// skipped.
func PreconditionFailure(violations ...*errdetails.PreconditionFailure_Violation) *errdetails.PreconditionFailure {
	return &errdetails.PreconditionFailure{Violations: cloneAll(violations)}
}

// PreconditionViolation returns a PreconditionFailure violation: the type of precondition
// ("TOS"), its subject ("sandbox:sb-1") and a description.
func PreconditionViolation(typ, subject, description string) *errdetails.PreconditionFailure_Violation {
	return &errdetails.PreconditionFailure_Violation{Type: typ, Subject: subject, Description: description}
}

// ResourceInfo returns a google.rpc.ResourceInfo naming the resource a failure is about:
// its type ("sandbox"), name ("sb-1"), owner (may be empty) and a description.
func ResourceInfo(resourceType, resourceName, owner, description string) *errdetails.ResourceInfo {
	return &errdetails.ResourceInfo{ResourceType: resourceType, ResourceName: resourceName, Owner: owner, Description: description}
}

// LocalizedMessage returns a google.rpc.LocalizedMessage: a message for users in a BCP-47
// locale ("en-US").
func LocalizedMessage(locale, message string) *errdetails.LocalizedMessage {
	return &errdetails.LocalizedMessage{Locale: locale, Message: message}
}

func cloneAll[M proto.Message](in []M) []M {
	var out []M
	for _, m := range in {
		if m.ProtoReflect().IsValid() {
			out = append(out, proto.CloneOf(m))
		}
	}
	return out
}
