package errs

import (
	"maps"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/internal/details"
	"github.com/faultline-go/faultline/internal/seam"
)

// Error is a classified failure: one kind of the taxonomy plus the facts the server and the
// call supplied. It is the only concrete error type of this module.
//
// An *Error matches its kind and every ancestor of it with [errors.Is], is found by
// [errors.As] when wrapped or joined, and keeps the failed RPC's status: GRPCStatus returns
// it unmodified, so [status.Code], [status.FromError] and [status.Convert] answer as they did
// before classification.
//
// Errors report facts; whether to retry is a policy's decision. An *Error is immutable and
// safe for concurrent use; accessors that return maps or slices return copies.
type Error struct {
	kind  Kind
	st    *status.Status // never nil
	cause error          // the original error; nil for client-made errors without a cause
	msg   string         // the bounded, one-line message: Error() and Message()

	info details.Info
	res  Resource

	streamCode string
	exec       *ExecResult
	excType    string
	excMsg     string

	facts seam.Facts // what the classifier learned beyond the status
}

// Resource is what a failed call was about. Empty fields are unknown.
type Resource struct {
	Operation   string // the RPC method name, e.g. "GetSandbox"
	SandboxID   string
	FilePath    string
	SnapshotID  string
	RunnerID    string
	ProfileName string
}

// FieldViolation is one google.rpc.BadRequest field violation.
type FieldViolation struct {
	Field       string
	Description string
}

// ExecResult is the result of a command that ran inside a sandbox.
type ExecResult struct {
	ExitCode int
	Stdout   string
	Stderr   string
}

// fromStatus builds the *Error for a failed RPC whose status is st, already classified as
// kind. cause is the error the RPC returned (Unwrap returns it); when nil, st.Err() is used.
// The error keeps info's map, slices and messages: the caller must not modify them
// afterwards.
//
// A nil st is treated as status Unknown with cause's text; an invalid kind as ErrCWSandbox.
// Classifiers reach it through internal/seam; client code builds errors with [New].
func fromStatus(kind Kind, st *status.Status, cause error, info details.Info, res Resource, facts seam.Facts) *Error {
	if !kind.Valid() {
		kind = ErrCWSandbox
	}
	if st == nil {
		text := ""
		if cause != nil {
			text = cause.Error()
		}
		st = status.New(codes.Unknown, text)
	}
	if cause == nil {
		cause = st.Err()
	}
	e := &Error{kind: kind, st: st, cause: cause, info: info, res: res, facts: facts}
	e.msg = e.render(st.Message(), st.Code())
	return e
}

// New builds an error of the given kind on the client side: for stream errors, failed
// commands, a missing terminal state, function errors, or anything an SDK detects itself.
// message is the human text; options add attributes. Without [WithCode] the code is the
// kind's natural one (Unavailable for ErrSandboxUnavailable, NotFound for the not-found
// kinds, Unknown for most); codes.OK becomes Unknown. An invalid kind is treated as
// ErrCWSandbox.
//
// GRPCStatus returns a status with that code, the message as given (Error renders it with
// the operation, resource and violations; a classifier renders it again on the other side)
// and the AIP-193 details a server would send for the attributes: a google.rpc.ErrorInfo
// (reason, domain, metadata) when [WithErrorInfo] was given, a google.rpc.RetryInfo with
// the delay as given (zero and negative included) after [WithRetryDelay], and a
// google.rpc.BadRequest with the field violations, in order, after [WithFieldViolations]. So an *Error returned by a server
// handler reaches the client with its details, and classifying status.Convert(e).Err()
// gives back the code, reason, domain, metadata, retry delay and violations (the kind too,
// when the classifier can tell it from the code and a trusted reason: not for kinds only
// client code detects, such as ErrSandboxExecution). The other attributes (resource ids,
// stream code, exec result, exception) are not details and are not sent. Strings that are
// not valid UTF-8 are sent with each invalid sequence replaced by U+FFFD, as protobuf
// requires; the accessors return them as given.
func New(kind Kind, message string, opts ...Option) *Error {
	if !kind.Valid() {
		kind = ErrCWSandbox
	}
	b := builder{code: table[kind].code}
	for _, o := range opts {
		if o != nil { // a nil Option sets nothing
			o.apply(&b)
		}
	}
	if b.code == codes.OK {
		b.code = codes.Unknown // an error is never OK
	}
	e := &Error{
		kind:       kind,
		cause:      b.cause,
		info:       b.info,
		res:        b.res,
		streamCode: b.streamCode,
		exec:       b.exec,
		excType:    b.excType,
		excMsg:     b.excMsg,
	}
	e.msg = e.render(message, b.code)
	e.st = newStatus(b.code, message, b.info)
	return e
}

