package interceptor

import (
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/internal/calls"
	"github.com/faultline-go/faultline/internal/engine"
)

// A Resumer continues a server stream after a failure: given the stream's
// original request and the last message delivered to the caller, it returns the request that
// continues the stream from just after that message, or false when the stream cannot be
// resumed from there. It must not modify its arguments: it returns a new request (a
// proto.Clone of req with the cursor set, typically), of the method's request type. It is
// called on the stream's receiving goroutine, only on failures, never with a nil request.
type Resumer func(req, last proto.Message) (next proto.Message, ok bool)

// WithResumer makes failures of a server-streaming method ("/pkg.Service/Method") that
// happen after the stream delivered messages resume it instead of ending it: when the
// method's policy would retry the failure and the method has no side effects or is
// idempotent, the interceptor waits as for a retry, opens the stream again with
// the request r returns, and RecvMsg carries on with the next message, so the caller sees
// every message once. Attempts count per burst of failures: a resumed attempt that delivers a
// message starts a new burst, so a long stream may be resumed many times, each time within
// the policy. A resume after the stream delivered messages repeats no work of the server's
// and spends no retry budget; one after an attempt that delivered nothing is a retry and
// spends. Resumes are reported to the hooks as retries with Resumed set, count as attempts
// in OnDone, and carry the attempt header. The stream keeps one Context, the first
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
	return optionFunc(func(cfg *config) { cfg.SetResumer(method, r) })
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
	return calls.ResumeStreamLogs(req, last)
}

// resumeLocked handles the failure err of the current attempt after the stream committed,
// for a stream with a resumer: it opens the attempt that continues the stream (after the
// policy's wait) and returns nil, or ends the stream and returns its final error, saying why
// it was not resumed. Called with mu held.
func (rs *retryStream) resumeLocked(err error) error {
	level := rs.set.b.Calls.Level(rs.method, calls.KeyNone)
	var req proto.Message // nil when the caller sent a nil request: never read
	if first, _ := rs.first.(proto.Message); calls.Valid(first) && len(rs.replay.msgs) > 0 {
		req = rs.replay.message(0) // as it was sent
	}
	last, _ := rs.last.(proto.Message)
	next, why := rs.set.b.Calls.ResumeRequest(rs.method, level, err, req, last)
	if why != "" {
		return rs.failLocked(&calls.NotResumed{Err: err, Why: why}, level)
	}
	if rs.header == nil {
		if md, _ := rs.cur.Header(); md != nil { // at once: the attempt is over
			rs.header = md
		}
	}
	f := engine.Facts{Level: uint8(level), Resume: true, Progressed: rs.sinceOpen > 0, Reported: rs.reported}
	return rs.retryLocked(err, f, next)
}
