package connecttest_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/faultline-go/faultline/connectfaultline/internal/connecttest"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
)

// TestCreateSandboxRequestID checks sandboxtest's dedup through connect-go: a create
// without request_id creates a sandbox per call, two with the same request_id one.
func TestCreateSandboxRequestID(t *testing.T) {
	eachClient(t, []transport{tcp}, func(t *testing.T, tr transport, v connecttest.HTTP, p connecttest.Protocol) {
		tests := []struct {
			name      string
			requestID string
			want      int
		}{
			{"without request_id", "", 2},
			{"same request_id", "req-1", 1},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e := newEnv(t, tr, v, p)
				var ids []string
				for range 2 {
					res, err := e.sb.CreateSandbox(callCtx(t), connect.NewRequest(&sandboxpb.CreateSandboxRequest{
						Sandbox: &sandboxpb.Sandbox{Spec: &sandboxpb.SandboxSpec{Image: "python:3.12"}}, RequestId: tt.requestID}))
					if err != nil {
						t.Fatalf("CreateSandbox(%q) error = %v", tt.requestID, err)
					}
					ids = append(ids, res.Msg.GetSandboxId())
				}
				if got := e.srv.SandboxesCreated(); got != tt.want {
					t.Errorf("SandboxesCreated() = %d, want %d", got, tt.want)
				}
				if same := ids[0] == ids[1]; same != (tt.want == 1) {
					t.Errorf("CreateSandbox ids = %q, want the same id twice: %v", ids, tt.want == 1)
				}
				if got := e.srv.Calls(mCreate); got != 2 {
					t.Errorf("Calls(CreateSandbox) = %d, want 2", got)
				}
			})
		}
	})
}

// TestExecCounts checks that every Exec that reaches the service runs its command, a
// call failed before the handler runs nothing, and one failed after it ran counts.
func TestExecCounts(t *testing.T) {
	eachClient(t, []transport{tcp}, func(t *testing.T, tr transport, v connecttest.HTTP, p connecttest.Protocol) {
		e := newEnv(t, tr, v, p)
		unavailable := faultlinetest.Status(codes.Unavailable, "connection reset")
		e.srv.FailNext(mExec, 1, unavailable)
		e.srv.Script(mExec, sandboxtest.Succeed(), sandboxtest.FailAfter(unavailable))
		req := &sandboxpb.ExecRequest{SandboxId: "sb-1", Command: []string{"echo", "hi"}}
		want := []struct {
			code connect.Code // 0: success
			runs int
		}{{connect.CodeUnavailable, 0}, {0, 1}, {connect.CodeUnavailable, 2}, {0, 3}}
		for i, w := range want {
			res, err := e.sb.Exec(callCtx(t), connect.NewRequest(req))
			if got := codeOf(err); got != w.code {
				t.Errorf("Exec #%d code = %v (%v), want %v", i+1, got, err, w.code)
			}
			if err == nil && string(res.Msg.GetStdout()) != "echo hi" {
				t.Errorf("Exec #%d stdout = %q, want %q", i+1, res.Msg.GetStdout(), "echo hi")
			}
			if got := e.srv.ExecRuns(); got != w.runs {
				t.Errorf("ExecRuns() after Exec #%d = %d, want %d", i+1, got, w.runs)
			}
		}
		if got, want := e.srv.Calls(mExec), len(want); got != want {
			t.Errorf("Calls(Exec) = %d, want %d", got, want)
		}
	})
}

// codeOf is connect.CodeOf, with 0 for a nil error.
func codeOf(err error) connect.Code {
	if err == nil {
		return 0
	}
	return connect.CodeOf(err)
}

