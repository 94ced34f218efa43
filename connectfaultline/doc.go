// Package connectfaultline installs faultline on connect-go clients: every failed call comes
// back as a typed [errs.Error] of the sandbox taxonomy (matchable with errors.Is / errors.As,
// with the *connect.Error still in the chain), and transient failures are retried by a
// [retry.Policy], honouring the server's RetryInfo and the caller's deadline, within a shared
// retry budget. It is the connect-go sibling of package interceptor (grpc-go): the same
// options, defaults, rules and retry engine, over the Connect, gRPC and gRPC-Web protocols.
//
//	client := sandboxv1connect.NewSandboxServiceClient(httpClient, baseURL,
//		connectfaultline.ClientOption())
//	res, err := client.GetSandbox(ctx, connect.NewRequest(&sandboxv1.GetSandboxRequest{SandboxId: id}))
//	switch {
//	case errors.Is(err, errs.ErrSandboxNotFound):
//		// gone
//	case errors.Is(err, errs.ErrSandboxUnavailable):
//		// still unavailable after the retries the policy allowed
//	case connect.CodeOf(err) == connect.CodePermissionDenied:
//		// existing code keeps working
//	}
//
// [New] returns the [Interceptor] itself (for connect.WithInterceptors, and to learn of a
// bad configuration at start-up); [ClientOption] never fails.
//
// # Errors
//
// Every failed call returns an *errs.Error (a *retry.Error wrapping one when the call was
// retried and gave up), classified by the classifier ([WithClassifier]) from the
// *connect.Error's code (connect-go codes are gRPC's numbering), message and details (each
// ErrorDetail's Type and Bytes rebuild the google.rpc.Status details), whatever the
// protocol. errors.As(err, &connectErr), connect.CodeOf(err) and connect.IsWireError(err)
// answer as they would without the interceptor; status.Code(err) and status.FromError(err)
// give the status the classifier read.
//
// Where a failure came from decides what it means (connect.IsWireError tells what the server
// sent from what the client made; the rest is read from the error's chain, never from its
// text):
//
//   - The server's status: its code, message and details, classified as package classify
//     says.
//   - A transport failure: a connection or stream reset, a refused or failed dial, a response
//     body cut short, a failure of http.Client.Do. connect-go reports these as UNAVAILABLE,
//     INTERNAL (an HTTP/2 RST_STREAM, an incomplete message) or CANCELED (a read that
//     failed with ECONNRESET), depending on the protocol and the HTTP version; none of them
//     is the server saying so. faultline reports every one as UNAVAILABLE (status.Code; the
//     kind of the family's UNAVAILABLE: SandboxUnavailableError for the sandbox service),
//     as grpc-go reports the same resets, and retries it as a failure that may have reached
//     the server: by policy for methods that are idempotent or of unknown idempotency
//     (unless the response had begun: see below), never for a method that is not
//     idempotent, nor for Exec and StreamExec; client-side throttling does not count it as
//     the server rejecting work.
//     connect.CodeOf(err) still gives connect-go's own code. (A DEADLINE_EXCEEDED stays one:
//     connect-go gives that code only when a deadline passed, or a dial timed out.)
//   - A refused dial (a *net.OpError with Op "dial" in the chain): the request never left
//     the client, so it is retried whatever the method, Exec and StreamExec included, and
//     spends no budget.
//   - A failure the client made and would make again: a message over connect-go's read or
//     send limit (connect.WithReadMaxBytes, WithSendMaxBytes), a codec error, a server
//     certificate the client's TLS configuration rejects. It is never retried (stop reason
//     "local failure") and takes the family's base kind (SandboxError, DiscoveryError,
//     CWSandboxError): a reply over the read limit is not a SandboxResourceExhaustedError,
//     though its code stays RESOURCE_EXHAUSTED.
//   - The caller's context: a call that failed because the caller's context ended (or
//     whose DEADLINE_EXCEEDED came from the server a moment before the caller's deadline,
//     which the server enforces from the timeout connect-go sends) is never retried,
//     errors.Is(err, context.Canceled) (or DeadlineExceeded) holds, and its kind is not a
//     statement about the sandbox.
//
// # What is repeated
//
// As with package interceptor: a call's idempotency is, first match wins, [WithIdempotency];
// an idempotency key in the request ([WithIdempotencyKey]; built in for the sandbox API's
// creates, whose empty request_id is filled with a UUIDv4 once per call, on a copy of the
// request); the level the generated code declares (connect.Spec.IdempotencyLevel) or the
// method's registered descriptor; the sandbox API's table; [WithDefaultIdempotency]. A
// failure that may have reached the server is retried only for idempotent or unknown
// methods (for unknown ones, not once the response had begun to arrive); one the server
// declined (RetryInfo, a trusted transient reason) by policy; RESOURCE_EXHAUSTED only with a
// server signal; a failure that is already the final error of another faultline retry loop
// (the interceptor installed twice) is returned as it is.
//
// # Composition
//
// connect.WithInterceptors(a, b) runs a outside b. Interceptors given before this one see
// one call with its final outcome; interceptors given after it see every attempt (this is
// how to log or trace attempts). On a handler, the interceptor does nothing.
//
// An HTTP-level retrier under connect-go (go-retryablehttp, failsafehttp, a custom
// RoundTripper that retries) multiplies attempts: turn it off for the procedures faultline
// retries. net/http itself re-sends a request only where it knows the server did not
// process it (HTTP/1.1: nothing was written on a reused connection; HTTP/2: GOAWAY or
// REFUSED_STREAM), and after an HTTP/2 RST_STREAM with PROTOCOL_ERROR from the server, which
// it cannot prove; faultline cannot see or stop these re-sends (see the README).
//
// # Differences from package interceptor
//
//   - Procedure names are connect-go's ("/pkg.Service/Method", as gRPC names methods); the
//     attempt header is an HTTP request header.
//   - A unary call of unknown idempotency counts as committed (gRFC A6: not repeated unless
//     the server declined the work) for every status the server sent, since connect-go
//     does not tell one sent with the response headers from one sent alone, and for a
//     transport failure after the response began, which on HTTP/2 includes some resets
//     before any response that connect-go reports as a bare io.ErrUnexpectedEOF. Declare
//     the idempotency of procedures that must be retried ([WithIdempotency]).
//   - There are no per-call options (connect-go has no call options): a call's policy is
//     its procedure's.
//   - There is no connection to watch: a wait between attempts ends with its timer or the
//     caller's context, and hooks name the server by its address.
//   - A stream commits at its first response message, not at its response headers: a
//     connect-go server answers a failing stream with headers too. A bidi stream whose Send
//     learns that its attempt ended after the server answered commits (Receive reports the
//     outcome), unless the answer is a gRPC trailers-only response: connect-go gives no way
//     to tell, without reading the response, whether messages are waiting for the caller.
//   - Replayed messages are kept as copies (proto.Clone) rather than encoded bytes.
//   - There is no service config to import: connect-go has none. A client migrating from
//     grpc-go's service-config retries configures the same policies with [WithMethodPolicy].
//
// # Cost
//
// A unary call that succeeds the first time allocates nothing here and reads no details
// (an allocation test compares it with a plain connect-go client). A call of a procedure
// that gets a generated idempotency key pays for one proto.Clone of its request, the key
// and the swap of connect.Request's Msg field. A stream costs its wrapper and, until it
// commits, a copy of each message it sends.
//
// # Concurrency
//
// An [Interceptor] is safe for concurrent use by any number of clients and calls.
//
// # connect-go v2
//
// connect-go v2 changes the interceptor API and reports a server-sent error with
// Error.IsRemote instead of IsWireError. The v1 layer is kept a thin shell over the shared
// parts so that a v2 layer is another thin shell: the retry loop is package retry's
// (internal/engine), what a call of a procedure does is internal/calls', classification is
// package classify's; what is connect-go's own is the wrapping (this package's WrapUnary and
// WrapStreamingClient, the swap of a request's message, the copy of request headers to a new
// attempt) and the reading of its errors (one function, originOf, decides where a failure
// came from). A v2 layer would live in its own module (connectfaultline/v2, importing
// connect-go v2), reuse those internal packages, and replace the wrapping and originOf, with
// IsRemote where IsWireError is used; the options, the behaviour and the tests (run against
// connecttest served by connect-go v2) would be the same.
package connectfaultline
