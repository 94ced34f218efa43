package interceptor

import (
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
// proto.Clone of req with the cursor set, typically). It is called on the stream's receiving
// goroutine, only on failures.
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
// bidi streams are never resumed. The stream stays committed after a resume: an error that
// ends it is a *retry.Error when resuming gave up, an *errs.Error otherwise.
//
// r reads the last message the caller received, as it is when the failure comes: it relies
// on the caller not modifying received messages, as grpc-go's generated Recv does (a new
// message for each). A caller that resets or reuses one message for every RecvMsg leaves no
// cursor to resume from, and its stream ends with the error instead. Built in:
// /coreweave.sandbox.v1.SandboxService/StreamLogs, by [ResumeStreamLogs].
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
// (sandbox id, follow, container, timestamps) kept. Without a cursor (an entry without a
// session id or with next_log_offset 0, or messages of other shapes) the stream is not
// resumed. In-band LogStreamError entries are messages like any other, delivered unchanged;
// one is the last entry of its stream, so a failure after it is not resumed.
func ResumeStreamLogs(req, last proto.Message) (proto.Message, bool) {
	if req == nil || last == nil {
		return nil, false
	}
	lm := last.ProtoReflect()
	sid, ok := field(lm, "log_session_id", protoreflect.StringKind)
	if !ok || lm.Get(sid).String() == "" {
		return nil, false
	}
	off, ok := field(lm, "next_log_offset", protoreflect.Uint64Kind)
	if !ok || lm.Get(off).Uint() == 0 {
		return nil, false // no position: resuming would replay the log from its start
	}
	if fd := lm.Descriptor().Fields().ByName("error"); fd != nil && lm.Has(fd) {
		return nil, false // a LogStreamError is the last entry of its stream
	}
	next := proto.Clone(req)
	nm := next.ProtoReflect()
	rsid, ok1 := field(nm, "resume_log_session_id", protoreflect.StringKind)
	roff, ok2 := field(nm, "resume_log_offset", protoreflect.Uint64Kind)
	if !ok1 || !ok2 {
		return nil, false
	}
	nm.Set(rsid, lm.Get(sid))
	nm.Set(roff, lm.Get(off))
	for _, name := range [...]protoreflect.Name{"tail_lines", "since_time"} {
		if fd := nm.Descriptor().Fields().ByName(name); fd != nil {
			nm.Clear(fd)
		}
	}
	return next, true
}

// field returns the singular field of m named name, if it has that kind.
func field(m protoreflect.Message, name protoreflect.Name, kind protoreflect.Kind) (protoreflect.FieldDescriptor, bool) {
	fd := m.Descriptor().Fields().ByName(name)
	if fd == nil || fd.Kind() != kind || fd.Cardinality() == protoreflect.Repeated {
		return nil, false
	}
	return fd, true
}

// resumeLocked handles the failure err of the current attempt after the stream committed,
// for a stream with a resumer: it opens the attempt that continues the stream (after the
// policy's wait) and returns nil, or ends the stream and returns its final error. Called
// with mu held.
func (rs *retryStream) resumeLocked(err error) error {
	level := rs.set.idempotency(rs.method, keyNone)
	if level != retry.NoSideEffects && level != retry.Idempotent {
		return rs.endLocked(rs.out(err))
	}
	switch status.Code(err) {
	case codes.Canceled, codes.DeadlineExceeded:
		// Whoever ended the stream meant it to end: never resumed, whatever the policy.
		return rs.endLocked(rs.out(err))
	}
	var req proto.Message
	if len(rs.replay.msgs) > 0 {
		req = rs.replay.message(0)
	}
	last, _ := rs.last.(proto.Message)
	if req == nil || last == nil {
		return rs.endLocked(rs.out(err))
	}
	next, ok := rs.resumer(req, last)
	if !ok || next == nil {
		return rs.endLocked(rs.out(err))
	}
	if rs.header == nil {
		if md, _ := rs.cur.Header(); md != nil { // at once: the attempt is over
			rs.header = md
		}
	}
	f := engine.Facts{Level: uint8(level), Resume: true, Progressed: rs.sinceOpen > 0}
	return rs.retryLocked(err, f, next)
}
