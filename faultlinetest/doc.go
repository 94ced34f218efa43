// Package faultlinetest is a kit for testing how code handles gRPC failures, the way
// net/http/httptest is for HTTP: build AIP-193 error statuses, make any gRPC server fail
// on script, and serve it in memory, without writing a fake server.
//
//   - [Status] and [Error] build a [*status.Status] (or its error) with details:
//     [ErrorInfo], [RetryInfo], [BadRequest] with [FieldViolation] entries, [QuotaFailure],
//     [PreconditionFailure], [ResourceInfo], [LocalizedMessage], or any protobuf message.
//   - An [Injector] is a pair of server interceptors that fail, delay or stall the calls
//     of the methods it is told about ([Fail], [SendThenFail], [Stall], [Pass],
//     [Step.After]), pass every other call through, and record every call (metadata and
//     request messages) for assertions.
//   - [Serve] serves a real server implementation on an in-memory listener with given
//     server options and returns a client connection dialled with given dial options;
//     everything is closed when the test ends. [NewServer] does the same without a
//     testing.TB, for examples and TestMain.
//
// For example, to check that a poller waits out a server's RetryInfo and recovers, using
// grpc's own health service as the server:
//
//	func TestPollerWaits(t *testing.T) {
//		synctest.Test(t, func(t *testing.T) { // virtual time: the 2 s wait takes none
//			var inj faultlinetest.Injector
//			inj.FailNext("/grpc.health.v1.Health/Check", 1, faultlinetest.Status(
//				codes.Unavailable, "runner unavailable",
//				faultlinetest.ErrorInfo("cwsandbox.com", "CWSANDBOX_RUNNER_UNAVAILABLE", nil),
//				faultlinetest.RetryInfo(2*time.Second)))
//
//			policy := retry.DefaultPolicy()
//			policy.Jitter, policy.HintJitter = 0, 0 // exact waits
//			hs := health.NewServer() // google.golang.org/grpc/health
//			conn := faultlinetest.Serve(t,
//				func(s *grpc.Server) { healthpb.RegisterHealthServer(s, hs) },
//				inj.ServerOptions(),
//				interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(policy)))...) // the client under test
//
//			start := time.Now()
//			_, err := healthpb.NewHealthClient(conn).Check(context.Background(),
//				&healthpb.HealthCheckRequest{})
//			if err != nil {
//				t.Fatalf("Check() = %v, want success after one retry", err)
//			}
//			if got := time.Since(start); got != 2*time.Second {
//				t.Errorf("Check() took %v, want the 2s RetryInfo", got)
//			}
//			if n := inj.Count("/grpc.health.v1.Health/Check"); n != 2 {
//				t.Errorf("server calls = %d, want 2", n)
//			}
//		})
//	}
//
// And to check that a command line tool prints every field violation of an
// INVALID_ARGUMENT, script the method to fail with
//
//	faultlinetest.Status(codes.InvalidArgument, "invalid sandbox",
//		faultlinetest.BadRequest(
//			faultlinetest.FieldViolation("resources.gpu", "must be at most 8"),
//			faultlinetest.FieldViolation("tags[0]", "must be lower case")))
//
// # Virtual time
//
// The kit waits only on the time package's clock ([Step.After], [Stall] until a
// deadline), and [Serve] starts every goroutine of the server and the connection in the
// caller's goroutine tree. Called inside a testing/synctest bubble, everything runs on the
// bubble's virtual clock: a test of a 5 s RetryInfo, or of a 30 s deadline, runs in
// microseconds and asserts exact durations.
//
// # Server errors from errs
//
// A server handler may also return an *errs.Error (package
// github.com/faultline-go/faultline/errs) built with errs.New: its status carries
// the ErrorInfo, RetryInfo and BadRequest details of its attributes, so the client
// classifies it back to the same facts.
//
// # Concurrency and compatibility
//
// An [Injector] is safe for concurrent use; the builders are pure functions. Like
// httptest, the package is meant for tests, and its API follows the module's
// compatibility promise.
package faultlinetest