// TestStreamLogsResume reads a log, fails it after some lines (a status, then a reset),
// and resumes from the cursor of the last entry received: every line arrives once.
func TestStreamLogsResume(t *testing.T) {
	eachClient(t, bothPaths, func(t *testing.T, tr transport, v connecttest.HTTP, p connecttest.Protocol) {
		e := newEnv(t, tr, v, p, sandboxtest.WithLog(8, 0))
		ctx := callCtx(t)
		e.srv.ScriptStreamLogs(sandboxtest.StreamLogsScript{Entries: 3, Err: faultlinetest.Status(codes.Unavailable, "stream interrupted")})
		e.srv.Inject(mLogs, connecttest.Fault{}, connecttest.ResetAfter(connecttest.AbortStream, 2))

		var got []*sandboxpb.LogEntry
		req := &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"}
		for attempt := 1; ; attempt++ {
			if attempt > 5 {
				t.Fatalf("StreamLogs did not end after %d attempts", attempt-1)
			}
			entries, err := recvLogs(ctx, e, req)
			got = append(got, entries...)
			if err == nil {
				break
			}
			if attempt > 2 {
				t.Fatalf("StreamLogs attempt %d error = %v, want success", attempt, err)
			}
			if n := len(got); n > 0 {
				req.ResumeLogSessionId, req.ResumeLogOffset = got[n-1].GetLogSessionId(), got[n-1].GetNextLogOffset()
			}
		}
		var want []*sandboxpb.LogEntry
		for off := range uint64(8) {
			want = append(want, entry(off))
		}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("StreamLogs entries over the resumed attempts mismatch (-want +got):\n%s", diff)
		}
		if n := e.srv.Calls(mLogs); n != 3 {
			t.Errorf("Calls(StreamLogs) = %d, want 3", n)
		}
	})
}

// TestStreamExec checks the bidi stream: an echo on HTTP/2, refused on HTTP/1.1 (connect-go
// needs HTTP/2 for bidi streams), on every protocol.
func TestStreamExec(t *testing.T) {
	eachClient(t, bothPaths, func(t *testing.T, tr transport, v connecttest.HTTP, p connecttest.Protocol) {
		e := newEnv(t, tr, v, p)
		s := e.sb.StreamExec(callCtx(t))
		reqs := []*sandboxpb.ExecStreamRequest{
			{Request: &sandboxpb.ExecStreamRequest_Init{Init: &sandboxpb.ExecStreamInit{SandboxId: "sb-1", Command: []string{"cat"}}}},
			{Request: &sandboxpb.ExecStreamRequest_Stdin{Stdin: []byte("a")}},
		}
		var sendErr error
		for _, r := range reqs {
			if sendErr = s.Send(r); sendErr != nil {
				break
			}
		}
		_ = s.CloseRequest()
		var got []*sandboxpb.ExecStreamResponse
		var err error
		for {
			var r *sandboxpb.ExecStreamResponse
			if r, err = s.Receive(); err != nil {
				break
			}
			got = append(got, r)
		}
		_ = s.CloseResponse()
		if v == connecttest.HTTP1 {
			// The handler answers 505; the client sees it as UNKNOWN (HTTP 505 has no gRPC
			// mapping), never as a message.
			if c := codeOf(err); c != connect.CodeUnknown || len(got) != 0 || connect.IsWireError(err) {
				t.Errorf("StreamExec on HTTP/1.1 = %d responses, %v (code %v, wire %v), want none, UNKNOWN, not wire",
					len(got), err, c, connect.IsWireError(err))
			}
			if n := e.srv.Calls(mStreamExe); n != 0 {
				t.Errorf("Calls(StreamExec) on HTTP/1.1 = %d, want 0", n)
			}
			return
		}
		if !errors.Is(err, io.EOF) || sendErr != nil {
			t.Fatalf("StreamExec ended with send error %v, receive error %v, want nil, io.EOF", sendErr, err)
		}
		want := []*sandboxpb.ExecStreamResponse{
			{Response: &sandboxpb.ExecStreamResponse_Ready{Ready: &sandboxpb.ExecStreamReady{}}},
			{Response: &sandboxpb.ExecStreamResponse_Output{Output: &sandboxpb.ExecStreamOutput{
				Stream: sandboxpb.ExecStreamOutput_STREAM_STDOUT, Data: []byte("a")}}},
			{Response: &sandboxpb.ExecStreamResponse_Exit{Exit: &sandboxpb.ExecStreamExit{}}},
		}
		if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
			t.Errorf("StreamExec responses mismatch (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]any{reqs[0], reqs[1]}, toAny(e.srv.Requests(mStreamExe)), protocmp.Transform()); diff != "" {
			t.Errorf("Requests(StreamExec) mismatch (-want +got):\n%s", diff)
		}
	})
}

