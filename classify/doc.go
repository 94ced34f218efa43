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
// Classification is total: it never fails and never panics; a detail that does not decode
// is skipped, and the work and the message stay bounded for statuses with thousands of
// details or huge metadata.
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
// # Families
//
// The kind depends on the family of the called service ([WithService] configures it): calls to
// coreweave.sandbox.v1.SandboxService, and calls without a method, are sandbox calls; calls
// to coreweave.sandbox.v1.DiscoveryService are discovery calls; calls to any other service
// are "other services".
// Each family has a base kind, given when nothing more specific applies: SandboxError,
// DiscoveryError and CWSandboxError. A code alone never makes the failure of another
// service a SandboxError, and every failure of a discovery call but an authentication
// failure is a DiscoveryError.
//
// The kind is the first that applies of: a [WithRule] rule for the ErrorInfo's (domain,
// reason); a trusted reason (the first table below); the code, by family (the tables after
// it). The tables give the default rules.
//
// # Kinds by reason
//
// A trusted reason in this table picks its kind whatever the code. In the middle column a
// single kind holds on sandbox calls and on other services alike; "A / B" gives A on sandbox
// calls and B on other services. "code" means the reason picks nothing on that family: the
// code decides and the reason stays attached to the error.
//
// On a discovery call only CWSANDBOX_RUNNER_NOT_FOUND picks a kind. On any other call that
// reason gives the family's base kind, never SandboxNotFoundError: a missing runner is not a
// missing sandbox. A reason the table does not list (placement, serverless gates,
// CWSANDBOX_INVALID_REQUEST, reasons added later) falls through to the code.
//
//	reason                             sandbox calls / other services  discovery calls
//	CWSANDBOX_FILE_NOT_FOUND           SandboxFileError                code
//	CWSANDBOX_FILE_IS_DIRECTORY        SandboxFileError                code
//	CWSANDBOX_FILE_IO_FAILED           SandboxFileError                code
//	CWSANDBOX_FILE_PERMISSION_DENIED   SandboxFileError                code
//	CWSANDBOX_FILE_TOO_LARGE           SandboxFileError                code
//	CWSANDBOX_FILE_TRUNCATED           SandboxFileError                code
//	CWSANDBOX_SANDBOX_NOT_FOUND        SandboxNotFoundError            code
//	CWSANDBOX_SANDBOX_NOT_RUNNING      SandboxNotRunningError          code
//	CWSANDBOX_COMMAND_TIMEOUT          SandboxCommandTimeoutError      code
//	CWSANDBOX_RUNNER_UNAVAILABLE       SandboxUnavailableError         code
//	CWSANDBOX_BACKEND_UNAVAILABLE      SandboxUnavailableError         code
//	CWSANDBOX_FSS_BUCKET_PROVISIONING  SandboxUnavailableError         code
//	CWSANDBOX_FSS_NOT_FOUND            SnapshotNotFoundError           code
//	CWSANDBOX_FSS_NOT_READY            SnapshotNotReadyError           code
//	CWSANDBOX_FSS_NOT_SUPPORTED        SnapshotNotSupportedError       code
//	CWSANDBOX_FSS_SIZE_EXCEEDED        SnapshotSizeExceededError       code
//	CWSANDBOX_FSS_QUOTA_EXCEEDED       SnapshotQuotaExceededError      code
//	CWSANDBOX_FSS_BUCKET_MISMATCH      SnapshotBucketMismatchError     code
//	CWSANDBOX_FSS_BUCKET_UNAVAILABLE   SandboxSnapshotError            code
//	CWSANDBOX_FSS_RESTORE_FAILED       SandboxSnapshotError            code
//	CWSANDBOX_FSS_CREATE_FAILED        SandboxSnapshotError            code
//	CWSANDBOX_FSS_CREATE_TIMED_OUT     SandboxSnapshotError            code
//	CWSANDBOX_FSS_AUTH_FAILED          SandboxSnapshotError            code
//	CWSANDBOX_FSS_TRANSPORT_FAILED     SandboxSnapshotError            code
//	CWSANDBOX_FSS_CANCELED             SandboxSnapshotError            code
//	CWSANDBOX_FSS_WAIT_TIMEOUT         SnapshotWaitTimeoutError        code
//	CWSANDBOX_FSS_BACKEND_THROTTLED    SnapshotBackendThrottledError   code
//	CWSANDBOX_FSS_INFLIGHT_LIMIT       SnapshotBackendThrottledError   code
//	CWSANDBOX_RUNNER_NOT_FOUND         SandboxError / CWSandboxError   RunnerNotFoundError
//
// A SandboxFileError takes its path from the Call, else from the ErrorInfo metadata
// "filepath".
//
// # Kinds by code
//
// Without a trusted reason that picks a kind, the code and the family decide. In the rows,
// "caller's context ended" means [Call].ContextErr is set: the caller's context had ended when
// the failure came back, and errors.Is(err, context.Canceled) (or context.DeadlineExceeded)
// then holds on the classified error. A CANCELLED the caller caused is the family's base kind;
// one the server sent while the caller waited is SandboxNotRunningError on a sandbox call. A
// row without a condition holds in every case: field violations or not, a snapshot id
// (Call.Resource.SnapshotID) or not,
// the caller's context alive or ended.
//
// Sandbox calls:
//
//	code                                    sandbox calls
//	INVALID_ARGUMENT, field violations      SandboxValidationError
//	INVALID_ARGUMENT, no field violations   SandboxError
//	UNAUTHENTICATED                         CWSandboxAuthenticationError
//	PERMISSION_DENIED                       CWSandboxAuthenticationError
//	NOT_FOUND, a snapshot id                SnapshotNotFoundError
//	NOT_FOUND, no snapshot id               SandboxNotFoundError
//	CANCELLED, caller's context alive       SandboxNotRunningError
//	CANCELLED, caller's context ended       SandboxError
//	DEADLINE_EXCEEDED                       SandboxRequestTimeoutError
//	UNAVAILABLE                             SandboxUnavailableError
//	RESOURCE_EXHAUSTED                      SandboxResourceExhaustedError
//	anything else                           SandboxError
//
// Discovery calls:
//
//	code                                    discovery calls
//	INVALID_ARGUMENT, field violations      DiscoveryValidationError
//	INVALID_ARGUMENT, no field violations   DiscoveryError
//	UNAUTHENTICATED                         CWSandboxAuthenticationError
//	PERMISSION_DENIED                       CWSandboxAuthenticationError
//	NOT_FOUND                               RunnerNotFoundError
//	CANCELLED                               DiscoveryError
//	DEADLINE_EXCEEDED                       DiscoveryError
//	UNAVAILABLE                             DiscoveryError
//	RESOURCE_EXHAUSTED                      DiscoveryError
//	anything else                           DiscoveryError
//
// Other services:
//
//	code                                    other services
//	INVALID_ARGUMENT, field violations      CWSandboxValidationError
//	INVALID_ARGUMENT, no field violations   CWSandboxError
//	UNAUTHENTICATED                         CWSandboxAuthenticationError
//	PERMISSION_DENIED                       CWSandboxAuthenticationError
//	NOT_FOUND                               CWSandboxError
//	CANCELLED                               CWSandboxError
//	DEADLINE_EXCEEDED                       CWSandboxError
//	UNAVAILABLE                             CWSandboxError
//	RESOURCE_EXHAUSTED                      CWSandboxError
//	anything else                           CWSandboxError
//
// # Failures the client made
//
// The tables above are for failures a server reported. grpc-go also reports failures it made
// itself on the client, which the same call would meet again: a message over the client's
// send or receive limit, a codec or compression error, a server certificate the client's
// TLS configuration rejects. They carry no details, and are known by their code and the
// start of grpc-go's message (the table below; a status with details, a server's, is never
// one of them, whatever its words; a TLS handshake that timed out or was reset is not
// either: it may succeed next time). Whatever their code, they take the family's base kind,
// never a kind that says the service failed: a reply over the receive limit is a
// SandboxError with code RESOURCE_EXHAUSTED, not a SandboxResourceExhaustedError (the
// sandbox ran out of nothing; the client refused the reply), and a rejected certificate a
// SandboxError with code UNAVAILABLE. The classified error records the fact, and package
// interceptor never retries such a failure (stop reason "local failure").
//
//	client failure code   message begins with
//	RESOURCE_EXHAUSTED    grpc: received message larger than max
//	RESOURCE_EXHAUSTED    grpc: message too large
//	RESOURCE_EXHAUSTED    trying to send message larger than max
//	RESOURCE_EXHAUSTED    grpc: message after decompression larger than max
//	RESOURCE_EXHAUSTED    grpc: received message after decompression larger than max
//	INTERNAL              grpc: error while marshaling
//	INTERNAL              grpc: error while compressing
//	INTERNAL              grpc: failed to decompress
//	INTERNAL              grpc: failed to read decompressed data
//	INTERNAL              grpc: no decompressor available
//	INTERNAL              grpc: failed to unmarshal the received message
//	INTERNAL              grpc: Compressor is not installed
//	INTERNAL              grpc: peer compressed the response with
//	INTERNAL              no codec registered for content-subtype
//	INTERNAL              SendMsg called after CloseSend
//	UNAVAILABLE           connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate:
//
// # Retries
//
// The kind reports what failed; package retry decides what to repeat. A trusted reason in
// the transient set below is the server's statement that it declined the work and that the
// call may be repeated: it counts as a server signal for retries on any code and any family,
// even where it picks no kind.
//
//	CWSANDBOX_RUNNER_UNAVAILABLE
//	CWSANDBOX_BACKEND_UNAVAILABLE
//	CWSANDBOX_FSS_BUCKET_PROVISIONING
//	CWSANDBOX_FSS_BACKEND_THROTTLED
//	CWSANDBOX_FSS_INFLIGHT_LIMIT
//
// Package retry repeats a failure whose kind is in Policy.RetryOn, or whose kind is a
// family's base kind and whose code is in Policy.TransientCodes (by default UNAVAILABLE and
// RESOURCE_EXHAUSTED) or whose reason is transient, so an unavailable discovery or other
// service is retried under its true kind. Its safety rules still apply: a RESOURCE_EXHAUSTED
// with neither RetryInfo nor a transient reason is a quota, and is not retried.
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