// Error returns one bounded line (at most 1 KiB): the operation, what happened, the
// server's message, the resource and the field violations. It never contains ErrorInfo
// metadata or other details, which may carry secrets.
func (e *Error) Error() string { return e.msg }

// GoString makes %#v print the kind, code and message only: like Error, it never shows
// ErrorInfo metadata or other details.
func (e *Error) GoString() string {
	return "&errs.Error{Kind: " + e.kind.String() + ", Code: " + e.Code().String() + ", Message: " + strconv.Quote(e.msg) + "}"
}

// Message returns the message of the error's status as it is: the server's own message for a
// classified failure (status.Convert(err).Message(), as connect-go's and gax-go's errors
// return it), the message given to [New] for a client-made error. Unlike Error, it is
// neither bounded nor cleaned, and it names no operation or resource.
func (e *Error) Message() string { return e.st.Message() }

// Kind returns the error's kind.
func (e *Error) Kind() Kind { return e.kind }

// Code returns the gRPC code of the failed RPC.
func (e *Error) Code() codes.Code { return e.st.Code() }

// GRPCStatus returns the failed RPC's status, unmodified (for client-made errors, one built
// from the code and message). It is never nil.
func (e *Error) GRPCStatus() *status.Status { return e.st }

// Unwrap returns the error the RPC returned, or the client-side cause (nil if none).
func (e *Error) Unwrap() error { return e.cause }

// Is reports whether target is a Kind that e's kind is, directly or through an ancestor, or
// the caller's context error (context.Canceled or context.DeadlineExceeded) when the call's
// context had ended as the failure came back: errors.Is(err, context.Canceled) holds for a
// call the caller cancelled, whatever its kind.
func (e *Error) Is(target error) bool {
	if k, ok := target.(Kind); ok {
		return e.kind.isA(k)
	}
	return e.facts.ContextErr != nil && target == e.facts.ContextErr
}

// Reason returns the ErrorInfo reason, or "". It is attached even when the domain was not
// trusted (then it did not choose the kind).
func (e *Error) Reason() string { return e.info.Reason }

// Domain returns the ErrorInfo domain, or "".
func (e *Error) Domain() string { return e.info.Domain }

// Metadata returns a copy of the ErrorInfo metadata: nil when there was no ErrorInfo,
// non-nil (maybe empty) when there was.
func (e *Error) Metadata() map[string]string { return maps.Clone(e.info.Metadata) }

// RetryDelay returns the server's RetryInfo delay and whether one was present. A present
// delay may be zero or negative, as the server sent it.
func (e *Error) RetryDelay() (time.Duration, bool) {
	return e.info.RetryDelay, e.info.HasRetryDelay
}

// FieldViolations returns a copy of the BadRequest field violations, in order.
func (e *Error) FieldViolations() []FieldViolation {
	if len(e.info.Violations) == 0 {
		return nil
	}
	out := make([]FieldViolation, len(e.info.Violations))
	for i, v := range e.info.Violations {
		out[i] = FieldViolation(v)
	}
	return out
}

// Resource returns what the call was about: the name of the RPC method that failed
// ("GetSandbox") and the ids and path the call named; empty fields are unknown.
func (e *Error) Resource() Resource { return e.res }

// StreamCode returns the in-band code of a stream's terminal error frame, or "".
func (e *Error) StreamCode() string { return e.streamCode }

// ExecResult returns the result of the failed command, or nil.
func (e *Error) ExecResult() *ExecResult {
	if e.exec == nil {
		return nil
	}
	r := *e.exec
	return &r
}

// ExceptionType returns the Python exception class parsed from the command's stderr
// ("ValueError"), or "".
func (e *Error) ExceptionType() string { return e.excType }

// ExceptionMessage returns the Python exception message parsed from the command's stderr,
// or "".
func (e *Error) ExceptionMessage() string { return e.excMsg }

// OtherDetails returns the status details other than ErrorInfo, RetryInfo and BadRequest
// (QuotaFailure, PreconditionFailure, ResourceInfo, RequestInfo, DebugInfo, Help,
// LocalizedMessage, ...), in order, as the classifier decoded them: the
// status is not decoded again. The messages are copies the caller may modify. A detail
// whose type is not linked into the program, or whose bytes do not decode, is returned as
// its *anypb.Any, so nothing is lost. An error built with [New] has none (nil).
func (e *Error) OtherDetails() []proto.Message {
	if len(e.info.Other) == 0 {
		return nil
	}
	out := make([]proto.Message, len(e.info.Other))
	for i, m := range e.info.Other {
		out[i] = proto.Clone(m)
	}
	return out
}
