package interceptor

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/retry"
)

// A Resumer continues a server stream after a failure: given the stream's
// original request and the last message delivered to the caller, it returns the request that
// continues the stream from just after that message, or false when the stream cannot be
// resumed from there. It must not modify its arguments: it returns a new request (a
// proto.Clone of req with the cursor set, typically), of the method's request type. It is
// called on the stream's receiving goroutine, only on failures, never with a nil request.
type Resumer func(req, last proto.Message) (next proto.Message, ok bool)

// streamLogs is the sandbox API's log stream, resumed by default.
const streamLogs = sandboxService + "StreamLogs"

// WithResumer makes failures of a server-streaming method ("/pkg.Service/Method") that
// happen after the stream delivered messages resume it instead of ending it: when the
// method's policy would retry the failure and the method has no side effects or is
// idempotent, the interceptor waits as for a retry, opens the stream again with
// the request r returns, and RecvMsg carries on with the next message, so the caller sees
// every message once. Attempts count per burst of failures: a resumed attempt that delivers a
// message starts a new burst, so a long stream may be resumed many times, each time within
// the policy. Resumes spend the retry budget, are reported to the hooks as retries with
// Resumed set, and carry the attempt header. The stream keeps one Context, the first
// attempt's headers and the last attempt's trailer. A CANCELLED or DEADLINE_EXCEEDED is never
// resumed, whatever the policy. A nil r turns resuming the method off. Client-streaming and
// bidi streams are never resumed. The stream stays committed after a resume.
//
// A stream that fails after commit ends with a *retry.Error that says why it was not
// resumed: the policy's stop reason (not retryable, not safe to repeat, ...), or
// [retry.StopNotResumable] when the policy would have resumed it but it could not be: the
// method is not known to be idempotent, the failure is a CANCELLED or DEADLINE_EXCEEDED, the
// stream's request was nil, r found no position to continue from, or r returned a request
// that is not of the method's request type (which is never sent). The error's text says
// which, and the hooks' stop event reports it.
//
// r reads the last message the caller received, as it is when the failure comes: it relies
// on the caller not modifying received messages, as grpc-go's generated Recv does (a new
// message for each). A caller that resets or reuses one message for every RecvMsg leaves no
// cursor to resume from, and its stream ends with the error instead. Built in:
// /coreweave.sandbox.v1.SandboxService/StreamLogs, by [ResumeStreamLogs]. New reports a
// ResumeStreamLogs given for a method (the built-in one included) whose descriptor,
// registered in protoregistry.GlobalFiles by generated code, lacks the fields it reads,
// naming the field.
func WithResumer(method string, r Resumer) Option {
	return optionFunc(func(cfg *config) {
		if cfg.resumers == nil {
			cfg.resumers = map[string]Resumer{}
		}
		cfg.resumers[method] = r
	})
}

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
	if !valid(req) || !valid(last) {
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

// valid reports whether m is a message that can be read and copied: not nil, nor a nil
// pointer of a message type (which reads as empty but cannot be set).
func valid(m proto.Message) bool {
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

// checkResumers returns the first error of checkResumer for the resumers, by method name.
func checkResumers(resumers map[string]Resumer) error {
	for _, method := range slices.Sorted(maps.Keys(resumers)) {
		if err := checkResumer(method, resumers[method]); err != nil {
			return err
		}
	}
	return nil
}

// checkResumer reports why r cannot work for method as far as the method's registered
// descriptor tells: [ResumeStreamLogs] given for a method whose request or streamed message
// lacks a field it reads. Methods without a registered descriptor, and other resumers, are
// not checked (what a custom resumer needs is its own business).
func checkResumer(method string, r Resumer) error {
	md := registered(method)
	if md == nil || r == nil || reflect.ValueOf(r).Pointer() != reflect.ValueOf(ResumeStreamLogs).Pointer() {
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
			return fmt.Errorf("interceptor: resumer for %s: ResumeStreamLogs needs %s field %s in %s (WithResumer(%q, nil) turns resuming it off)",
				method, kind, f.name, msg.FullName(), method)
		}
	}
	return nil
}

// notResumedError is the failure of a committed stream that was not resumed, saying why.
// It reads as the failure, followed by the reason; GRPCStatus returns the failure's status,
// unmodified, and Unwrap the failure (classified, once failLocked has classified it).
type notResumedError struct {
	err error
	why string
}

func (e *notResumedError) Error() string { return e.err.Error() + "; not resumed: " + e.why }
func (e *notResumedError) Unwrap() error { return e.err }
func (e *notResumedError) GRPCStatus() *status.Status {
	if st, ok := status.FromError(e.err); ok {
		return st
	}
	return nil
}

// resumeLocked handles the failure err of the current attempt after the stream committed,
// for a stream with a resumer: it opens the attempt that continues the stream (after the
// policy's wait) and returns nil, or ends the stream and returns its final error, saying why
// it was not resumed. Called with mu held.
func (rs *retryStream) resumeLocked(err error) error {
	level := rs.set.idempotency(rs.method, keyNone)
	var req proto.Message // nil when the caller sent a nil request: never read
	if first, _ := rs.first.(proto.Message); valid(first) && len(rs.replay.msgs) > 0 {
		req = rs.replay.message(0) // as it was sent
	}
	last, _ := rs.last.(proto.Message)
	next, why := rs.resumeRequest(level, err, req, last)
	if why != "" {
		return rs.failLocked(&notResumedError{err: err, why: why}, level)
	}
	if rs.header == nil {
		if md, _ := rs.cur.Header(); md != nil { // at once: the attempt is over
			rs.header = md
		}
	}
	f := engine.Facts{Level: uint8(level), Resume: true, Progressed: rs.sinceOpen > 0}
	return rs.retryLocked(err, f, next)
}

// resumeRequest returns the request that resumes the stream after its failure err, or why
// the stream cannot be resumed.
func (rs *retryStream) resumeRequest(level retry.Idempotency, err error, req, last proto.Message) (proto.Message, string) {
	switch level {
	case retry.NoSideEffects, retry.Idempotent:
	case retry.IdempotencyUnknown:
		return nil, "the method's idempotency is unknown"
	default:
		return nil, "the method is " + level.String()
	}
	switch status.Code(err) {
	case codes.Canceled: // whoever ended the stream meant it to end, whatever the policy
		return nil, "a CANCELLED stream is never resumed"
	case codes.DeadlineExceeded:
		return nil, "a DEADLINE_EXCEEDED stream is never resumed"
	}
	if !valid(req) {
		return nil, "the stream's request was nil"
	}
	next, ok := rs.resumer(req, last)
	switch {
	case !ok:
		return nil, "no position to continue from in the last message"
	case !valid(next):
		return nil, "the resumer returned no request"
	}
	if got, want := next.ProtoReflect().Descriptor().FullName(), req.ProtoReflect().Descriptor().FullName(); got != want {
		return nil, "the resumer returned a " + string(got) + ", not the method's request " + string(want)
	}
	return next, ""
}
