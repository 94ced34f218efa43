package retry

import (
	"errors"
	"strconv"
	"time"

	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/internal/oneline"
)

// StopReason says why retrying stopped.
type StopReason uint8

const (
	// StopNotRetryable: the failure's kind is not retried by the policy.
	StopNotRetryable StopReason = iota + 1
	// StopExhausted: MaxAttempts attempts were made.
	StopExhausted
	// StopHintTooLong: the server's RetryInfo asked for a wait above MaxRetryDelay.
	StopHintTooLong
	// StopDeadline: the next wait would have ended at or after the caller's deadline, or the
	// deadline passed.
	StopDeadline
	// StopMaxElapsed: the next wait would have ended past the policy's MaxElapsed.
	StopMaxElapsed
	// StopBudget: the retry budget had no room for another retry.
	StopBudget
	// StopCancelled: the caller's context was cancelled, or the wait was interrupted (the
	// connection was closed).
	StopCancelled
	// StopNoServerSignal: a RESOURCE_EXHAUSTED without RetryInfo or a trusted transient
	// reason: a quota or a local limit, which retrying only spends (AIP-194).
	StopNoServerSignal
	// StopUnsafe: repeating the call could do its work twice: the method is not idempotent
	// and the failure may have reached the server, or the method is never repeated.
	StopUnsafe
	// StopLocalFailure: the client produced the failure and would produce it again (a
	// message over the client's size limits, a codec error, a server certificate the client
	// rejects).
	StopLocalFailure
	// StopThrottled: client-side throttling ([AdaptiveThrottle]) shed the next attempt.
	StopThrottled
	// StopNotReady: the connection did not become ready within the backoff schedule the
	// policy allows (a server that is gone): the schedule was spent waiting for it, and its
	// last attempt failed without being sent.
	StopNotReady
	// StopNotResumable: a stream that failed after delivering messages, which the policy
	// would otherwise have retried, could not go on: it has no resumer, or its request was
	// nil, its resumer found no position to continue from or returned no request of the
	// method's type. The final error says which.
	StopNotResumable
)

// stopNames are each reason's phrase (String) and name (MarshalText), in one place for
// every adapter (logs, metrics).
var stopNames = [...]struct{ phrase, name string }{
	StopNotRetryable:   {"not retryable", "not_retryable"},
	StopExhausted:      {"attempts exhausted", "exhausted"},
	StopHintTooLong:    {"server retry delay above the limit", "hint_too_long"},
	StopDeadline:       {"deadline", "deadline"},
	StopMaxElapsed:     {"max elapsed time", "max_elapsed"},
	StopBudget:         {"retry budget exhausted", "budget"},
	StopCancelled:      {"cancelled", "cancelled"},
	StopNoServerSignal: {"no server signal", "no_server_signal"},
	StopUnsafe:         {"not safe to repeat", "not_safe"},
	StopLocalFailure:   {"local failure", "local_failure"},
	StopThrottled:      {"throttled", "throttled"},
	StopNotReady:       {"connection not ready", "not_ready"},
	StopNotResumable:   {"not resumable", "not_resumable"},
}

// String returns a short lower-case phrase ("attempts exhausted").
func (c StopReason) String() string {
	if int(c) < len(stopNames) && stopNames[c].phrase != "" {
		return stopNames[c].phrase
	}
	return "StopReason(" + strconv.Itoa(int(c)) + ")"
}

// MarshalText returns the reason's name for logs and metric attributes, lower-case with
// underscores ("exhausted", "budget", "not_ready"), or an error for a value that is not a
// reason.
func (c StopReason) MarshalText() ([]byte, error) {
	if int(c) < len(stopNames) && stopNames[c].name != "" {
		return []byte(stopNames[c].name), nil
	}
	return nil, errors.New("retry: " + c.String() + " is not a stop reason")
}

