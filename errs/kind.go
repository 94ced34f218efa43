package errs

import (
	"errors"
	"strconv"

	"google.golang.org/grpc/codes"

	"github.com/faultline-go/faultline/internal/seam"
)

// Kind is a class of the sandbox error taxonomy. A Kind is itself an error, so it is the
// target of [errors.Is]: errors.Is(err, ErrSandboxNotRunning) holds for an error of kind
// ErrSandboxUnavailable, because SandboxUnavailableError is a SandboxNotRunningError.
//
// The zero Kind is not a class; it matches no kind but itself.
type Kind uint8

// The kinds of the taxonomy. The class FooError of the service's documentation is ErrFoo.
// Each kind's parents are in the service's exception hierarchy and [Kind.Parents].
const (
	_ Kind = iota

	ErrCWSandbox                       // CWSandboxError: the base of every kind.
	ErrCWSandboxAuthentication         // CWSandboxAuthenticationError: UNAUTHENTICATED or PERMISSION_DENIED.
	ErrCWSandboxValidation             // CWSandboxValidationError: the request was invalid; see FieldViolations.
	ErrSandbox                         // SandboxError: the base of sandbox operations.
	ErrSandboxValidation               // SandboxValidationError: a SandboxError and a CWSandboxValidationError.
	ErrSandboxNotRunning               // SandboxNotRunningError: the operation needs a running sandbox.
	ErrSandboxUnavailable              // SandboxUnavailableError: transient; retried by default.
	ErrSnapshotBackendThrottled        // SnapshotBackendThrottledError: transient; not a SandboxSnapshotError.
	ErrSandboxTimeout                  // SandboxTimeoutError: an operation timed out.
	ErrSandboxRequestTimeout           // SandboxRequestTimeoutError: the RPC's own deadline passed.
	ErrSandboxCommandTimeout           // SandboxCommandTimeoutError: the user's command timed out; never retried.
	ErrSnapshotWaitTimeout             // SnapshotWaitTimeoutError: waiting for a snapshot timed out.
	ErrSandboxTerminated               // SandboxTerminatedError: the sandbox was terminated externally.
	ErrSandboxFailed                   // SandboxFailedError: the sandbox failed to start or failed fatally.
	ErrSandboxNotFound                 // SandboxNotFoundError: no such sandbox; see SandboxID.
	ErrSandboxExecution                // SandboxExecutionError: a command failed; see ExecResult.
	ErrSandboxStreamBackpressure       // SandboxStreamBackpressureError: a stream ended for backpressure; see StreamCode.
	ErrSandboxStreamTruncated          // SandboxStreamTruncatedError: a stream was truncated; see StreamCode.
	ErrSandboxFile                     // SandboxFileError: a file operation failed; see FilePath.
	ErrSandboxResourceExhausted        // SandboxResourceExhaustedError: transient; retried by default.
	ErrSandboxTerminalStateUnavailable // SandboxTerminalStateUnavailableError: no terminal state after stop.
	ErrSandboxSnapshot                 // SandboxSnapshotError: a snapshot operation failed; see SnapshotID.
	ErrSnapshotNotFound                // SnapshotNotFoundError
	ErrSnapshotNotReady                // SnapshotNotReadyError
	ErrSnapshotNotSupported            // SnapshotNotSupportedError
	ErrSnapshotSizeExceeded            // SnapshotSizeExceededError
	ErrSnapshotQuotaExceeded           // SnapshotQuotaExceededError
	ErrSnapshotBucketMismatch          // SnapshotBucketMismatchError
	ErrSnapshotOnStopConflict          // SnapshotOnStopConflictError
	ErrDiscovery                       // DiscoveryError: the base of discovery operations.
	ErrDiscoveryValidation             // DiscoveryValidationError: a DiscoveryError and a CWSandboxValidationError.
	ErrRunnerNotFound                  // RunnerNotFoundError: no such runner; see RunnerID.
	ErrProfileNotFound                 // ProfileNotFoundError: no such profile; see ProfileName and RunnerID.
	ErrFunction                        // FunctionError: the base of function execution operations.
	ErrAsyncFunction                   // AsyncFunctionError: an async function was given where a sync one is needed.
	ErrFunctionSerialization           // FunctionSerializationError: arguments or closures could not be serialized.

	numKinds // not a kind: the number of kinds plus one.
)

// kindInfo is one row of the taxonomy table.
type kindInfo struct {
	name    string
	parents [2]Kind // zero-padded
	code    codes.Code
	phrase  string // what happened, for messages
}

