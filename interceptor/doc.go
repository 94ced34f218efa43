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
// attempt). Everything is configured with options: how calls are retried with one
// *retry.Retrier ([WithRetrier]: the policy, the budget, client-side throttling, the
// hooks), what the transport needs to know of methods with the others. A call that must
// only be classified uses a one-attempt policy, or [WithoutRetry] per call.
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
//     timeout) is retried only for methods that are idempotent or unknown (unknown ones only
//     if the response headers had not arrived: gRFC A6 commits a call there); one the server
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
// the final outcome; the hooks hear of it once, at its real end; the attempt header replaces
// any value of its key in the outgoing metadata; closing the connection ends a wait between
// attempts at once; a failure that came back after the caller's context ended is never
// retried, and errors.Is(err, context.Canceled) (or DeadlineExceeded) holds on it.
//
// # Overload and restarts
//
// Only what the server saw costs anything. An attempt that grpc-go failed before sending it
// (the connection was not ready: a restart, a refused dial) spends no budget and is not
// counted as overload; a retry waits for the connection to become ready instead of making
// attempts that would fail fast, within the policy's backoff schedule (each stretch it waits
// counts as one of its attempts), the caller's deadline and the connection's close; a
// resumed stream that delivered messages since its last failure spends nothing either. So a
// server restart of half a second costs a fleet of pollers no failed call, while the budget
// (20% of recent calls; its floor of 10 per second only while the client's own calls mostly
// succeed) keeps a fleet's retries near 1.2 attempts per call at 5x overload. Client-side
// adaptive throttling (retry.WithThrottle) also sheds first attempts while the server
// rejects for overload.
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
// the interceptor looks its method up once, calls the invoker and returns (about 500
// instructions). A method of unknown idempotency asks grpc-go for the response headers, for
// the header commit rule: grpc-go's copy of them costs 3 allocations. A call of a method that
// gets a generated idempotency key pays for one proto.Clone of its request and the key.
// Per-call options cost at most one allocation, when created. A stream that succeeds the
// first time costs one allocation more than without the interceptor (the wrapper that holds
// its retry state); a client stream keeps the bytes of what it sent, until it commits, in a
// pooled buffer. A retried unary attempt costs about 9 allocations of faultline's own.
//
// # Concurrency
//
// A [Set] and the interceptors it returns are safe for concurrent use. A connection that had
// a failure to retry gets one goroutine that follows its state (for the waits: its close,
// its readiness), which ends when the connection is closed; a wait starts none. A retried
// stream cancels its abandoned attempts.
package interceptor
