// Package echotest is an in-process gRPC server for the Echo service in
// [testpb] (protobuf package faultline.test.v1), whose methods declare
// different idempotency levels in their descriptors: Read
// (NO_SIDE_EFFECTS), Put (IDEMPOTENT), Do (none: unknown) and Create (none;
// its request carries a request_id by which the server deduplicates). It
// lets tests of descriptor-based idempotency count calls and side effects
// and script failures before or after a handler ran.
//
// Usage:
//
//	srv := echotest.New()
//	conn := faultlinetest.Serve(t, func(gs *grpc.Server) { srv.Register(gs) }, nil,
//		interceptor.DialOptions()...) // the client under test
//
//	// The next Do call runs, then fails as if the connection had been reset.
//	srv.FailAfterNext(testpb.Echo_Do_FullMethodName, 1, status.New(codes.Unavailable, "reset"))
//	... // call testpb.NewEchoClient(conn) through the code under test
//	calls := srv.Calls(testpb.Echo_Do_FullMethodName)   // calls received
//	ran := srv.Handled(testpb.Echo_Do_FullMethodName)   // calls whose handler ran
//
// # Methods
//
// Every method answers EchoResponse{text: request.text}. Create also
// deduplicates by request_id: a non-empty request_id seen before in a
// Create that ran its handler (even one failed afterwards by
// [Server.FailAfterNext]) returns the first response again and creates
// nothing;
// [Server.Created] counts the creations.
//
// # Scripts
//
// Each method has a queue of scripted failures, taken one per call in
// arrival order: [Server.FailNext] fails calls before the handler runs
// (nothing happens), [Server.FailAfterNext] after it ran (the side effect
// happened, the client gets the status instead of the response). Calls
// after the queue is used up succeed. Methods are named by their full
// names, the generated testpb.Echo_*_FullMethodName constants.
//
// # Concurrency
//
// A Server is safe for concurrent use: scripts may be added and counters
// read while calls are served.
//
// This package is internal to faultline and imports no other faultline
// package than testpb; it is not covered by any compatibility promise.
package echotest