// table is the taxonomy: every class, its parents, the code a client-made error of that kind
// gets by default, and the phrase messages use.
var table = [numKinds]kindInfo{
	ErrCWSandbox:                       {"CWSandboxError", [2]Kind{}, codes.Unknown, "failed"},
	ErrCWSandboxAuthentication:         {"CWSandboxAuthenticationError", [2]Kind{ErrCWSandbox}, codes.Unauthenticated, "authentication failed"},
	ErrCWSandboxValidation:             {"CWSandboxValidationError", [2]Kind{ErrCWSandbox}, codes.InvalidArgument, "invalid argument"},
	ErrSandbox:                         {"SandboxError", [2]Kind{ErrCWSandbox}, codes.Unknown, "failed"},
	ErrSandboxValidation:               {"SandboxValidationError", [2]Kind{ErrSandbox, ErrCWSandboxValidation}, codes.InvalidArgument, "invalid argument"},
	ErrSandboxNotRunning:               {"SandboxNotRunningError", [2]Kind{ErrSandbox}, codes.FailedPrecondition, "sandbox not running"},
	ErrSandboxUnavailable:              {"SandboxUnavailableError", [2]Kind{ErrSandboxNotRunning}, codes.Unavailable, "unavailable"},
	ErrSnapshotBackendThrottled:        {"SnapshotBackendThrottledError", [2]Kind{ErrSandboxUnavailable}, codes.Unavailable, "snapshot backend throttled"},
	ErrSandboxTimeout:                  {"SandboxTimeoutError", [2]Kind{ErrSandbox}, codes.DeadlineExceeded, "timed out"},
	ErrSandboxRequestTimeout:           {"SandboxRequestTimeoutError", [2]Kind{ErrSandboxTimeout}, codes.DeadlineExceeded, "timed out"},
	ErrSandboxCommandTimeout:           {"SandboxCommandTimeoutError", [2]Kind{ErrSandboxTimeout}, codes.DeadlineExceeded, "command timed out"},
	ErrSnapshotWaitTimeout:             {"SnapshotWaitTimeoutError", [2]Kind{ErrSandboxTimeout}, codes.DeadlineExceeded, "snapshot wait timed out"},
	ErrSandboxTerminated:               {"SandboxTerminatedError", [2]Kind{ErrSandbox}, codes.FailedPrecondition, "sandbox terminated"},
	ErrSandboxFailed:                   {"SandboxFailedError", [2]Kind{ErrSandbox}, codes.Internal, "sandbox failed"},
	ErrSandboxNotFound:                 {"SandboxNotFoundError", [2]Kind{ErrSandbox}, codes.NotFound, "sandbox not found"},
	ErrSandboxExecution:                {"SandboxExecutionError", [2]Kind{ErrSandbox}, codes.Unknown, "execution failed"},
	ErrSandboxStreamBackpressure:       {"SandboxStreamBackpressureError", [2]Kind{ErrSandboxExecution}, codes.ResourceExhausted, "stream backpressure"},
	ErrSandboxStreamTruncated:          {"SandboxStreamTruncatedError", [2]Kind{ErrSandboxExecution}, codes.DataLoss, "stream truncated"},
	ErrSandboxFile:                     {"SandboxFileError", [2]Kind{ErrSandbox}, codes.Unknown, "file operation failed"},
	ErrSandboxResourceExhausted:        {"SandboxResourceExhaustedError", [2]Kind{ErrSandbox}, codes.ResourceExhausted, "resource exhausted"},
	ErrSandboxTerminalStateUnavailable: {"SandboxTerminalStateUnavailableError", [2]Kind{ErrSandbox}, codes.Unknown, "terminal state unavailable"},
	ErrSandboxSnapshot:                 {"SandboxSnapshotError", [2]Kind{ErrSandbox}, codes.Unknown, "snapshot failed"},
	ErrSnapshotNotFound:                {"SnapshotNotFoundError", [2]Kind{ErrSandboxSnapshot}, codes.NotFound, "snapshot not found"},
	ErrSnapshotNotReady:                {"SnapshotNotReadyError", [2]Kind{ErrSandboxSnapshot}, codes.FailedPrecondition, "snapshot not ready"},
	ErrSnapshotNotSupported:            {"SnapshotNotSupportedError", [2]Kind{ErrSandboxSnapshot}, codes.FailedPrecondition, "snapshot not supported"},
	ErrSnapshotSizeExceeded:            {"SnapshotSizeExceededError", [2]Kind{ErrSandboxSnapshot}, codes.FailedPrecondition, "snapshot size exceeded"},
	ErrSnapshotQuotaExceeded:           {"SnapshotQuotaExceededError", [2]Kind{ErrSandboxSnapshot}, codes.ResourceExhausted, "snapshot quota exceeded"},
	ErrSnapshotBucketMismatch:          {"SnapshotBucketMismatchError", [2]Kind{ErrSandboxSnapshot}, codes.FailedPrecondition, "snapshot bucket mismatch"},
	ErrSnapshotOnStopConflict:          {"SnapshotOnStopConflictError", [2]Kind{ErrSandboxSnapshot}, codes.FailedPrecondition, "snapshot on stop conflict"},
	ErrDiscovery:                       {"DiscoveryError", [2]Kind{ErrCWSandbox}, codes.Unknown, "discovery failed"},
	ErrDiscoveryValidation:             {"DiscoveryValidationError", [2]Kind{ErrDiscovery, ErrCWSandboxValidation}, codes.InvalidArgument, "invalid argument"},
	ErrRunnerNotFound:                  {"RunnerNotFoundError", [2]Kind{ErrDiscovery}, codes.NotFound, "runner not found"},
	ErrProfileNotFound:                 {"ProfileNotFoundError", [2]Kind{ErrDiscovery}, codes.NotFound, "profile not found"},
	ErrFunction:                        {"FunctionError", [2]Kind{ErrCWSandbox}, codes.Unknown, "function failed"},
	ErrAsyncFunction:                   {"AsyncFunctionError", [2]Kind{ErrFunction}, codes.InvalidArgument, "async function not supported"},
	ErrFunctionSerialization:           {"FunctionSerializationError", [2]Kind{ErrFunction}, codes.InvalidArgument, "function serialization failed"},
}

