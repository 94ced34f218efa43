// Package sandboxtest is a scriptable, in-process gRPC server for the
// sandbox service subset in [sandboxpb]: SandboxService and
// DiscoveryService, with the service's semantics (CreateSandbox,
// CreateFileSystemSnapshot and DeleteSandbox deduplicated by request_id,
// unary Exec running its command on every call, in-memory files, AIP-193
// NOT_FOUND errors with ErrorInfo in domain "cwsandbox.com", optional
// bearer-token auth) and scripted faults, so that faultline's tests,
// examples and integration tests can assert exact attempt counts and that
// no call ran twice.
//
// Usage:
//
//	srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
//	lis, stop := srv.StartBufconn()
//	defer stop()
//	conn, err := sandboxtest.DialBufconn(lis)
//	if err != nil { ... }
//	defer conn.Close()
//
//	// Fail the next two GetSandbox calls, then succeed. The statuses are built with
//	// package faultlinetest.
//	srv.FailNext(sandboxpb.SandboxService_GetSandbox_FullMethodName, 2,
//		faultlinetest.Status(codes.Unavailable, "runner unavailable",
//			faultlinetest.ErrorInfo(sandboxtest.Domain, "CWSANDBOX_RUNNER_UNAVAILABLE", nil),
//			faultlinetest.RetryInfo(100*time.Millisecond)))
//	// Send two log lines, then fail the stream.
//	srv.ScriptStreamLogs(sandboxtest.StreamLogsScript{
//		Entries: 2, Err: faultlinetest.Status(codes.Unavailable, "stream reset")})
//
//	// Create a sandbox, then fail as if the connection had been reset.
//	srv.FailAfterNext(sandboxpb.SandboxService_CreateSandbox_FullMethodName, 1,
//		faultlinetest.Status(codes.Unavailable, "connection reset"))
//
//	client := sandboxpb.NewSandboxServiceClient(conn)
//	... // call through the code under test
//	n := srv.Calls(sandboxpb.SandboxService_GetSandbox_FullMethodName) // 3
//	made := srv.SandboxesCreated() // 2 if a CreateSandbox without request_id was retried
//
// # Scripts
//
// Every call is counted ([Server.Calls]) and recorded ([Server.Requests],
// [Server.Metadata]) first, then checked for auth ([WithBearerToken]), then
// takes the method's next queued [Step] ([Server.Script],
// [Server.FailNext], [Server.FailAfterNext]) or its always-fail status
// ([Server.FailAlways]); only then does the handler run (counted by
// [Server.Handled]). A [FailAfter] step fails the call after its handler
// ran: the side effect happened, the client gets the status instead of the
// response, which is what an ambiguous failure (a reset after the request
// was handled) looks like. Streams have their own per-call scripts
// ([StreamLogsScript], [StreamExecScript]) for what happens after the
// stream started: messages followed by a status, or by an in-band error
// frame. Methods are named by their full names, the generated
// sandboxpb.*_FullMethodName constants.
//
// [Server.WaitCalls] blocks until calls have arrived, so that a test can
// cancel a stalled call ([Stall]) knowing the server holds it, instead of
// guessing with a short deadline (a call whose deadline passes before it is
// sent takes no step, and the stall would catch the next call).
//
// # Side effects
//
// Counters say what the server did, beside what it received:
// [Server.SandboxesCreated] (every new sandbox, so a retried create without
// request_id shows twice), [Server.ExecRuns] (every command Exec ran) and
// [Server.SnapshotsCreated] (every new snapshot, from
// CreateFileSystemSnapshot or DeleteSandbox with snapshot_volumes). A call
// with a request_id the server has seen in a successful call of the same
// method returns that first response and does not count.
//
// # Serving
//
// [Server.StartBufconn] and [Server.StartTCP] (127.0.0.1 only) serve the
// Server and return a stop function that leaves no goroutine behind. To
// build the gRPC server yourself, pass [Server.ServerOptions] to
// [grpc.NewServer] and call [Server.Register].
//
// # Concurrency
//
// A Server is safe for concurrent use: scripts may be changed and counters
// read while calls are served. Script steps are taken in call arrival order,
// which is only deterministic for calls that do not overlap.
//
// This package is internal to faultline and imports no other faultline
// packages than sandboxpb and faultlinetest (for its statuses); it is not
// covered by any compatibility promise.
package sandboxtest
