package retry

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/status"
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
	// StopNotResumable: a stream that failed after delivering messages, which the policy would
	// otherwise have resumed, could not be: its request was nil, its resumer found no position
	// to continue from, or returned no request of the method's type. The final error says
	// which.
	StopNotResumable
)

var causeNames = [...]string{
	StopNotRetryable:   "not retryable",
	StopExhausted:      "attempts exhausted",
	StopHintTooLong:    "server retry delay above the limit",
	StopDeadline:       "deadline",
	StopMaxElapsed:     "max elapsed time",
	StopBudget:         "retry budget exhausted",
	StopCancelled:      "cancelled",
	StopNoServerSignal: "no server signal",
	StopUnsafe:         "not safe to repeat",
	StopLocalFailure:   "local failure",
	StopNotResumable:   "not resumable",
}

// String returns a short lower-case phrase ("attempts exhausted").
func (c StopReason) String() string {
	if int(c) < len(causeNames) && causeNames[c] != "" {
		return causeNames[c]
	}
	return "StopReason(" + strconv.Itoa(int(c)) + ")"
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
	suffix += "]"
	return truncate(oneLine(errText(e.err)), maxText-len(suffix)-len(truncMark)) + suffix
}

// maxText bounds the text of an *Error, suffix included, like every classified error's.
const maxText = 1024

const truncMark = "..."

// Unwrap returns the last attempt's error and, when the caller's context ended the
// retrying, the context's error.
func (e *Error) Unwrap() []error {
	if e.ctxErr != nil {
		return []error{e.err, e.ctxErr}
	}
	return []error{e.err}
}

// GRPCStatus returns the last attempt's status, unmodified; or, when the caller's context
// ended during a wait, a Canceled or DeadlineExceeded status. It returns nil when the last
// error has no gRPC status (then status.Code reports Unknown, as for the error itself).
func (e *Error) GRPCStatus() *status.Status { return e.st }

// Last returns the last attempt's error.
func (e *Error) Last() error { return e.err }

// Attempts returns the number of attempts made, including the first.
func (e *Error) Attempts() int { return e.attempts }

// TotalWait returns the time spent waiting between attempts.
func (e *Error) TotalWait() time.Duration { return e.wait }

// StopReason returns why retrying stopped.
func (e *Error) StopReason() StopReason { return e.cause }

func errText(err error) string {
	if err == nil {
		return "<nil>"
	}
	return truncate(oneLine(err.Error()), maxText-len(truncMark))
}

// oneLine replaces line breaks with spaces: an error that is not an *errs.Error may span
// lines.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\r\n") {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
}

// truncate cuts s to at most n bytes plus "...", at a rune boundary so that the result
// stays valid UTF-8.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + truncMark
}
