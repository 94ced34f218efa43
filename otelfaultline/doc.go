// Package otelfaultline records faultline's retries with OpenTelemetry: gRFC A96's retry
// metrics, counters of why retrying stopped, of budget refusals and of the attempts
// client-side throttling shed, and span events on the caller's span. It is a set of [retry.Hooks]; install it like any other:
//
//	r := retry.MustNew(retry.DefaultPolicy(),
//		retry.WithHooks(otelfaultline.Hooks()),  // the global MeterProvider
//		retry.WithHooks(retry.SlogHooks(logger))) // hook sets combine
//	conn, err := grpc.NewClient(target, append(interceptor.DialOptions(interceptor.WithRetrier(r)),
//		grpc.WithTransportCredentials(creds))...)
//
// A call that succeeds the first time reaches no hook: it records nothing and costs
// nothing (an allocation test checks it). The package imports only OpenTelemetry's API
// modules, at the versions grpc-go already requires; the SDK is the application's choice.
//
// # Metrics
//
// In the instrumentation scope [ScopeName]:
//
//	name                                    type             unit       recorded
//	grpc.client.call.retries                int64 histogram  {retry}    per call that retried: attempts-1
//	grpc.client.call.retry_delay            float histogram  s          per call that waited to retry: its total wait
//	faultline.client.retries                int64 counter    {retry}    per scheduled retry
//	faultline.client.retry.stops            int64 counter    {call}     per call that ended with an error
//	faultline.client.retry.budget_refusals  int64 counter    {retry}    per retry the budget refused
//	faultline.client.throttled              int64 counter    {attempt}  per attempt the throttle shed
//
// The first two are gRFC A96's, with its names, units, descriptions and the bucket
// boundaries gRPC's implementations give as advice (1, 2, 3, 4, 5 for retries; gRFC A66's
// latency buckets for the delay), and its attributes grpc.method and grpc.target. As A96
// says, a call without retries records no retries sample; this package also records no
// retry_delay sample for a call that never waited (grpc-java records a 0 for every call),
// because only calls that retried or failed reach the hooks: count calls with grpc-go's
// grpc.client.call.duration. A call cancelled while it waited for its first retry records
// the time it waited, and no retries sample. grpc-go v1.85 records no A96 metric itself, and its
// service-config retries are turned off by interceptor.DialOptions, so the two do not
// overlap. A96's transparent_retries are grpc-go's own, below the interceptor, and not
// seen here.
//
// The counters carry grpc.method and grpc.target, error.type and faultline.kind; retries
// also faultline.retry.source, stops also faultline.stop_reason, throttled also
// faultline.throttle.first_attempt (true when the throttle shed the call's first attempt,
// so the call was never sent; false for a retry it shed). Every value comes from a bounded
// set:
//
//   - grpc.method: the full method without its leading slash
//     ("coreweave.sandbox.v1.SandboxService/GetSandbox"), or "other" for a method of no
//     service registered in protoregistry.GlobalFiles, where generated code registers
//     them. gRFC A66 asks that unregistered method names not be recorded by default;
//     grpc-go's client tells them by the grpc.StaticMethod call option generated clients
//     pass, which hooks do not see, so the registry stands in for it: for generated
//     clients the two agree. [WithMethodFilter] decides otherwise.
//   - grpc.target: the connection's canonical target ("dns:///sandbox.example:443"), read
//     only when an event is emitted; [WithTargetFilter] can record "other" instead.
//   - error.type: the status code as the RPC semantic conventions spell it: "UNAVAILABLE",
//     "DEADLINE_EXCEEDED", ... (a call cancelled during a wait reports "CANCELLED" on
//     stops); "UNKNOWN" for an error without a status.
//   - faultline.kind: the failure's kind in the taxonomy ("SandboxUnavailableError"),
//     absent when the error was not classified (a retry.Do loop of unclassified errors).
//   - faultline.retry.source: "retry_info" when the wait is the server's RetryInfo delay,
//     else "backoff".
//   - faultline.stop_reason: "not_retryable", "exhausted", "hint_too_long", "deadline",
//     "max_elapsed", "budget", "cancelled", "no_server_signal", "not_safe", "local_failure",
//     "throttled", "not_ready", "not_resumable" (the [retry.StopReason] values, by their
//     MarshalText).
//
// A budget refusal, and an attempt the throttle shed, is counted twice, on purpose: as a
// stop with reason "budget" or "throttled", and on its own counter, so that an alert on
// either needs no attribute filter. The two are apart: the budget refuses retries that
// would reach the server, the throttle sheds attempts (first ones included) while the
// server rejects work for overload.
//
// Hooks used outside gRPC (retry.Do, retry.New with retry.WithHooks) have no method: the
// faultline counters are recorded without grpc.method and grpc.target, and A96's
// histograms, which are about gRPC calls, not at all. A stream is done when it ends, and
// its resumes count as retries.
//
// # Span events
//
// On the span in the caller's context, when it is recording:
//
//   - "faultline.retry", for each scheduled retry: faultline.retry.attempt (the attempt
//     that failed, 1 for the first), faultline.retry.delay (seconds),
//     faultline.retry.from_retry_info, error.type, faultline.kind;
//   - "faultline.retry.stopped", when a call ends with an error: faultline.stop_reason,
//     faultline.retry.attempts (the first included), faultline.retry.total_wait (seconds),
//     error.type, faultline.kind.
//
// The package starts no span, so it takes no TracerProvider: the events go to whichever
// span the caller's context holds, from whichever provider made it.
//
// # With grpc-go's and otelgrpc's instrumentation
//
// grpc-go's stats/opentelemetry.DialOption installs interceptors (for the call span and
// grpc.client.call.duration) and a stats handler (for attempt spans and the
// grpc.client.attempt.* metrics). Give it to the connection before our interceptors:
//
//	grpc.NewClient(target, append([]grpc.DialOption{
//		opentelemetry.DialOption(opentelemetry.Options{...}), // outside: sees one call
//	}, interceptor.DialOptions(interceptor.WithRetrier(r))...)...)
//
// Then a call that retried twice is one call span ("Sent.pkg.Service.Method") with one
// child span per attempt ("Attempt.pkg.Service.Method", previous-rpc-attempts 0, 1, 2), our
// events are on the call span, and grpc.client.call.duration has one sample covering the
// attempts and the waits. Given after our interceptors, grpc-go's option sees every attempt
// as a call of its own: three call spans, each with one attempt whose previous-rpc-attempts
// is 0, three grpc.client.call.duration samples, two of them failed calls that the caller
// never saw. Use the first order. (grpc-go v1.85's source keeps the call's state, and the
// attempt counter, in the context its interceptor passes down: this package's tests check
// both orders.)
//
// otelgrpc's stats handler (otelgrpc.NewClientHandler, given with grpc.WithStatsHandler;
// its interceptors are deprecated) is not in the interceptor chain, so its place does not
// matter: grpc-go calls stats handlers once per attempt, so each attempt is a client span
// of its own, a child of the span in the caller's context, which is where our events go.
// To see a retried call as one span with otelgrpc, start a span around the call.
//
// # Concurrency and cost
//
// The hooks are safe for concurrent use. The instruments are made once, by [Hooks]. An
// event costs a few microseconds and a handful of allocations (attribute sets, and the
// span event when the span is recording), on a path that is followed by a backoff or a
// network round trip anyway.
package otelfaultline
