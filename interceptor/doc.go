// Package interceptor installs faultline on a gRPC client connection: every failed RPC comes
// back as a typed [errs.Error] (matchable with errors.Is / errors.As, with status.Code and
// status.FromError unchanged), and transient failures are retried by a [retry.Policy],
// honouring the server's RetryInfo and the caller's deadline, within a shared retry budget.
//
//	conn, err := grpc.NewClient(target,
//		append(interceptor.DialOptions(), grpc.WithTransportCredentials(creds))...)
//	...
//	_, err = client.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: id})
//	switch {
//	case errors.Is(err, errs.ErrSandboxNotFound):
//		// gone
//	case errors.Is(err, errs.ErrSandboxUnavailable):
//		// still unavailable after the retries the policy allowed
//	}
//
// # Composition
//
// [DialOptions] adds the unary and stream interceptors with grpc.WithChainUnaryInterceptor
// and grpc.WithChainStreamInterceptor, so interceptors given to the connection before them
// run outside (they see one call) and interceptors given after run inside (they see every
// attempt). [Set.UnaryClassify], [Set.UnaryRetry], [Set.StreamClassify] and
// [Set.StreamRetry] are the two halves on their own for custom chains, for example behind
// go-grpc-middleware's selector to apply them to some methods only.
//
// # What is repeated
//
// A retry is a second request, so a failure is retried only when running the call twice
// cannot do more than running it once:
//
//   - A call's idempotency is, first match wins: [WithIdempotency]; an idempotency key in the
//     request ([WithIdempotencyKey]; built in for the sandbox API's create calls, whose empty
//     request_id is filled with a UUIDv4 once per call, on a copy of the request); the
//     idempotency_level of the method's registered descriptor; the built-in table of the
//     sandbox API (Exec and StreamExec are never retried, unless [WithIdempotency] declares
//     them retry.NotIdempotent: then a failure the server declined is); [WithDefaultIdempotency].
//   - A failure that may have reached the server (a bare UNAVAILABLE, our own per-attempt
//     timeout) is retried only for methods that are idempotent or unknown; one the server
//     declined (RetryInfo, a trusted transient reason) by policy; one grpc-go produced on the
//     client and would produce again (a message over a size limit, a codec error, a server
//     certificate the client rejects) never, and its kind is the family's base kind (see
//     package classify).
//   - RESOURCE_EXHAUSTED is retried only with RetryInfo or a trusted transient reason: a bare
//     one is a quota (stop reason "no server signal").
//   - A failure that is already the final error of another faultline retry loop (the
//     interceptors installed twice, an SDK retrying inside a retried call) is returned as it
//     is: attempts never multiply.
//
// A retried call looks like one call to everything around it: grpc.OnFinish runs once with
// the final outcome; the attempt header replaces any value of its key in the outgoing
// metadata; closing the connection ends a wait between attempts at once; a failure that came
// back after the caller's context ended is never retried, and errors.Is(err,
// context.Canceled) (or DeadlineExceeded) holds on it.
//
// # Differences from grpc-go's defaults
//
//   - DialOptions sets grpc.WithDisableRetry: grpc-go's service-config retries would multiply
//     ours. Transparent retries (of RPCs that never reached the server) stay on. A client
//     that configures retries in a service config gives the same JSON to [WithServiceConfig],
//     which imports its retryPolicy and retryThrottling into faultline's policies and budget.
//   - Errors are *errs.Error (or *retry.Error wrapping one after retries) instead of grpc's
//     status error. Both implement GRPCStatus and return the original status unmodified.
//   - Retries carry the metadata "x-retry-attempt: N" (N >= 1), as go-grpc-middleware does.
//   - Streams are retried only until they commit (first response header or message), with
//     the sent messages replayed; see [Set.Stream].
//   - The gRFC A6 trailer grpc-retry-pushback-ms is not read: RetryInfo is the AIP-193
//     signal, and reading unary trailers would cost allocations on every successful call.
//   - grpc.OnFinish runs once per call, not once per attempt.
//
// # Cost
//
// A unary call that succeeds the first time allocates nothing here and parses no details:
// the interceptor calls the invoker and returns. A call of a method that gets a generated
// idempotency key pays for one proto.Clone of its request and the key. Per-call options cost
// at most one allocation, when created. A stream that succeeds the first time costs one
// allocation more than without the interceptor (the wrapper that holds its retry state);
// sent messages are kept for replay by reference, as grpc-go's rule that a sent message is
// not modified allows.
//
// # Concurrency
//
// A [Set] and the interceptors it returns are safe for concurrent use. They start one
// goroutine per wait between attempts, which watches for the connection's close and ends
// with the wait; a retried stream cancels its abandoned attempts.
package interceptor
