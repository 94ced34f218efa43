// Package bench measures faultline's interceptors side by side with the established Go
// retry layers for gRPC, in one run, and prints one markdown report.
//
// It is its own module (github.com/faultline-go/faultline/bench), so that the peers it
// compares against never become dependencies of the library.
//
// Run every scenario in full mode (a few minutes on a 2-core machine) from the repository
// root, or some of them, or the quick variant CI uses:
//
//	go run ./bench/cmd/compare                    # all scenarios, full mode
//	go run ./bench/cmd/compare retryinfo deadline # two scenarios
//	go run ./bench/cmd/compare -short             # seconds, no goals checked
//
// # Peers
//
// One table ([Peers]) says how every contender is installed on a connection: a plain
// client, a no-op interceptor (the floor any interceptor pays), faultline's
// interceptor.DialOptions, go-grpc-middleware v2's retry interceptor, grpc-go's own
// service-config retries (with and without retryThrottling), gax-go's Invoke with an
// OnCodes retryer, and failsafe-go's gRPC interceptor with a retry policy. Every retrying
// peer is set up for at most 5 attempts on UNAVAILABLE and RESOURCE_EXHAUSTED with
// exponential backoff from 200 ms to 5 s where the peer lets one say so; the report lists
// the exact settings.
//
// # Scenarios
//
// Each scenario is a subcommand (see [Scenarios]): the success path (time and allocations
// per call against a plain client), error-detail decoding, RetryInfo fidelity (the gap
// the server sees between attempts), deadline honesty (a hint longer than the caller's
// deadline), overload amplification (attempts per call against a rate-limited server)
// and outage recovery (time from recovery to the first success). Every server listens on
// bufconn or 127.0.0.1, and every loop is bounded in count and time.
//
// # Method
//
// Contenders are measured interleaved: a scenario runs in rounds, and each round runs
// every contender once, in an order that rotates from round to round, so that drift in
// the machine's speed hits all of them alike. Ratios are taken within a round (contender
// over baseline, same round) and the report gives their median with the 25th and 75th
// percentiles, or min and max where there are few samples. Time and allocations of the
// success path come from the wall clock and runtime.MemStats around batches of calls;
// both include the in-process server, which is the same for every contender, so
// differences between rows are the client side's.
//
// The harness uses the real clock: these are measurements, not tests. [Run] in short
// mode is exercised by this module's tests so that the harness keeps building and
// running.
package bench