// Error is what [Retrier.Do] returns when it gives up: the last attempt's error, plus how
// many attempts were made, how long was spent waiting, and why retrying stopped.
//
// It answers everything the last attempt's error answers: errors.Is and errors.As reach it
// (so errors.Is(err, errs.ErrSandboxUnavailable) holds), and GRPCStatus returns its status
// unmodified, so status.Code and status.FromError see the last RPC's status. The one
// exception: when the caller's context ended during a wait between attempts, GRPCStatus
// reports codes.Canceled or codes.DeadlineExceeded, and errors.Is(err, context.Canceled)
// (or DeadlineExceeded) holds, with the last RPC error still reachable. Whenever the
// context ended the retrying, its error is reachable with errors.Is.
type Error struct {
	err      error // the last attempt's error
	ctxErr   error // the caller's context error, when it ended the retrying
	earlier  error // an earlier attempt's real failure, when the caller's context ended a later one
	st       *status.Status
	attempts int
	wait     time.Duration
	cause    StopReason
}

func newError(last error, attempts int, wait time.Duration, cause StopReason, ctxErr error, inWait bool) *Error {
	e := &Error{err: last, ctxErr: ctxErr, attempts: attempts, wait: wait, cause: cause}
	if inWait {
		e.st = status.FromContextError(ctxErr)
	} else if st, ok := status.FromError(last); ok {
		e.st = st
	}
	return e
}

// Error returns the last attempt's error text followed by the attempts and the stop cause,
// e.g. "GetSandbox: unavailable: backend restarting (sandbox sb-1) [5 attempts, attempts
// exhausted]": one line of at most 1 KiB, the error text cut to make room for the suffix. A
// call that failed once and was not retryable reads as its error alone.
func (e *Error) Error() string {
	if e.attempts == 1 && e.cause == StopNotRetryable {
		return errText(e.err)
	}
	suffix := " [" + strconv.Itoa(e.attempts) + " attempt"
	if e.attempts != 1 {
		suffix += "s"
	}
	suffix += ", " + e.cause.String()
	if e.ctxErr != nil {
		suffix += ": " + e.ctxErr.Error()
	}
	if e.earlier != nil {
		suffix += "; earlier: " + truncate(errText(e.earlier), maxEarlier)
	}
	suffix += "]"
	return truncate(oneLine(errText(e.err)), maxText-len(suffix)-len(truncMark)) + suffix
}

// maxEarlier bounds the text of the earlier failure in Error, leaving room for the last one.
const maxEarlier = 400

// maxText bounds the text of an *Error, suffix included, like every classified error's.
const maxText = oneline.Max

// truncMark ends a text that was cut.
const truncMark = oneline.Mark

// Unwrap returns the last attempt's error; when the caller's context ended the retrying,
// also the context's error; and when the caller's context ended a later attempt, also the
// real failure of the earlier attempt before it ("the runner was unavailable, then time ran
// out"), in that order, so errors.As finds the last attempt's error first.
func (e *Error) Unwrap() []error {
	out := []error{e.err}
	if e.ctxErr != nil {
		out = append(out, e.ctxErr)
	}
	if e.earlier != nil {
		out = append(out, e.earlier)
	}
	return out
}

// GRPCStatus returns the last attempt's status, unmodified; or, when the caller's context
// ended during a wait, a Canceled or DeadlineExceeded status. It returns nil when the last
// error has no gRPC status (then status.Code reports Unknown, as for the error itself).
func (e *Error) GRPCStatus() *status.Status { return e.st }

// Attempts returns the number of attempts made, including the first.
func (e *Error) Attempts() int { return e.attempts }

// TotalWait returns the time spent waiting between attempts.
func (e *Error) TotalWait() time.Duration { return e.wait }

// StopReason returns why retrying stopped.
func (e *Error) StopReason() StopReason { return e.cause }

// errText returns err's text as one line of at most maxText bytes (oneline.Clean): an error
// that is not an *errs.Error may span lines, hold control characters or invalid UTF-8, or
// be long.
func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return oneline.Clean(err.Error(), maxText-len(truncMark))
}

// oneLine returns s as one line no longer than s plus the mark (oneline.Clean): s itself
// when it is one already, as errText's text is.
func oneLine(s string) string { return oneline.Clean(s, len(s)) }

// truncate cuts s to at most n bytes plus "..." (none for a negative n), never inside a
// UTF-8 sequence, and makes it one line as oneLine does (oneline.Clean).
func truncate(s string, n int) string { return oneline.Clean(s, n) }
