package retry

import "strconv"

// Idempotency says what running a call twice does: protobuf's MethodOptions
// idempotency_level (NO_SIDE_EFFECTS, IDEMPOTENT, IDEMPOTENCY_UNKNOWN), plus the two levels
// a client configures for methods that must not be repeated. It decides which failures may
// be retried:
//
//	level              may have reached the server   server declined (RetryInfo, transient reason)
//	NoSideEffects      retried by policy              retried by policy
//	Idempotent         retried by policy              retried by policy
//	IdempotencyUnknown retried by policy, unless the  retried by policy
//	                   response headers had arrived
//	NotIdempotent      not retried                    retried by policy
//	NeverRetry         not retried                    not retried
//
// An attempt that never reached a transport ran nothing: it is retried by policy at every
// level, NeverRetry included.
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