func toAny[T any](in []T) []any {
	out := make([]any, len(in))
	for i, v := range in {
		out[i] = v
	}
	return out
}

// TestServiceMethods calls every other method once through connect-go.
func TestServiceMethods(t *testing.T) {
	eachClient(t, []transport{memory}, func(t *testing.T, tr transport, v connecttest.HTTP, p connecttest.Protocol) {
		e := newEnv(t, tr, v, p)
		ctx := callCtx(t)
		if _, err := e.sb.WriteFile(ctx, connect.NewRequest(&sandboxpb.WriteFileRequest{SandboxId: "sb-1", Path: "/a", Content: []byte("hi")})); err != nil {
			t.Fatalf("WriteFile error = %v", err)
		}
		rf, err := e.sb.ReadFile(ctx, connect.NewRequest(&sandboxpb.ReadFileRequest{SandboxId: "sb-1", Path: "/a"}))
		if err != nil || string(rf.Msg.GetContent()) != "hi" {
			t.Errorf("ReadFile(/a) = %v, %v, want %q", rf, err, "hi")
		}
		_, err = e.sb.ReadFile(ctx, connect.NewRequest(&sandboxpb.ReadFileRequest{SandboxId: "sb-1"}))
		checkDetails(t, "ReadFile(no path)", err, faultlinetest.Status(codes.InvalidArgument, "path: must not be empty",
			faultlinetest.BadRequest(faultlinetest.FieldViolation("path", "must not be empty"))))
		fss, err := e.sb.GetFileSystemSnapshot(ctx, connect.NewRequest(&sandboxpb.GetFileSystemSnapshotRequest{FileSystemSnapshotId: "fss-1"}))
		if err != nil || fss.Msg.GetState() != sandboxpb.SnapshotState_SNAPSHOT_STATE_READY {
			t.Errorf("GetFileSystemSnapshot(fss-1) = %v, %v, want READY", fss, err)
		}
		snap, err := e.sb.CreateFileSystemSnapshot(ctx, connect.NewRequest(&sandboxpb.CreateFileSystemSnapshotRequest{SandboxId: "sb-1", RequestId: "s-1"}))
		if err != nil || snap.Msg.GetFileSystemSnapshotId() == "" {
			t.Errorf("CreateFileSystemSnapshot = %v, %v, want a snapshot", snap, err)
		}
		del, err := e.sb.DeleteSandbox(ctx, connect.NewRequest(&sandboxpb.DeleteSandboxRequest{SandboxId: "sb-1"}))
		if err != nil || del.Msg.GetSandbox().GetStatus().GetState() != sandboxpb.SandboxStatus_STATE_TERMINATED {
			t.Errorf("DeleteSandbox(sb-1) = %v, %v, want TERMINATED", del, err)
		}
		checkDetails(t, "GetSandbox(deleted)", getSandbox(ctx, e, "sb-1"), faultlinetest.Status(codes.NotFound, `sandbox "sb-1" not found`,
			faultlinetest.ErrorInfo(sandboxtest.Domain, sandboxtest.ReasonSandboxNotFound, map[string]string{"sandbox_id": "sb-1"})))
		if _, err := e.disc.GetAvailableRunner(ctx, connect.NewRequest(&sandboxpb.GetAvailableRunnerRequest{RunnerId: "r-1"})); err != nil {
			t.Errorf("GetAvailableRunner(r-1) = %v, want nil", err)
		}
		if got := e.srv.SnapshotsCreated(); got != 1 {
			t.Errorf("SnapshotsCreated() = %d, want 1", got)
		}
	})
}

