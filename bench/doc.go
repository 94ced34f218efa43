// Package bench measures faultline's interceptors side by side with the established Go
// retry layers for gRPC, in one run, and prints one markdown report.
//
// It is its own module (github.com/faultline-go/faultline/bench), so that the peers it
// compares against never become dependencies of the library.
//
// Run every scenario in full mode (a few minutes on a 2-core machine) from the repository
// root, or some of them, or the quick variant CI uses:
//
//	go run ./bench/cmd/compare                     # all scenarios, full mode
//	go run ./bench/cmd/compare retryinfo deadline  # two scenarios
//	go run ./bench/cmd/compare fleet restart tails proxy # the virtual-time scenarios
//	go run ./bench/cmd/compare -short              # seconds, no goals checked
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
// and outage recovery (time from recovery to the first success) run on the real clock.
// Four more run in virtual time and measure overload.md's targets (issue 15): a fleet of
// N clients overloading one server of fixed capacity ([Fleet]), 100 pollers across a
// server restart ([Restart]), 50 log tails resumed across connection resets ([Tails]),
// and the fleet again behind a proxy that answers the attempts the server cannot serve by
// resetting their connection after reading them ([Fleet] with FleetConfig.Reset: the
// attempts reached the server, so their retries must still spend the budget). Every server listens on bufconn or 127.0.0.1, and every loop is bounded in
// count and time.
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
// Wall-clock figures depend on what else the machine runs. When the 1-minute load
// average is above the number of CPUs at the start or at the end of a wall-clock
// scenario, its goal line withholds the verdict ("met" or "missed") and says why. [Run]
// in short mode is exercised by this module's tests so that the harness keeps building
// and running.
//
// # Virtual time
//
// The fleet, restart, tails and proxy scenarios run inside a testing/synctest bubble: real
// interceptors, a real gRPC server on bufconn, the real generated protos, and a virtual
// clock, so that their figures (attempts, goodput, recovery times, failed calls) are the
// same at any machine load; they get a verdict whatever the load. [Fleet], [Restart] and
// [Tails] run one contender ([Contenders]) once and return its figures; this module's
// tests call them to check the harness, and to assert overload.md's targets
// ([FleetChecks], [RestartChecks], [TailsChecks], [ProxyChecks]) on every go test of the
// module, CI's included. The fleet targets run N = 100 at 5x and 10x, and the proxy's N =
// 100 at 5x, by default; the full matrices (fleet: N = 1, 10, 100 at 2x, 5x, 10x; proxy:
// N = 1, 10, 100 at 5x) when asked for:
//
//	go test -run Targets ./bench/                              # N = 100 only
//	FAULTLINE_OVERLOAD_FULL=1 go test -run Targets ./bench/    # the full matrices
//
// The report calls them for its sections, with the full matrices.
//
// A bubble needs a *testing.T: synctest.Test takes one, and only the testing framework
// makes them (testing.Main and MainStart are the go command's, not an API for other
// programs). So compare does not run bubbles itself: for a virtual-time scenario it runs
// this module's test TestVirtualFigures in a child process,
//
//	go test -count=1 -run '^TestVirtualFigures$' -v .
//
// in this module's directory (found with `go list`, so compare runs from anywhere in the
// repository), with the scenario, the mode and the path of a temporary file in its
// environment; the test ([MeasureForCompare]) measures and writes the [Figures] to the
// file as JSON, and compare renders them. This needs nothing that `go run
// ./bench/cmd/compare` did not: the same go command and this module's own dependencies
// (goleak is already in go.sum), so it works on a fresh machine. -count=1 keeps a cached
// test result, which would write no file, from being used; the child runs without -race,
// which would change no figure, only the time. The child's test log is compare's
// progress output. [Config].Measure replaces the child, for tests.
package bench
