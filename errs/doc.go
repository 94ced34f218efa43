// Package errs is the sandbox error taxonomy: one concrete error type, [*Error], and a
// [Kind] for every class of the sandbox service's exception hierarchy
// (CWSandboxError, SandboxError, SandboxUnavailableError, ...).
//
// A Kind is itself an error, so it is the target of [errors.Is], which matches an error's
// kind and every ancestor of it. SandboxValidationError and DiscoveryValidationError have
// two parents and match both lines. [errors.As] finds the *Error directly, wrapped with %w,
// or inside [errors.Join]:
//
//	if errors.Is(err, errs.ErrSandboxNotFound) { ... }
//	var e *errs.Error
//	if errors.As(err, &e) {
//		log.Printf("%v: reason %q, sandbox %q", e.Kind(), e.Reason(), e.Resource().SandboxID)
//	}
//
// Errors of failed RPCs are built by a classifier (package classify); client code, such as
// a sandbox SDK, builds any kind with [New] and [Option]s:
//
//	err := errs.New(errs.ErrSandboxStreamTruncated, "stream ended early",
//		errs.WithResource(errs.Resource{SandboxID: id}), errs.WithStreamCode("STREAM_TRUNCATED"))
//
// An *Error reports facts (code, ErrorInfo reason, domain and metadata, RetryInfo delay,
// field violations, the resource the call was about); whether to retry is a policy's
// decision. Error returns one lower-case line of at most 1 KiB that never contains ErrorInfo
// metadata or other details, which may carry secrets; read those through the accessors.
//
// # Compatibility
//
// [*Error.GRPCStatus] returns the failed RPC's original, unmodified [*status.Status] (the same
// pointer), so [status.Code], [status.FromError] and [status.Convert] answer exactly as they
// did for the original error, and code that switches on gRPC codes keeps working.
// [*Error.Unwrap] returns the original error. Client-made errors get a status built from
// their code, their message and their ErrorInfo, RetryInfo and BadRequest as details, so an
// error a fake server returns reaches its client whole. Kinds are only ever added; their
// names follow the service's class names ([Kind.String]) and are their text form in JSON
// and logs ([Kind.MarshalText]), so a stored name keeps its meaning. Store or send a Kind
// by name: its numeric value is not part of this promise.
//
// # Concurrency
//
// An *Error is immutable and safe for concurrent use; accessors that return maps, slices or
// the exec result return copies. Kinds and options are plain values.
package errs
