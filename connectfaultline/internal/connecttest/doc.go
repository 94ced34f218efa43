// Package connecttest serves the test sandbox service over connect-go, for the
// tests of a connect-go client interceptor: a [Server] with the semantics,
// scripts and counters of [sandboxtest.Server] (which it embeds and calls through
// its grpc-go service implementation, not a copy of it), plus transport faults
// ([Fault]: a delay on the clock, a connection or stream reset before or after
// the service handled the call), and a harness that serves it on 127.0.0.1
// ([Serve]) or in memory ([ServeMemory], for testing/synctest), over HTTP/1.1 or
// HTTP/2, with clients for the Connect, gRPC and gRPC-Web protocols.
//
// Usage:
//
//	srv := connecttest.New(sandboxtest.WithSandboxes("sb-1"))
//	// What sandboxtest scripts: fail the next two GetSandbox calls with a status
//	// (its details reach connect clients on every protocol), send 2 log lines then
//	// fail, run a create then fail, stall...
//	srv.FailNext(sandboxpb.SandboxService_GetSandbox_FullMethodName, 2,
//		faultlinetest.Status(codes.Unavailable, "runner unavailable",
//			faultlinetest.ErrorInfo(sandboxtest.Domain, "CWSANDBOX_RUNNER_UNAVAILABLE", nil),
//			faultlinetest.RetryInfo(time.Second)))
//	// What only the transport can do: create the sandbox, then reset the connection
//	// instead of answering.
//	srv.Inject(sandboxpb.SandboxService_CreateSandbox_FullMethodName,
//		connecttest.ResetAfter(connecttest.CloseConn, 0))
//
//	ep := connecttest.Serve(t, srv, connecttest.HTTP2) // or ServeMemory inside synctest
//	client := ep.SandboxClient(connecttest.GRPC, connect.WithInterceptors(...))
//	... // call through the code under test
//	n := srv.Calls(sandboxpb.SandboxService_GetSandbox_FullMethodName) // 3
//
// # How a call is served
//
// The connect-go handlers (generated in sandboxpbconnect) take the call's
// [Fault] first ([Server.Inject]; counted by [Server.Arrived]), then call the
// sandboxtest method as grpc-go would: through sandboxtest's interceptors
// ([sandboxtest.Server.Interceptors]: counting, recording, bearer-token auth,
// script steps), with the request's HTTP headers as incoming metadata. A
// grpc-go status the service returns is sent as the *connect.Error
// [ErrorFromStatus] builds, so its code, message and google.rpc.Status details
// reach the client on the Connect, gRPC and gRPC-Web protocols alike.
//
// # Synctest
//
// Real TCP does not work inside a testing/synctest bubble: goroutines waiting on
// the network are not durably blocked, so the bubble's clock never advances
// while a call is open. [ServeMemory] uses in-memory pipes instead; called
// inside the bubble, every timer of the server, the client and the code under
// test runs on the virtual clock.
//
// # Concurrency
//
// A Server and an [Endpoint] are safe for concurrent use. Faults, like
// sandboxtest's script steps, are taken in call arrival order.
//
// This package is internal to connectfaultline and is not covered by any
// compatibility promise.
package connecttest