// ancestors[k] has bit a set when a is k or an ancestor of k. Computed once from table.
var ancestors [numKinds]uint64

// Compile-time checks of the kind limit (seam.KindBits): a uint64 has a bit for every kind
// below it, and every kind of the taxonomy is below it (numKinds is the largest kind plus one).
const (
	_ = uint64(1) << (seam.KindBits - 1)
	_ = uint(seam.KindBits - int(numKinds))
)

func init() {
	for k := Kind(1); k < numKinds; k++ {
		ancestors[k] = lineage(k)
	}
}

func lineage(k Kind) uint64 {
	set := uint64(1) << k
	for _, p := range table[k].parents {
		if p != 0 {
			set |= lineage(p)
		}
	}
	return set
}

// Kinds returns every kind of the taxonomy, base first, in declaration order.
func Kinds() []Kind {
	all := make([]Kind, 0, numKinds-1)
	for k := Kind(1); k < numKinds; k++ {
		all = append(all, k)
	}
	return all
}

// Valid reports whether k is a kind of the taxonomy (the zero Kind is not).
func (k Kind) Valid() bool { return k > 0 && k < numKinds }

// String returns the class name, as the service's documentation spells it
// ("SandboxUnavailableError").
func (k Kind) String() string {
	if !k.Valid() {
		return "Kind(" + strconv.Itoa(int(k)) + ")"
	}
	return table[k].name
}

// Error returns the class name, so a Kind can be used as an error value.
func (k Kind) Error() string { return k.String() }

// MarshalText implements [encoding.TextMarshaler]: the text is the class name, as
// [Kind.String] returns it ("SandboxUnavailableError"), so a Kind is a JSON string, a JSON
// object key and a readable log value. A Kind that is not [Kind.Valid], the zero Kind
// included, is an error: it has no name that could be read back. Mark an optional Kind field
// `json:",omitzero"`.
func (k Kind) MarshalText() ([]byte, error) {
	if !k.Valid() {
		return nil, errors.New("errs: cannot marshal " + k.String() + ": not a kind of the taxonomy")
	}
	return []byte(table[k].name), nil
}

// UnmarshalText implements [encoding.TextUnmarshaler]: it accepts exactly the class names
// [Kind.String] returns for the kinds of the taxonomy, case and all. Any other text, the
// empty text included, is an error ("errs: unknown kind ...") and leaves k unchanged.
func (k *Kind) UnmarshalText(text []byte) error {
	for c := Kind(1); c < numKinds; c++ {
		if string(text) == table[c].name {
			*k = c
			return nil
		}
	}
	const limit = 64 // the longest class name has 36 bytes
	if len(text) > limit {
		return errors.New("errs: unknown kind " + strconv.Quote(string(text[:limit])) + "...")
	}
	return errors.New("errs: unknown kind " + strconv.Quote(string(text)))
}

// Parents returns the kinds k directly inherits from: none for ErrCWSandbox, two for
// ErrSandboxValidation and ErrDiscoveryValidation, one for every other kind. The slice is
// the caller's.
func (k Kind) Parents() []Kind {
	if !k.Valid() {
		return nil
	}
	var ps []Kind
	for _, p := range table[k].parents {
		if p != 0 {
			ps = append(ps, p)
		}
	}
	return ps
}

// isA reports whether k is ancestor or k itself: the relation errors.Is uses.
func (k Kind) isA(ancestor Kind) bool {
	return k.Valid() && ancestor.Valid() && ancestors[k]&(1<<ancestor) != 0
}

// Is makes errors.Is(k, target) hold when target is a Kind that k is, directly or through
// an ancestor.
func (k Kind) Is(target error) bool {
	t, ok := target.(Kind)
	return ok && k.isA(t)
}