// TestMetadata checks that request headers reach sandboxtest as incoming metadata: its
// bearer-token auth, its recordings, and binary headers decoded.
func TestMetadata(t *testing.T) {
	eachClient(t, []transport{memory}, func(t *testing.T, tr transport, v connecttest.HTTP, p connecttest.Protocol) {
		e := newEnv(t, tr, v, p, sandboxtest.WithBearerToken("secret"))
		ctx := callCtx(t)
		call := func(auth string, attempt string) error {
			req := connect.NewRequest(&sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
			if auth != "" {
				req.Header().Set("Authorization", auth)
			}
			req.Header().Set("X-Retry-Attempt", attempt)
			req.Header().Set("Trace-Bin", connect.EncodeBinaryHeader([]byte{0, 1, 2}))
			_, err := e.sb.GetSandbox(ctx, req)
			return err
		}
		if c := codeOf(call("", "1")); c != connect.CodeUnauthenticated {
			t.Errorf("GetSandbox without a key: code = %v, want Unauthenticated", c)
		}
		if err := call("Bearer secret", "2"); err != nil {
			t.Errorf("GetSandbox with the key = %v, want nil", err)
		}
		mds := e.srv.Metadata(mGet)
		if len(mds) != 2 {
			t.Fatalf("Metadata(GetSandbox) = %d calls, want 2", len(mds))
		}
		for i, want := range []string{"1", "2"} {
			if got := mds[i].Get("x-retry-attempt"); len(got) != 1 || got[0] != want {
				t.Errorf("call %d x-retry-attempt = %q, want [%q]", i+1, got, want)
			}
			if got := mds[i].Get("trace-bin"); len(got) != 1 || got[0] != "\x00\x01\x02" {
				t.Errorf("call %d trace-bin = %q, want the decoded bytes", i+1, got)
			}
		}
		if got := mds[1].Get("authorization"); len(got) != 1 || got[0] != "Bearer secret" {
			t.Errorf("authorization = %q, want [Bearer secret]", got)
		}
	})
}

// TestStallAndWaitCalls cancels a stalled call once the server holds it.
func TestStallAndWaitCalls(t *testing.T) {
	eachClient(t, []transport{tcp}, func(t *testing.T, tr transport, v connecttest.HTTP, p connecttest.Protocol) {
		e := newEnv(t, tr, v, p)
		e.srv.Script(mGet, sandboxtest.Stall())
		ctx, cancel := context.WithCancel(callCtx(t))
		defer cancel()
		stalled := make(chan error, 1)
		go func() { stalled <- getSandbox(ctx, e, "sb-1") }()
		if err := e.srv.WaitCalls(callCtx(t), mGet, 1); err != nil {
			t.Fatalf("WaitCalls(GetSandbox, 1) = %v", err)
		}
		cancel()
		err := <-stalled
		if c := codeOf(err); c != connect.CodeCanceled || connect.IsWireError(err) {
			t.Errorf("stalled GetSandbox = %v (code %v, wire %v), want CANCELED, not wire", err, c, connect.IsWireError(err))
		}
		if err := getSandbox(callCtx(t), e, "sb-1"); err != nil {
			t.Errorf("GetSandbox after the stall = %v, want nil", err)
		}
	})
}

func TestServerIsHandler(t *testing.T) {
	var _ http.Handler = connecttest.New()
	// Reset clears sandboxtest's counters and the faults, not the sandboxes.
	e := newEnv(t, memory, connecttest.HTTP2, connecttest.Connect)
	e.srv.Inject(mGet, connecttest.ResetBefore(connecttest.AbortStream))
	e.srv.FailNext(mGet, 1, faultlinetest.Status(codes.Internal, "x"))
	e.srv.Reset()
	if err := getSandbox(callCtx(t), e, "sb-1"); err != nil {
		t.Errorf("GetSandbox after Reset = %v, want nil", err)
	}
	if a, c := e.srv.Arrived(mGet), e.srv.Calls(mGet); a != 1 || c != 1 {
		t.Errorf("Arrived, Calls after Reset and a call = %d, %d, want 1, 1", a, c)
	}
}
