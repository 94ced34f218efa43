// Package classify turns a failed gRPC call into an [*errs.Error]: it parses the AIP-193
// details of the call's status (google.rpc.ErrorInfo, RetryInfo and BadRequest) and chooses
// the kind of the sandbox taxonomy from a trusted reason, the code, and the family of the
// service that was called.
//
//	c := classify.New() // or the package-level [Classify], without call context
//	e := c.Classify(err, classify.CallFromRequest(method, req))
//	if errors.Is(e, errs.ErrSandboxUnavailable) {
//		delay, ok := e.RetryDelay()
//		...
//	}
//
// [Parse] and [ParseTrailer] expose the parsing step on its own, for a [*status.Status] and
// for raw trailer metadata. Both are total: they never fail and never panic; a detail that
// does not decode is skipped, and the work and the message stay bounded for statuses with
// thousands of details or huge metadata.
//
// # Trust
//
// An ErrorInfo reason chooses the kind only when its domain is trusted: [DefaultDomain]
// unless [WithTrustedDomains] says otherwise, matched exactly. Under any other domain
// (a sidecar, a proxy, a third-party service in the path) the reason, domain, metadata and
// retry delay are still attached to the error, but the code alone picks the kind, so a
// familiar reason string cannot turn an error into, say, a retryable kind. [WithRule] maps a
// (domain, reason) pair to a kind explicitly, and [WithService] puts services in families.
//
// # Compatibility
//
// The classified error keeps the original status: [status.Code], [status.FromError] and
// [status.Convert] on it answer exactly as on the original error, and [errors.Is] with the
// original error holds (Unwrap returns it). An error that already holds an *errs.Error is
// returned unchanged.
//
// Status details are decoded once, with the protobuf library and its global type registry
// ([status.Status.Details]), and only on failures: a call that succeeds parses nothing.
// The details the kind does not use stay on the error as decoded, for
// [errs.Error.OtherDetails].
//
// # Concurrency
//
// A [Classifier] is immutable once built and safe for concurrent use; so are the
// package-level functions.
package classify
