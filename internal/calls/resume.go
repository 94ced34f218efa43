package calls

import (
	"fmt"
	"math"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/faultline-go/faultline/retry"
)

// A Resumer continues a server stream after a failure: given the stream's original request
// and the last message delivered, the request that continues it just after that message, or
// false. The transports' Resumer types are this function type.
type Resumer = func(req, last proto.Message) (proto.Message, bool)

// ResumeStreamLogs is the resumer of the sandbox API's StreamLogs, working by field names so
// that it serves any generated client of the real API: the cursor is the last LogEntry's
// log_session_id and next_log_offset; the continuing request is the original with
// resume_log_session_id and resume_log_offset set from it and tail_lines and since_time
// cleared (they select history, which a resumed stream must not replay), everything else
// (sandbox id, follow, container, timestamps) kept. The offsets may be of any of protobuf's
// integer kinds (int32, int64, uint32, uint64, sint32, sint64, fixed32, fixed64, sfixed32,
// sfixed64). Without a cursor (an entry without a session id, with a next_log_offset of 0 or
// below, or one that does not fit the request's offset field; messages of other shapes; a
// nil message) the stream is not resumed. In-band LogStreamError entries are messages like
// any other, delivered unchanged; one is the last entry of its stream, so a failure after it
// is not resumed.
func ResumeStreamLogs(req, last proto.Message) (proto.Message, bool) {
	if !Valid(req) || !Valid(last) {
		return nil, false
	}
	lm := last.ProtoReflect()
	sid, ok := field(lm, "log_session_id", protoreflect.StringKind)
	if !ok || lm.Get(sid).String() == "" {
		return nil, false
	}
	off, ok := intField(lm.Descriptor(), "next_log_offset")
	if !ok {
		return nil, false
	}
	pos, ok := position(lm.Get(off), off.Kind())
	if !ok {
		return nil, false // no position: resuming would replay the log from its start
	}
	if fd := lm.Descriptor().Fields().ByName("error"); fd != nil && lm.Has(fd) {
		return nil, false // a LogStreamError is the last entry of its stream
	}
	next := proto.Clone(req)
	nm := next.ProtoReflect()
	rsid, ok1 := field(nm, "resume_log_session_id", protoreflect.StringKind)
	roff, ok2 := intField(nm.Descriptor(), "resume_log_offset")
	if !ok1 || !ok2 {
		return nil, false
	}
	v, ok := ofKind(pos, roff.Kind())
	if !ok {
		return nil, false
	}
	nm.Set(rsid, lm.Get(sid))
	nm.Set(roff, v)
	for _, name := range [...]protoreflect.Name{"tail_lines", "since_time"} {
		if fd := nm.Descriptor().Fields().ByName(name); fd != nil {
			nm.Clear(fd)
		}
	}
	return next, true
}

// Valid reports whether m is a message that can be read and copied: not nil, nor a nil
// pointer of a message type (which reads as empty but cannot be set).
func Valid(m proto.Message) bool {
	return m != nil && m.ProtoReflect().IsValid()
}

// field returns the singular field of m named name, if it has that kind.
func field(m protoreflect.Message, name protoreflect.Name, kind protoreflect.Kind) (protoreflect.FieldDescriptor, bool) {
	fd := m.Descriptor().Fields().ByName(name)
	if fd == nil || fd.Kind() != kind || fd.Cardinality() == protoreflect.Repeated {
		return nil, false
	}
	return fd, true
}

// intField returns the singular field of md named name, if it has one of protobuf's integer
// kinds.
func intField(md protoreflect.MessageDescriptor, name protoreflect.Name) (protoreflect.FieldDescriptor, bool) {
	fd := md.Fields().ByName(name)
	if fd == nil || fd.Cardinality() == protoreflect.Repeated {
		return nil, false
	}
	switch fd.Kind() {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind,
		protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return fd, true
	}
	return nil, false
}

// position reads an offset of integer kind k: false for 0 and negative offsets, which are
// no position.
func position(v protoreflect.Value, k protoreflect.Kind) (uint64, bool) {
	switch k {
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return v.Uint(), v.Uint() > 0
	}
	return uint64(v.Int()), v.Int() > 0
}

