// Package seam carries what package errs lets only its sibling packages do: build a classified
// error with facts a user cannot set, and read those facts back. The functions are set by
// errs in its init and typed there (the grpc-go internal pattern: errs may not be imported
// here, or the import would cycle).
package seam

// Facts are what a classifier learned about a failure beyond the status: how the caller's
// context stood, whether a trusted server reason declared the failure transient, and
// whether the client itself made it.
type Facts struct {
	// ContextErr is the caller's context error (context.Canceled or
	// context.DeadlineExceeded) when the context had ended as the failure came back.
	ContextErr error
	// Transient is whether an ErrorInfo reason from a trusted domain is in the transient set
	// (the server declined the work and says it may be retried).
	Transient bool
	// Local is whether the client produced the failure and would produce it again (grpc-go's
	// own size, codec and compression failures, a server certificate it rejects, a
	// throttle's shedding): a deterministic local failure, never retried, whose kind is the
	// family's base kind.
	Local bool
	// Transport is whether the connection ended the call, not the server: an UNAVAILABLE
	// grpc-go made on the client for a failed read, a closed or reset connection, a failed
	// dial, a drain. Such a failure is retried as any UNAVAILABLE is, but it is not the
	// server rejecting work: client-side throttling does not count it (overload.md, rule 4).
	Transport bool
	// Phrase, when set, says what happened in the error's message instead of the kind's own
	// phrase ("file not found" for a trusted CWSANDBOX_FILE_NOT_FOUND).
	Phrase string
}

var (
	// NewError is func(errs.Kind, *status.Status, error, details.Info, errs.Resource, Facts) *errs.Error:
	// the classified error for a failed RPC's status (errs/seam.go).
	NewError any
	// FactsOf is func(*errs.Error) Facts.
	FactsOf any
)

// KindBits is the number of kinds a kind set holds: errs' ancestor sets and retry.KindSet
// are uint64 bit sets indexed by errs.Kind, so every kind of the taxonomy is below it. Both
// packages check at compile time that their sets have the bits and errs that its kinds fit.
const KindBits = 64
