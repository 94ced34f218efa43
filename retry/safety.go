package retry

import (
	"strconv"

	"github.com/faultline-go/faultline/errs"
)

// Idempotency says what running a call twice does: protobuf's MethodOptions
// idempotency_level (NO_SIDE_EFFECTS, IDEMPOTENT, IDEMPOTENCY_UNKNOWN), plus the two levels
// a client configures for methods that must not be repeated. It decides which failures may
// be retried:
//
//	level              may have reached the server   server declined (RetryInfo, transient reason)
//	NoSideEffects      retried by policy              retried by policy
//	Idempotent         retried by policy              retried by policy
//	IdempotencyUnknown retried by policy              retried by policy
//	NotIdempotent      not retried                    retried by policy
//	NeverRetry         not retried                    not retried
//
// The zero value is IdempotencyUnknown, the level of a method nothing is known about; it is
// retried like an idempotent one, as gRPC's service-config retries and the other Go retry
// libraries do (package interceptor has an option that makes it mean NotIdempotent).
type Idempotency uint8

const (
	// IdempotencyUnknown: nothing is known about the method (protobuf's IDEMPOTENCY_UNKNOWN).
	IdempotencyUnknown Idempotency = iota
	// NoSideEffects: the method only reads (protobuf's NO_SIDE_EFFECTS).
	NoSideEffects
	// Idempotent: running it twice does what running it once does (protobuf's IDEMPOTENT).
	Idempotent
	// NotIdempotent: running it twice may do more than once: a failure that may have reached
	// the server is not retried.
	NotIdempotent
	// NeverRetry: the method is never repeated, whatever the failure (it runs the user's
	// command: the sandbox service's Exec and StreamExec).
	NeverRetry
)

var idempotencyNames = [...]string{
	IdempotencyUnknown: "idempotency unknown",
	NoSideEffects:      "no side effects",
	Idempotent:         "idempotent",
	NotIdempotent:      "not idempotent",
	NeverRetry:         "never retried",
}

// String returns a short lower-case phrase ("no side effects").
func (l Idempotency) String() string {
	if int(l) < len(idempotencyNames) {
		return idempotencyNames[l]
	}
	return "Idempotency(" + strconv.Itoa(int(l)) + ")"
}

// Origin says where a failed attempt's failure came from, as far as
// the code making the attempt knows. The zero value, OriginUnknown, lets the loop judge from
// the error alone: a failure that carries RetryInfo or a trusted transient reason was
// declined by the server; any other may have reached the server.
type Origin uint8

const (
	// OriginUnknown: judged from the error (see [Origin]).
	OriginUnknown Origin = iota
	// OriginNotSent: the request provably never left the client (a stream that failed before
	// any message was sent). Retried by policy unless the method is NeverRetry.
	OriginNotSent
	// OriginLocal: the client produced the failure and will produce it again (a message over
	// the client's size limits, a codec or compression error). Never retried.
	OriginLocal
)

// Failure is what the code making an attempt knows about its failure beyond the error, for
// [Tracker.Failed]. The zero Failure says nothing: idempotency unknown, origin judged from
// the error, no interruption.
type Failure struct {
	// Method names the call in the hooks' events: a full gRPC method name, or "".
	Method string

	Idempotency Idempotency
	Origin      Origin

	// Classified, when set, is the classified form of the error, read for its kind, code,
	// hint and reason when the error itself holds no *errs.Error (a retry-only interceptor
	// decides by the classification of the real call but returns the raw error).
	Classified *errs.Error

	// Resume marks a failure after which the call continues where it stopped rather than
	// starting over (a server stream resumed from its cursor); the RetryEvent says so.
	Resume bool

	// NotResumable marks the failure of a call that could only go on by continuing where it
	// stopped, and cannot (a stream whose resumer found no position to continue from): when
	// the policy would retry the failure, retrying stops with [StopNotResumable] instead.
	NotResumable bool

	// Interrupt, when set, is called before a wait between attempts. The wait ends early
	// when the returned channel closes (for example when the connection is closed), and the
	// call stops with [StopCancelled] and the last error; release is called when the wait is
	// over either way.
	Interrupt func() (done <-chan struct{}, release func())
}