// ofKind returns the position pos as a value of integer kind k, false when it does not fit.
func ofKind(pos uint64, k protoreflect.Kind) (protoreflect.Value, bool) {
	switch k {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return protoreflect.ValueOfInt32(int32(pos)), pos <= math.MaxInt32
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return protoreflect.ValueOfInt64(int64(pos)), pos <= math.MaxInt64
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return protoreflect.ValueOfUint32(uint32(pos)), pos <= math.MaxUint32
	}
	return protoreflect.ValueOfUint64(pos), true
}

// streamLogsFields are the fields ResumeStreamLogs reads and sets: in the request (input)
// or in the streamed messages (output), and whether they are strings or integers.
var streamLogsFields = [...]struct {
	input bool
	name  protoreflect.Name
	str   bool
}{
	{false, "log_session_id", true},
	{false, "next_log_offset", false},
	{true, "resume_log_session_id", true},
	{true, "resume_log_offset", false},
}

// checkStreamLogs reports why ResumeStreamLogs cannot work for method as far as the
// method's registered descriptor tells: its request or streamed message lacks a field it
// reads. A method without a registered descriptor is not checked.
func checkStreamLogs(method string) error {
	md := Registered(method)
	if md == nil {
		return nil
	}
	for _, f := range streamLogsFields {
		msg, kind := md.Output(), "an integer"
		if f.input {
			msg = md.Input()
		}
		ok := false
		if f.str {
			kind = "a string"
			fd := msg.Fields().ByName(f.name)
			ok = fd != nil && fd.Kind() == protoreflect.StringKind && fd.Cardinality() != protoreflect.Repeated
		} else {
			_, ok = intField(msg, f.name)
		}
		if !ok {
			return fmt.Errorf("resumer for %s: ResumeStreamLogs needs %s field %s in %s (WithResumer(%q, nil) turns resuming it off)",
				method, kind, f.name, msg.FullName(), method)
		}
	}
	return nil
}

// ResumeRequest returns the request that resumes a server stream of method, at level, after
// its failure err, from its request req (nil when the caller sent a nil one) and its last
// delivered message; or why the stream cannot be resumed, for its final error.
func (m *Methods) ResumeRequest(method string, level retry.Idempotency, err error, req, last proto.Message) (proto.Message, string) {
	r := m.resumers[method]
	switch {
	case r == nil:
		return nil, "the stream had committed (a response reached the caller, or it sent more than the replay limit) and its method has no resumer"
	case level == retry.IdempotencyUnknown:
		return nil, "the method's idempotency is unknown"
	case level != retry.NoSideEffects && level != retry.Idempotent:
		return nil, "the method is " + level.String()
	}
	switch status.Code(err) {
	case codes.Canceled: // whoever ended the stream meant it to end, whatever the policy
		return nil, "a CANCELLED stream is never resumed"
	case codes.DeadlineExceeded:
		return nil, "a DEADLINE_EXCEEDED stream is never resumed"
	}
	if !Valid(req) {
		return nil, "the stream's request was nil"
	}
	next, ok := r(req, last)
	switch {
	case !ok:
		return nil, "no position to continue from in the last message"
	case !Valid(next):
		return nil, "the resumer returned no request"
	}
	if got, want := next.ProtoReflect().Descriptor().FullName(), req.ProtoReflect().Descriptor().FullName(); got != want {
		return nil, "the resumer returned a " + string(got) + ", not the method's request " + string(want)
	}
	return next, ""
}

// NotResumed is the failure of a committed stream that did not go on, saying why. It reads
// as the failure, followed by the reason; GRPCStatus returns the failure's status,
// unmodified, and Unwrap the failure.
type NotResumed struct {
	Err error
	Why string
}

func (e *NotResumed) Error() string { return e.Err.Error() + "; not resumed: " + e.Why }
func (e *NotResumed) Unwrap() error { return e.Err }
func (e *NotResumed) GRPCStatus() *status.Status {
	if st, ok := status.FromError(e.Err); ok {
		return st
	}
	return nil
}
