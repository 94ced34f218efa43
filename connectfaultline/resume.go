package connectfaultline

import (
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/internal/calls"
	"github.com/faultline-go/faultline/internal/transport"
)

// A Resumer continues a server stream after a failure: given the stream's original request
// and the last message delivered to the caller, it returns the request that continues the
// stream from just after that message, or false when the stream cannot be resumed from
// there. It must not modify its arguments: it returns a new request (a proto.Clone of req
// with the cursor set, typically), of the procedure's request type. It is called on the
// goroutine that receives from the stream, only on failures, never with a nil request.
// It is package interceptor's Resumer, for connect-go.
type Resumer func(req, last proto.Message) (next proto.Message, ok bool)

// WithResumer makes failures of a server-streaming procedure ("/pkg.Service/Method") that
// happen after the stream delivered messages resume it instead of ending it: when the
// procedure's policy would retry the failure and the procedure has no side effects or is
// idempotent, the interceptor waits as for a retry, opens the stream again with the request
// r returns (with the caller's request headers, and the attempt header), and Receive carries
// on with the next message, so the caller sees every message once. Attempts count per burst
// of failures: a resumed attempt that delivers a message starts a new burst, so a long
// stream may be resumed many times, each time within the policy. Resumes spend the retry
// budget, are reported to the hooks as retries with Resumed set, and carry the attempt
// header. The stream keeps the response headers of the attempt that first delivered a
// message; ResponseTrailer is the last attempt's. A CANCELED or DEADLINE_EXCEEDED from the
// server or the caller is never resumed, whatever the policy (a connection reset, which
// connect-go may report as CANCELED, is not one: see the package documentation). A nil r
// turns resuming the procedure off. Client-streaming and bidi streams are never resumed.
//
// A stream that fails after commit ends with a *retry.Error that says why it was not
// resumed: the policy's stop reason (not retryable, not safe to repeat, ...), or
// [retry.StopNotResumable] when the policy would have resumed it but it could not be: the
// procedure is not known to be idempotent, the failure is a CANCELED or DEADLINE_EXCEEDED,
// the stream's request was nil, r found no position to continue from, or r returned a
// request that is not of the procedure's request type (which is never sent). The error's
// text says which, and the hooks' stop event reports it.
//
// r reads the last message the caller received, as it is when the failure comes: it relies
// on the caller not modifying received messages, as connect-go's generated streams do (a new
// message for each Receive). Built in: /coreweave.sandbox.v1.SandboxService/StreamLogs, by
// [ResumeStreamLogs]. New reports a ResumeStreamLogs given for a procedure (the built-in one
// included) whose descriptor, registered in protoregistry.GlobalFiles by generated code,
// lacks the fields it reads, naming the field, and a resumer for a procedure whose
// registered descriptor is not server-streaming.
func WithResumer(procedure string, r Resumer) Option {
	return optionFunc(func(cfg *transport.Config) { cfg.SetResumer(procedure, r) })
}

// ResumeStreamLogs is the resumer of the sandbox API's StreamLogs, working by field names so
// that it serves any generated client of the real API: the cursor is the last LogEntry's
// log_session_id and next_log_offset; the continuing request is the original with
// resume_log_session_id and resume_log_offset set from it and tail_lines and since_time
// cleared (they select history, which a resumed stream must not replay), everything else
// (sandbox id, follow, container, timestamps) kept. The offsets may be of any of protobuf's
// integer kinds. Without a cursor (an entry without a session id, with a next_log_offset of 0
// or below, or one that does not fit the request's offset field; messages of other shapes; a
// nil message) the stream is not resumed. In-band LogStreamError entries are messages like
// any other, delivered unchanged; one is the last entry of its stream, so a failure after it
// is not resumed. It is the same function as package interceptor's ResumeStreamLogs.
func ResumeStreamLogs(req, last proto.Message) (proto.Message, bool) {
	return calls.ResumeStreamLogs(req, last)
}
