package sandboxtest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	mCreate     = sandboxpb.SandboxService_CreateSandbox_FullMethodName
	mGet        = sandboxpb.SandboxService_GetSandbox_FullMethodName
	mDelete     = sandboxpb.SandboxService_DeleteSandbox_FullMethodName
	mLogs       = sandboxpb.SandboxService_StreamLogs_FullMethodName
	mExec       = sandboxpb.SandboxService_StreamExec_FullMethodName
	mUnaryExec  = sandboxpb.SandboxService_Exec_FullMethodName
	mSnapshot   = sandboxpb.SandboxService_CreateFileSystemSnapshot_FullMethodName
	mReadFile   = sandboxpb.SandboxService_ReadFile_FullMethodName
	mWriteFile  = sandboxpb.SandboxService_WriteFile_FullMethodName
	mGetFSS     = sandboxpb.SandboxService_GetFileSystemSnapshot_FullMethodName
	mGetRunner  = sandboxpb.DiscoveryService_GetAvailableRunner_FullMethodName
	callTimeout = time.Minute
)

// callCtx returns a context for the test's calls that ends after
// callTimeout: a call that should have returned fails the test with
// DEADLINE_EXCEEDED instead of hanging until the test binary's timeout.
func callCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

type clients struct {
	sandbox   sandboxpb.SandboxServiceClient
	discovery sandboxpb.DiscoveryServiceClient
}

func start(t *testing.T, opts ...sandboxtest.Option) (*sandboxtest.Server, clients) {
	t.Helper()
	srv := sandboxtest.New(opts...)
	conn := faultlinetest.Serve(t, func(gs *grpc.Server) { srv.Register(gs) }, srv.ServerOptions())
	return srv, clients{sandboxpb.NewSandboxServiceClient(conn), sandboxpb.NewDiscoveryServiceClient(conn)}
}

// checkStatus fails the test unless err's status has code c and exactly
// the details want.
func checkStatus(t *testing.T, call string, err error, c codes.Code, want ...proto.Message) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != c {
		t.Fatalf("%s: code = %v (%v), want %v", call, st.Code(), err, c)
	}
	var got []proto.Message
	for _, d := range st.Details() {
		m, ok := d.(proto.Message)
		if !ok {
			t.Fatalf("%s: detail %v is not a proto message", call, d)
		}
		got = append(got, m)
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("%s: details mismatch (-want +got):\n%s", call, diff)
	}
}

func getSandbox(ctx context.Context, c clients, id string) error {
	_, err := c.sandbox.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: id})
	return err
}

func TestFailNext(t *testing.T) {
	srv, c := start(t, sandboxtest.WithSandboxes("sb-1"))
	unavailable := faultlinetest.Status(codes.Unavailable, "runner unavailable",
		faultlinetest.ErrorInfo(sandboxtest.Domain, "CWSANDBOX_RUNNER_UNAVAILABLE", map[string]string{"runner": "r1"}),
		faultlinetest.RetryInfo(250*time.Millisecond))
	srv.FailNext(mGet, 2, unavailable)

	for i := range 2 {
		err := getSandbox(callCtx(t), c, "sb-1")
		checkStatus(t, fmt.Sprintf("GetSandbox #%d", i+1), err, codes.Unavailable,
			&errdetails.ErrorInfo{Reason: "CWSANDBOX_RUNNER_UNAVAILABLE", Domain: "cwsandbox.com", Metadata: map[string]string{"runner": "r1"}},
			&errdetails.RetryInfo{RetryDelay: durationpb.New(250 * time.Millisecond)})
	}
	if err := getSandbox(callCtx(t), c, "sb-1"); err != nil {
		t.Fatalf("GetSandbox #3 = %v, want nil", err)
	}
	if got := srv.Calls(mGet); got != 3 {
		t.Errorf("Calls(GetSandbox) = %d, want 3", got)
	}
	if got := srv.Calls(mCreate); got != 0 {
		t.Errorf("Calls(CreateSandbox) = %d, want 0", got)
	}
}

func TestScriptAndFailAlways(t *testing.T) {
	srv, c := start(t, sandboxtest.WithSandboxes("sb-1"))
	srv.Script(mGet,
		sandboxtest.Fail(faultlinetest.Status(codes.ResourceExhausted, "slow down")),
		sandboxtest.Succeed(),
		sandboxtest.Fail(faultlinetest.Status(codes.Internal, "boom")),
	)
	srv.FailAlways(mGet, faultlinetest.Status(codes.Unavailable, "down"))

	want := []codes.Code{codes.ResourceExhausted, codes.OK, codes.Internal, codes.Unavailable, codes.Unavailable}
	for i, w := range want {
		if got := status.Code(getSandbox(callCtx(t), c, "sb-1")); got != w {
			t.Errorf("GetSandbox #%d code = %v, want %v", i+1, got, w)
		}
	}
	srv.FailAlways(mGet, nil)
	if err := getSandbox(callCtx(t), c, "sb-1"); err != nil {
		t.Errorf("GetSandbox after FailAlways(nil) = %v, want nil", err)
	}
	if got := srv.Calls(mGet); got != len(want)+1 {
		t.Errorf("Calls(GetSandbox) = %d, want %d", got, len(want)+1)
	}
}

// TestStall cancels a stalled call once the server holds it. (It used to
// give the call a 20ms deadline: under load the deadline could pass before
// the call was sent, the Stall step stayed queued, and the next call, with
// no deadline, stalled until the test binary timed out.)
func TestStall(t *testing.T) {
	srv, c := start(t, sandboxtest.WithSandboxes("sb-1"))
	srv.Script(mGet, sandboxtest.Stall())
	ctx, cancel := context.WithCancel(callCtx(t))
	defer cancel()
	stalled := make(chan error, 1)
	go func() { stalled <- getSandbox(ctx, c, "sb-1") }()
	if err := srv.WaitCalls(callCtx(t), mGet, 1); err != nil {
		t.Fatalf("WaitCalls(GetSandbox, 1) = %v, want nil", err)
	}
	cancel()
	if got := status.Code(<-stalled); got != codes.Canceled {
		t.Errorf("stalled GetSandbox code = %v, want Canceled", got)
	}
	if err := getSandbox(callCtx(t), c, "sb-1"); err != nil {
		t.Errorf("GetSandbox after the stall = %v, want nil", err)
	}
	if got := srv.Handled(mGet); got != 1 {
		t.Errorf("Handled(GetSandbox) = %d, want 1 (the stalled call never reached the handler)", got)
	}
}

func TestWaitCalls(t *testing.T) {
	srv, c := start(t, sandboxtest.WithSandboxes("sb-1"))
	if err := srv.WaitCalls(callCtx(t), mGet, 0); err != nil {
		t.Errorf("WaitCalls(GetSandbox, 0) = %v, want nil", err)
	}
	done, cancel := context.WithCancel(callCtx(t))
	cancel()
	if err := srv.WaitCalls(done, mGet, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitCalls(cancelled, GetSandbox, 1) = %v, want context.Canceled", err)
	}
	waited, ctx := make(chan error, 1), callCtx(t)
	go func() { waited <- srv.WaitCalls(ctx, mGet, 2) }()
	for range 2 {
		if err := getSandbox(callCtx(t), c, "sb-1"); err != nil {
			t.Fatalf("GetSandbox = %v, want nil", err)
		}
	}
	if err := <-waited; err != nil {
		t.Errorf("WaitCalls(GetSandbox, 2) after 2 calls = %v, want nil", err)
	}
	// Calls of another method do not count.
	short, cancel := context.WithCancel(callCtx(t))
	cancel()
	if err := srv.WaitCalls(short, mCreate, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("WaitCalls(cancelled, CreateSandbox, 1) = %v, want context.Canceled", err)
	}
}

func TestScriptPanics(t *testing.T) {
	srv := sandboxtest.New()
	tests := []struct {
		name string
		f    func()
	}{
		{"short method name", func() { srv.Script("GetSandbox", sandboxtest.Succeed()) }},
		{"unknown method", func() { srv.FailAlways("/coreweave.sandbox.v1.SandboxService/Nope", nil) }},
		{"nil status", func() { sandboxtest.Fail(nil) }},
		{"OK status", func() { sandboxtest.Fail(status.New(codes.OK, "")) }},
		{"FailAfter nil status", func() { sandboxtest.FailAfter(nil) }},
		{"FailAfter OK status", func() { sandboxtest.FailAfter(status.New(codes.OK, "")) }},
		{"FailAfterNext unknown method", func() { srv.FailAfterNext("Exec", 1, status.New(codes.Unavailable, "")) }},
		{"WaitCalls unknown method", func() { _ = srv.WaitCalls(context.Background(), "/x.Y/Z", 0) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", tt.name)
				}
			}()
			tt.f()
		})
	}
}

func TestCreateSandboxDedup(t *testing.T) {
	srv, c := start(t)
	create := func(reqID string) *sandboxpb.Sandbox {
		t.Helper()
		sb, err := c.sandbox.CreateSandbox(callCtx(t), &sandboxpb.CreateSandboxRequest{
			Sandbox:   &sandboxpb.Sandbox{Spec: &sandboxpb.SandboxSpec{Image: "python:3.12"}},
			RequestId: reqID,
		})
		if err != nil {
			t.Fatalf("CreateSandbox(%q) error = %v", reqID, err)
		}
		return sb
	}
	a1, a2, b := create("req-a"), create("req-a"), create("req-b")
	if diff := cmp.Diff(a1, a2, protocmp.Transform()); diff != "" {
		t.Errorf("CreateSandbox(req-a) twice differs (-first +second):\n%s", diff)
	}
	if a1.GetSandboxId() == b.GetSandboxId() {
		t.Errorf("CreateSandbox(req-b) id = %q, want a new id", b.GetSandboxId())
	}
	if got, want := a1.GetStatus().GetState(), sandboxpb.SandboxStatus_STATE_CREATING; got != want {
		t.Errorf("CreateSandbox state = %v, want %v", got, want)
	}
	e1, e2 := create(""), create("")
	if e1.GetSandboxId() == e2.GetSandboxId() {
		t.Errorf("CreateSandbox without request_id twice gave id %q twice", e1.GetSandboxId())
	}
	if got := srv.SandboxesCreated(); got != 4 {
		t.Errorf("SandboxesCreated() = %d, want 4", got)
	}
	if got := srv.Created(); got != 4 {
		t.Errorf("Created() = %d, want 4", got)
	}
	if got := srv.Calls(mCreate); got != 5 {
		t.Errorf("Calls(CreateSandbox) = %d, want 5", got)
	}

	got, err := c.sandbox.GetSandbox(callCtx(t), &sandboxpb.GetSandboxRequest{SandboxId: a1.GetSandboxId()})
	if err != nil {
		t.Fatalf("GetSandbox(created) error = %v", err)
	}
	want := &sandboxpb.Sandbox{
		SandboxId: a1.GetSandboxId(),
		Spec:      &sandboxpb.SandboxSpec{Image: "python:3.12"},
		Status:    &sandboxpb.SandboxStatus{State: sandboxpb.SandboxStatus_STATE_RUNNING},
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("GetSandbox(created) mismatch (-want +got):\n%s", diff)
	}

	_, err = c.sandbox.CreateSandbox(callCtx(t), &sandboxpb.CreateSandboxRequest{
		Sandbox: &sandboxpb.Sandbox{SandboxId: a1.GetSandboxId()},
	})
	checkStatus(t, "CreateSandbox(existing id)", err, codes.AlreadyExists)
}

func TestNotFound(t *testing.T) {
	_, c := start(t, sandboxtest.WithSandboxes("sb-1"), sandboxtest.WithRunners("r-1"), sandboxtest.WithSnapshots("fss-1"))
	ctx := callCtx(t)
	info := func(reason, k, v string) *errdetails.ErrorInfo {
		return &errdetails.ErrorInfo{Reason: reason, Domain: "cwsandbox.com", Metadata: map[string]string{k: v}}
	}
	tests := []struct {
		name string
		call func() error
		want *errdetails.ErrorInfo
	}{
		{"GetSandbox", func() error { return getSandbox(ctx, c, "nope") },
			info("CWSANDBOX_SANDBOX_NOT_FOUND", "sandbox_id", "nope")},
		{"ReadFile unknown sandbox", func() error {
			_, err := c.sandbox.ReadFile(ctx, &sandboxpb.ReadFileRequest{SandboxId: "nope", Path: "/a"})
			return err
		}, info("CWSANDBOX_SANDBOX_NOT_FOUND", "sandbox_id", "nope")},
		{"ReadFile missing file", func() error {
			_, err := c.sandbox.ReadFile(ctx, &sandboxpb.ReadFileRequest{SandboxId: "sb-1", Path: "/missing"})
			return err
		}, info("CWSANDBOX_FILE_NOT_FOUND", "filepath", "/missing")},
		{"WriteFile unknown sandbox", func() error {
			_, err := c.sandbox.WriteFile(ctx, &sandboxpb.WriteFileRequest{SandboxId: "nope", Path: "/a"})
			return err
		}, info("CWSANDBOX_SANDBOX_NOT_FOUND", "sandbox_id", "nope")},
		{"GetFileSystemSnapshot", func() error {
			_, err := c.sandbox.GetFileSystemSnapshot(ctx, &sandboxpb.GetFileSystemSnapshotRequest{FileSystemSnapshotId: "nope"})
			return err
		}, info("CWSANDBOX_FSS_NOT_FOUND", "file_system_snapshot_id", "nope")},
		{"GetAvailableRunner", func() error {
			_, err := c.discovery.GetAvailableRunner(ctx, &sandboxpb.GetAvailableRunnerRequest{RunnerId: "nope"})
			return err
		}, info("CWSANDBOX_RUNNER_NOT_FOUND", "runner_id", "nope")},
		{"DeleteSandbox", func() error {
			_, err := c.sandbox.DeleteSandbox(ctx, &sandboxpb.DeleteSandboxRequest{SandboxId: "nope"})
			return err
		}, info("CWSANDBOX_SANDBOX_NOT_FOUND", "sandbox_id", "nope")},
		{"StreamLogs", func() error {
			s, err := c.sandbox.StreamLogs(ctx, &sandboxpb.StreamLogsRequest{SandboxId: "nope"})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, info("CWSANDBOX_SANDBOX_NOT_FOUND", "sandbox_id", "nope")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkStatus(t, tt.name, tt.call(), codes.NotFound, tt.want)
		})
	}

	// The known ones succeed.
	if _, err := c.discovery.GetAvailableRunner(ctx, &sandboxpb.GetAvailableRunnerRequest{RunnerId: "r-1"}); err != nil {
		t.Errorf("GetAvailableRunner(r-1) = %v, want nil", err)
	}
	fss, err := c.sandbox.GetFileSystemSnapshot(ctx, &sandboxpb.GetFileSystemSnapshotRequest{FileSystemSnapshotId: "fss-1"})
	if err != nil || fss.GetState() != sandboxpb.SnapshotState_SNAPSHOT_STATE_READY {
		t.Errorf("GetFileSystemSnapshot(fss-1) = %v, %v, want READY, nil", fss, err)
	}
}

func TestFiles(t *testing.T) {
	_, c := start(t, sandboxtest.WithSandboxes("sb-1", "sb-2"))
	ctx := callCtx(t)
	if _, err := c.sandbox.WriteFile(ctx, &sandboxpb.WriteFileRequest{SandboxId: "sb-1", Path: "/a", Content: []byte("hello")}); err != nil {
		t.Fatalf("WriteFile() error = %v", err)
	}
	got, err := c.sandbox.ReadFile(ctx, &sandboxpb.ReadFileRequest{SandboxId: "sb-1", Path: "/a"})
	if err != nil || string(got.GetContent()) != "hello" {
		t.Errorf("ReadFile(sb-1, /a) = %q, %v, want %q, nil", got.GetContent(), err, "hello")
	}
	_, err = c.sandbox.ReadFile(ctx, &sandboxpb.ReadFileRequest{SandboxId: "sb-2", Path: "/a"})
	checkStatus(t, "ReadFile(sb-2, /a)", err, codes.NotFound,
		&errdetails.ErrorInfo{Reason: "CWSANDBOX_FILE_NOT_FOUND", Domain: "cwsandbox.com", Metadata: map[string]string{"filepath": "/a"}})
	_, err = c.sandbox.WriteFile(ctx, &sandboxpb.WriteFileRequest{SandboxId: "sb-1"})
	checkStatus(t, "WriteFile(no path)", err, codes.InvalidArgument,
		&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "path", Description: "must not be empty"}}})
}

func TestDeleteSandbox(t *testing.T) {
	_, c := start(t, sandboxtest.WithSandboxes("sb-1"))
	ctx := callCtx(t)
	res, err := c.sandbox.DeleteSandbox(ctx, &sandboxpb.DeleteSandboxRequest{SandboxId: "sb-1", SnapshotVolumes: true})
	if err != nil {
		t.Fatalf("DeleteSandbox(sb-1) error = %v", err)
	}
	want := &sandboxpb.DeleteSandboxResponse{
		Sandbox: &sandboxpb.Sandbox{
			SandboxId: "sb-1",
			Status:    &sandboxpb.SandboxStatus{State: sandboxpb.SandboxStatus_STATE_TERMINATED},
		},
		FileSystemSnapshotIds: []string{"fss-sb-1"},
	}
	if diff := cmp.Diff(want, res, protocmp.Transform()); diff != "" {
		t.Errorf("DeleteSandbox(sb-1) mismatch (-want +got):\n%s", diff)
	}
	if _, err := c.sandbox.GetFileSystemSnapshot(ctx, &sandboxpb.GetFileSystemSnapshotRequest{FileSystemSnapshotId: "fss-sb-1"}); err != nil {
		t.Errorf("GetFileSystemSnapshot(fss-sb-1) = %v, want nil", err)
	}
	checkStatus(t, "GetSandbox(deleted)", getSandbox(ctx, c, "sb-1"), codes.NotFound,
		faultlinetest.ErrorInfo(sandboxtest.Domain, sandboxtest.ReasonSandboxNotFound, map[string]string{"sandbox_id": "sb-1"}))
	res, err = c.sandbox.DeleteSandbox(ctx, &sandboxpb.DeleteSandboxRequest{SandboxId: "sb-1", AllowMissing: true})
	if err != nil || !proto.Equal(res, &sandboxpb.DeleteSandboxResponse{}) {
		t.Errorf("DeleteSandbox(deleted, allow_missing) = %v, %v, want empty, nil", res, err)
	}
}

func TestAuth(t *testing.T) {
	srv, c := start(t, sandboxtest.WithBearerToken("secret"), sandboxtest.WithSandboxes("sb-1"))
	srv.FailNext(mGet, 1, faultlinetest.Status(codes.Unavailable, "down"))
	with := func(v string) context.Context {
		return metadata.AppendToOutgoingContext(callCtx(t), "authorization", v)
	}
	tests := []struct {
		name string
		ctx  context.Context
		want codes.Code
	}{
		{"missing", callCtx(t), codes.Unauthenticated},
		{"wrong key", with("Bearer nope"), codes.Unauthenticated},
		{"wrong scheme", with("Basic secret"), codes.Unauthenticated},
		// The scripted failure was not used by the rejected calls.
		{"right key, scripted failure", with("Bearer secret"), codes.Unavailable},
		{"right key", with("Bearer secret"), codes.OK},
	}
	for _, tt := range tests {
		if got := status.Code(getSandbox(tt.ctx, c, "sb-1")); got != tt.want {
			t.Errorf("GetSandbox(%s) code = %v, want %v", tt.name, got, tt.want)
		}
	}
	if got := srv.Calls(mGet); got != len(tests) {
		t.Errorf("Calls(GetSandbox) = %d, want %d", got, len(tests))
	}

	// Streams are checked too.
	s, err := c.sandbox.StreamLogs(callCtx(t), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
	if err == nil {
		_, err = s.Recv()
	}
	if got := status.Code(err); got != codes.Unauthenticated {
		t.Errorf("StreamLogs without a key: code = %v, want Unauthenticated", got)
	}
}

func TestRecording(t *testing.T) {
	srv, c := start(t, sandboxtest.WithSandboxes("sb-1"))
	srv.FailNext(mGet, 1, faultlinetest.Status(codes.Unavailable, "down"))
	for _, attempt := range []string{"1", "2"} {
		ctx := metadata.AppendToOutgoingContext(callCtx(t), "x-retry-attempt", attempt)
		_ = getSandbox(ctx, c, "sb-"+attempt) // the first fails (scripted), the second is NOT_FOUND
	}
	wantReqs := []proto.Message{
		&sandboxpb.GetSandboxRequest{SandboxId: "sb-1"},
		&sandboxpb.GetSandboxRequest{SandboxId: "sb-2"},
	}
	if diff := cmp.Diff(wantReqs, srv.Requests(mGet), protocmp.Transform()); diff != "" {
		t.Errorf("Requests(GetSandbox) mismatch (-want +got):\n%s", diff)
	}
	var attempts []string
	for _, md := range srv.Metadata(mGet) {
		attempts = append(attempts, md.Get("x-retry-attempt")...)
	}
	if diff := cmp.Diff([]string{"1", "2"}, attempts); diff != "" {
		t.Errorf("x-retry-attempt values mismatch (-want +got):\n%s", diff)
	}

	srv.FailAlways(mGet, faultlinetest.Status(codes.Internal, "x"))
	srv.Reset()
	if got := srv.Calls(mGet); got != 0 {
		t.Errorf("Calls after Reset = %d, want 0", got)
	}
	if got := len(srv.Requests(mGet)) + len(srv.Metadata(mGet)); got != 0 {
		t.Errorf("recordings after Reset: %d, want 0", got)
	}
	if err := getSandbox(callCtx(t), c, "sb-1"); err != nil {
		t.Errorf("GetSandbox after Reset = %v, want nil (scripts cleared, sandboxes kept)", err)
	}
}

// recvLogs reads a StreamLogs stream to its end.
func recvLogs(t *testing.T, c clients, req *sandboxpb.StreamLogsRequest) ([]*sandboxpb.LogEntry, error) {
	t.Helper()
	s, err := c.sandbox.StreamLogs(callCtx(t), req)
	if err != nil {
		return nil, err
	}
	var got []*sandboxpb.LogEntry
	for {
		e, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got = append(got, e)
	}
}

func entry(off uint64) *sandboxpb.LogEntry {
	return &sandboxpb.LogEntry{
		Data:          fmt.Appendf(nil, "line %d\n", off),
		LogSessionId:  "logs-sb-1",
		NextLogOffset: off + 1,
	}
}

func TestStreamLogs(t *testing.T) {
	inBand := &sandboxpb.LogStreamError{Message: "runner went away", Code: "RUNNER_UNAVAILABLE"}
	tests := []struct {
		name     string
		script   *sandboxtest.StreamLogsScript
		resume   uint64
		want     []*sandboxpb.LogEntry
		wantCode codes.Code
	}{
		{"default", nil, 0, []*sandboxpb.LogEntry{entry(0), entry(1), entry(2)}, codes.OK},
		{"two then fail", &sandboxtest.StreamLogsScript{Entries: 2, Err: faultlinetest.Status(codes.Unavailable, "reset")},
			0, []*sandboxpb.LogEntry{entry(0), entry(1)}, codes.Unavailable},
		{"resume then fail at once", &sandboxtest.StreamLogsScript{Err: faultlinetest.Status(codes.Internal, "x")},
			2, nil, codes.Internal},
		{"in-band error", &sandboxtest.StreamLogsScript{Entries: 1, InBandError: inBand},
			3, []*sandboxpb.LogEntry{entry(3), {LogSessionId: "logs-sb-1", NextLogOffset: 4, Error: inBand}}, codes.OK},
		{"resume, end OK", &sandboxtest.StreamLogsScript{Entries: 2}, 5, []*sandboxpb.LogEntry{entry(5), entry(6)}, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := start(t, sandboxtest.WithSandboxes("sb-1"))
			if tt.script != nil {
				srv.ScriptStreamLogs(*tt.script)
			}
			got, err := recvLogs(t, c, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1", ResumeLogOffset: tt.resume})
			if code := status.Code(err); code != tt.wantCode {
				t.Errorf("StreamLogs end code = %v (%v), want %v", code, err, tt.wantCode)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("StreamLogs entries mismatch (-want +got):\n%s", diff)
			}
			if n := srv.Calls(mLogs); n != 1 {
				t.Errorf("Calls(StreamLogs) = %d, want 1", n)
			}
		})
	}
}

func TestStreamLogsTimestampsAndQueue(t *testing.T) {
	srv, c := start(t, sandboxtest.WithSandboxes("sb-1"))
	srv.ScriptStreamLogs(sandboxtest.StreamLogsScript{Entries: 1}, sandboxtest.StreamLogsScript{Entries: 2})
	got, err := recvLogs(t, c, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1", Timestamps: true})
	if err != nil || len(got) != 1 || got[0].GetTimestamp() == nil {
		t.Errorf("StreamLogs #1 = %v, %v, want 1 entry with a timestamp", got, err)
	}
	got, err = recvLogs(t, c, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
	if err != nil || len(got) != 2 || got[0].GetTimestamp() != nil {
		t.Errorf("StreamLogs #2 = %v, %v, want 2 entries without timestamps", got, err)
	}
	got, err = recvLogs(t, c, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
	if err != nil || len(got) != sandboxtest.DefaultLogEntries {
		t.Errorf("StreamLogs #3 = %d entries, %v, want %d, nil", len(got), err, sandboxtest.DefaultLogEntries)
	}
}

func execInit(id string) *sandboxpb.ExecStreamRequest {
	return &sandboxpb.ExecStreamRequest{Request: &sandboxpb.ExecStreamRequest_Init{Init: &sandboxpb.ExecStreamInit{
		SandboxId: id, Command: []string{"cat"},
	}}}
}

func stdin(s string) *sandboxpb.ExecStreamRequest {
	return &sandboxpb.ExecStreamRequest{Request: &sandboxpb.ExecStreamRequest_Stdin{Stdin: []byte(s)}}
}

var execClose = &sandboxpb.ExecStreamRequest{Request: &sandboxpb.ExecStreamRequest_Close{Close: &sandboxpb.ExecStreamClose{}}}

func ready() *sandboxpb.ExecStreamResponse {
	return &sandboxpb.ExecStreamResponse{Response: &sandboxpb.ExecStreamResponse_Ready{Ready: &sandboxpb.ExecStreamReady{}}}
}

func out(s string) *sandboxpb.ExecStreamResponse {
	return &sandboxpb.ExecStreamResponse{Response: &sandboxpb.ExecStreamResponse_Output{Output: &sandboxpb.ExecStreamOutput{
		Stream: sandboxpb.ExecStreamOutput_STREAM_STDOUT, Data: []byte(s),
	}}}
}

func exit(code int32) *sandboxpb.ExecStreamResponse {
	return &sandboxpb.ExecStreamResponse{Response: &sandboxpb.ExecStreamResponse_Exit{Exit: &sandboxpb.ExecStreamExit{ExitCode: code}}}
}

// runExec sends reqs (ignoring send errors, which surface on Recv), closes
// the send side, and reads the stream to its end.
func runExec(t *testing.T, c clients, reqs ...*sandboxpb.ExecStreamRequest) ([]*sandboxpb.ExecStreamResponse, error) {
	t.Helper()
	s, err := c.sandbox.StreamExec(callCtx(t))
	if err != nil {
		return nil, err
	}
	for _, r := range reqs {
		if s.Send(r) != nil {
			break
		}
	}
	_ = s.CloseSend()
	var got []*sandboxpb.ExecStreamResponse
	for {
		r, err := s.Recv()
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		got = append(got, r)
	}
}

func TestStreamExec(t *testing.T) {
	inBand := &sandboxpb.ExecStreamError{Message: "interrupted", Code: "STREAM_INTERRUPTED"}
	errFrame := &sandboxpb.ExecStreamResponse{Response: &sandboxpb.ExecStreamResponse_Error{Error: inBand}}
	tests := []struct {
		name     string
		steps    []sandboxtest.Step
		script   *sandboxtest.StreamExecScript
		reqs     []*sandboxpb.ExecStreamRequest
		want     []*sandboxpb.ExecStreamResponse
		wantCode codes.Code
	}{
		{name: "echo", reqs: []*sandboxpb.ExecStreamRequest{execInit("sb-1"), stdin("a"), stdin("b"), execClose},
			want: []*sandboxpb.ExecStreamResponse{ready(), out("a"), out("b"), exit(0)}},
		{name: "half-close exits", script: &sandboxtest.StreamExecScript{ExitCode: 3},
			reqs: []*sandboxpb.ExecStreamRequest{execInit("sb-1"), stdin("a")},
			want: []*sandboxpb.ExecStreamResponse{ready(), out("a"), exit(3)}},
		{name: "fail before ready", steps: []sandboxtest.Step{sandboxtest.Fail(faultlinetest.Status(codes.Unavailable, "no runner"))},
			reqs: []*sandboxpb.ExecStreamRequest{execInit("sb-1")}, wantCode: codes.Unavailable},
		{name: "in-band error after one chunk", script: &sandboxtest.StreamExecScript{Chunks: 1, InBandError: inBand},
			reqs: []*sandboxpb.ExecStreamRequest{execInit("sb-1"), stdin("a"), stdin("b"), execClose},
			want: []*sandboxpb.ExecStreamResponse{ready(), out("a"), errFrame}},
		{name: "status after ready", script: &sandboxtest.StreamExecScript{Err: faultlinetest.Status(codes.Unavailable, "reset")},
			reqs: []*sandboxpb.ExecStreamRequest{execInit("sb-1"), stdin("a")},
			want: []*sandboxpb.ExecStreamResponse{ready()}, wantCode: codes.Unavailable},
		{name: "unknown sandbox", reqs: []*sandboxpb.ExecStreamRequest{execInit("nope")}, wantCode: codes.NotFound},
		{name: "no init", reqs: []*sandboxpb.ExecStreamRequest{stdin("a")}, wantCode: codes.InvalidArgument},
		{name: "nothing sent", wantCode: codes.InvalidArgument},
		{name: "init twice", reqs: []*sandboxpb.ExecStreamRequest{execInit("sb-1"), execInit("sb-1")},
			want: []*sandboxpb.ExecStreamResponse{ready()}, wantCode: codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := start(t, sandboxtest.WithSandboxes("sb-1"))
			srv.Script(mExec, tt.steps...)
			if tt.script != nil {
				srv.ScriptStreamExec(*tt.script)
			}
			got, err := runExec(t, c, tt.reqs...)
			if code := status.Code(err); code != tt.wantCode {
				t.Errorf("StreamExec end code = %v (%v), want %v", code, err, tt.wantCode)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("StreamExec responses mismatch (-want +got):\n%s", diff)
			}
			if n := srv.Calls(mExec); n != 1 {
				t.Errorf("Calls(StreamExec) = %d, want 1", n)
			}
		})
	}
}

func TestStreamExecRecordsMessages(t *testing.T) {
	srv, c := start(t, sandboxtest.WithSandboxes("sb-1"))
	reqs := []*sandboxpb.ExecStreamRequest{execInit("sb-1"), stdin("a"), execClose}
	if _, err := runExec(t, c, reqs...); err != nil {
		t.Fatalf("StreamExec error = %v", err)
	}
	want := []proto.Message{reqs[0], reqs[1], reqs[2]}
	if diff := cmp.Diff(want, srv.Requests(mExec), protocmp.Transform()); diff != "" {
		t.Errorf("Requests(StreamExec) mismatch (-want +got):\n%s", diff)
	}
}

func TestConcurrentFailNext(t *testing.T) {
	const calls, failures = 40, 7
	srv, c := start(t, sandboxtest.WithSandboxes("sb-1"))
	srv.FailNext(mReadFile, failures, faultlinetest.Status(codes.Unavailable, "down"))
	var (
		mu     sync.Mutex
		failed int
		wg     sync.WaitGroup
	)
	for range calls {
		wg.Go(func() {
			_, err := c.sandbox.ReadFile(callCtx(t), &sandboxpb.ReadFileRequest{SandboxId: "sb-1", Path: "/x"})
			if status.Code(err) == codes.Unavailable {
				mu.Lock()
				failed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if failed != failures {
		t.Errorf("UNAVAILABLE calls = %d, want %d", failed, failures)
	}
	if got := srv.Calls(mReadFile); got != calls {
		t.Errorf("Calls(ReadFile) = %d, want %d", got, calls)
	}
}

func TestStartTCP(t *testing.T) {
	srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
	addr, stop, err := srv.StartTCP()
	if err != nil {
		t.Fatalf("StartTCP() error = %v", err)
	}
	defer stop()
	if host, _, err := net.SplitHostPort(addr); err != nil || host != "127.0.0.1" {
		t.Fatalf("StartTCP() addr = %q, want 127.0.0.1:port", addr)
	}
	conn, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("NewClient(%q) error = %v", addr, err)
	}
	defer conn.Close()
	c := clients{sandbox: sandboxpb.NewSandboxServiceClient(conn)}
	if err := getSandbox(callCtx(t), c, "sb-1"); err != nil {
		t.Errorf("GetSandbox over TCP = %v, want nil", err)
	}
}

// TestStopWithStreamInFlight checks that stop ends a stream that is still
// open and returns only when its handler did (goleak checks the rest).
func TestStopWithStreamInFlight(t *testing.T) {
	srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
	lis, stop := srv.StartBufconn()
	conn, err := sandboxtest.DialBufconn(lis)
	if err != nil {
		t.Fatalf("DialBufconn() error = %v", err)
	}
	defer conn.Close()
	s, err := sandboxpb.NewSandboxServiceClient(conn).StreamExec(callCtx(t))
	if err != nil {
		t.Fatalf("StreamExec() error = %v", err)
	}
	if err := s.Send(execInit("sb-1")); err != nil {
		t.Fatalf("Send(init) error = %v", err)
	}
	if r, err := s.Recv(); err != nil || r.GetReady() == nil {
		t.Fatalf("Recv() = %v, %v, want ready", r, err)
	}
	stop()
	stop() // idempotent
	if _, err := s.Recv(); err == nil {
		t.Errorf("Recv() after stop = nil error, want an error")
	}
}

var stReset = faultlinetest.Status(codes.Unavailable, "connection reset")

// sideEffects is what the server did, as its counters say.
type sideEffects struct{ sandboxes, runs, snapshots int }

func effects(srv *sandboxtest.Server) sideEffects {
	return sideEffects{srv.SandboxesCreated(), srv.ExecRuns(), srv.SnapshotsCreated()}
}

// unaryCase calls one unary method once; check, when set, verifies that the
// call's side effect happened.
type unaryCase struct {
	name    string
	method  string
	call    func(ctx context.Context, c clients) error
	effects sideEffects
	check   func(t *testing.T, ctx context.Context, c clients)
}

func unaryCases() []unaryCase {
	return []unaryCase{
		{name: "CreateSandbox", method: mCreate,
			call: func(ctx context.Context, c clients) error {
				_, err := c.sandbox.CreateSandbox(ctx, &sandboxpb.CreateSandboxRequest{Sandbox: &sandboxpb.Sandbox{SandboxId: "sb-new"}})
				return err
			},
			effects: sideEffects{sandboxes: 1},
			check: func(t *testing.T, ctx context.Context, c clients) {
				if err := getSandbox(ctx, c, "sb-new"); err != nil {
					t.Errorf("GetSandbox(sb-new) = %v, want nil: the create happened", err)
				}
			}},
		{name: "GetSandbox", method: mGet,
			call: func(ctx context.Context, c clients) error { return getSandbox(ctx, c, "sb-1") }},
		{name: "GetSandbox unknown (the handler's NOT_FOUND is replaced)", method: mGet,
			call: func(ctx context.Context, c clients) error { return getSandbox(ctx, c, "nope") }},
		{name: "DeleteSandbox", method: mDelete,
			call: func(ctx context.Context, c clients) error {
				_, err := c.sandbox.DeleteSandbox(ctx, &sandboxpb.DeleteSandboxRequest{SandboxId: "sb-1", SnapshotVolumes: true})
				return err
			},
			effects: sideEffects{snapshots: 1},
			check: func(t *testing.T, ctx context.Context, c clients) {
				if code := status.Code(getSandbox(ctx, c, "sb-1")); code != codes.NotFound {
					t.Errorf("GetSandbox(sb-1) code = %v, want NotFound: the delete happened", code)
				}
			}},
		{name: "ReadFile", method: mReadFile,
			call: func(ctx context.Context, c clients) error {
				_, err := c.sandbox.ReadFile(ctx, &sandboxpb.ReadFileRequest{SandboxId: "sb-1", Path: "/f"})
				return err
			}},
		{name: "WriteFile", method: mWriteFile,
			call: func(ctx context.Context, c clients) error {
				_, err := c.sandbox.WriteFile(ctx, &sandboxpb.WriteFileRequest{SandboxId: "sb-1", Path: "/new", Content: []byte("x")})
				return err
			},
			check: func(t *testing.T, ctx context.Context, c clients) {
				got, err := c.sandbox.ReadFile(ctx, &sandboxpb.ReadFileRequest{SandboxId: "sb-1", Path: "/new"})
				if err != nil || string(got.GetContent()) != "x" {
					t.Errorf("ReadFile(sb-1, /new) = %q, %v, want %q, nil: the write happened", got.GetContent(), err, "x")
				}
			}},
		{name: "GetFileSystemSnapshot", method: mGetFSS,
			call: func(ctx context.Context, c clients) error {
				_, err := c.sandbox.GetFileSystemSnapshot(ctx, &sandboxpb.GetFileSystemSnapshotRequest{FileSystemSnapshotId: "fss-1"})
				return err
			}},
		{name: "Exec", method: mUnaryExec,
			call: func(ctx context.Context, c clients) error {
				_, err := c.sandbox.Exec(ctx, &sandboxpb.ExecRequest{SandboxId: "sb-1", Command: []string{"rm", "-rf", "/tmp/x"}})
				return err
			},
			effects: sideEffects{runs: 1}},
		{name: "CreateFileSystemSnapshot", method: mSnapshot,
			call: func(ctx context.Context, c clients) error {
				_, err := c.sandbox.CreateFileSystemSnapshot(ctx, &sandboxpb.CreateFileSystemSnapshotRequest{SandboxId: "sb-1"})
				return err
			},
			effects: sideEffects{snapshots: 1}},
		{name: "GetAvailableRunner", method: mGetRunner,
			call: func(ctx context.Context, c clients) error {
				_, err := c.discovery.GetAvailableRunner(ctx, &sandboxpb.GetAvailableRunnerRequest{RunnerId: "r-1"})
				return err
			}},
	}
}

// TestUnaryCasesCoverEveryMethod keeps unaryCases complete, so that
// TestFailAfter covers every unary method of both services.
func TestUnaryCasesCoverEveryMethod(t *testing.T) {
	covered := make(map[string]bool)
	for _, tc := range unaryCases() {
		covered[tc.method] = true
	}
	for _, sd := range []*grpc.ServiceDesc{&sandboxpb.SandboxService_ServiceDesc, &sandboxpb.DiscoveryService_ServiceDesc} {
		for _, md := range sd.Methods {
			if m := "/" + sd.ServiceName + "/" + md.MethodName; !covered[m] {
				t.Errorf("unaryCases() has no case for %s", m)
			}
		}
	}
}

func TestFailAfter(t *testing.T) {
	for _, tc := range unaryCases() {
		t.Run(tc.name, func(t *testing.T) {
			srv, c := start(t, sandboxtest.WithSandboxes("sb-1"), sandboxtest.WithSnapshots("fss-1"), sandboxtest.WithRunners("r-1"))
			ctx := callCtx(t)
			if _, err := c.sandbox.WriteFile(ctx, &sandboxpb.WriteFileRequest{SandboxId: "sb-1", Path: "/f"}); err != nil {
				t.Fatalf("WriteFile(sb-1, /f) = %v, want nil", err)
			}
			srv.Reset()
			srv.FailAfterNext(tc.method, 1, stReset)
			checkStatus(t, tc.name, tc.call(ctx, c), codes.Unavailable)
			if got := srv.Handled(tc.method); got != 1 {
				t.Errorf("Handled(%s) = %d, want 1", tc.name, got)
			}
			if got := srv.Calls(tc.method); got != 1 {
				t.Errorf("Calls(%s) = %d, want 1", tc.name, got)
			}
			if got := effects(srv); got != tc.effects {
				t.Errorf("side effects of %s = %+v, want %+v", tc.name, got, tc.effects)
			}
			if tc.check != nil {
				tc.check(t, ctx, c)
			}
		})
	}
}

// TestFailAfterCreateSandboxRetried is the case the safe-retries work is
// about: a create without request_id that ran, then failed UNAVAILABLE,
// creates a second sandbox when sent again; with a request_id it does not.
func TestFailAfterCreateSandboxRetried(t *testing.T) {
	tests := []struct {
		name      string
		requestID string
		want      int
	}{
		{"without request_id", "", 2},
		{"with request_id", "req-1", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := start(t)
			srv.FailAfterNext(mCreate, 1, stReset)
			req := &sandboxpb.CreateSandboxRequest{Sandbox: &sandboxpb.Sandbox{}, RequestId: tt.requestID}
			_, err := c.sandbox.CreateSandbox(callCtx(t), req)
			checkStatus(t, "CreateSandbox #1", err, codes.Unavailable)
			if got := srv.SandboxesCreated(); got != 1 {
				t.Errorf("SandboxesCreated() after the failed create = %d, want 1", got)
			}
			sb, err := c.sandbox.CreateSandbox(callCtx(t), req)
			if err != nil {
				t.Fatalf("CreateSandbox #2 = %v, want nil", err)
			}
			if got := srv.SandboxesCreated(); got != tt.want {
				t.Errorf("SandboxesCreated() after the retry = %d, want %d", got, tt.want)
			}
			if tt.requestID != "" && sb.GetSandboxId() != "sb-1" {
				t.Errorf("CreateSandbox #2 id = %q, want the first create's %q", sb.GetSandboxId(), "sb-1")
			}
			if got := srv.Calls(mCreate); got != 2 {
				t.Errorf("Calls(CreateSandbox) = %d, want 2", got)
			}
		})
	}
}

// TestScriptMixesSteps checks that Fail, FailAfter and Succeed share one
// queue, taken in order.
func TestScriptMixesSteps(t *testing.T) {
	srv, c := start(t)
	srv.FailNext(mCreate, 1, faultlinetest.Status(codes.ResourceExhausted, "slow down", faultlinetest.RetryInfo(time.Second)))
	srv.Script(mCreate, sandboxtest.FailAfter(stReset), sandboxtest.Succeed())
	want := []struct {
		code      codes.Code
		sandboxes int
	}{{codes.ResourceExhausted, 0}, {codes.Unavailable, 1}, {codes.OK, 2}, {codes.OK, 3}}
	for i, w := range want {
		_, err := c.sandbox.CreateSandbox(callCtx(t), &sandboxpb.CreateSandboxRequest{})
		if got := status.Code(err); got != w.code {
			t.Errorf("CreateSandbox #%d code = %v, want %v", i+1, got, w.code)
		}
		if got := srv.SandboxesCreated(); got != w.sandboxes {
			t.Errorf("SandboxesCreated() after create #%d = %d, want %d", i+1, got, w.sandboxes)
		}
	}
	if got := srv.Handled(mCreate); got != 3 {
		t.Errorf("Handled(CreateSandbox) = %d, want 3", got)
	}
}

func TestFailAfterStreamLogs(t *testing.T) {
	srv, c := start(t, sandboxtest.WithSandboxes("sb-1"))
	srv.FailAfterNext(mLogs, 1, stReset)
	got, err := recvLogs(t, c, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
	checkStatus(t, "StreamLogs", err, codes.Unavailable)
	if diff := cmp.Diff([]*sandboxpb.LogEntry{entry(0), entry(1), entry(2)}, got, protocmp.Transform()); diff != "" {
		t.Errorf("StreamLogs entries mismatch (-want +got):\n%s", diff)
	}
	if n := srv.Handled(mLogs); n != 1 {
		t.Errorf("Handled(StreamLogs) = %d, want 1", n)
	}
}

func TestExec(t *testing.T) {
	tests := []struct {
		name     string
		req      *sandboxpb.ExecRequest
		want     *sandboxpb.ExecResponse
		wantCode codes.Code
		wantRuns int
	}{
		{name: "runs", req: &sandboxpb.ExecRequest{SandboxId: "sb-1", Command: []string{"echo", "hello", "world"},
			Env: map[string]string{"A": "b"}, Container: "main"},
			want: &sandboxpb.ExecResponse{Stdout: []byte("echo hello world")}, wantRuns: 1},
		{name: "output cut to max_output_bytes", req: &sandboxpb.ExecRequest{SandboxId: "sb-1", Command: []string{"echo", "hello"}, MaxOutputBytes: 4},
			want: &sandboxpb.ExecResponse{Stdout: []byte("echo")}, wantRuns: 1},
		{name: "max_output_bytes above the output", req: &sandboxpb.ExecRequest{SandboxId: "sb-1", Command: []string{"true"}, MaxOutputBytes: 100},
			want: &sandboxpb.ExecResponse{Stdout: []byte("true")}, wantRuns: 1},
		{name: "unknown sandbox", req: &sandboxpb.ExecRequest{SandboxId: "nope", Command: []string{"true"}}, wantCode: codes.NotFound},
		{name: "no command", req: &sandboxpb.ExecRequest{SandboxId: "sb-1"}, wantCode: codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, c := start(t, sandboxtest.WithSandboxes("sb-1"))
			got, err := c.sandbox.Exec(callCtx(t), tt.req)
			if code := status.Code(err); code != tt.wantCode {
				t.Errorf("Exec(%v) code = %v (%v), want %v", tt.req, code, err, tt.wantCode)
			}
			if diff := cmp.Diff(tt.want, got, protocmp.Transform()); diff != "" {
				t.Errorf("Exec(%v) mismatch (-want +got):\n%s", tt.req, diff)
			}
			if n := srv.ExecRuns(); n != tt.wantRuns {
				t.Errorf("ExecRuns() = %d, want %d", n, tt.wantRuns)
			}
		})
	}
}

// TestExecRunsEveryCall checks that Exec is not deduplicated and that a
// call failed before its handler runs nothing.
func TestExecRunsEveryCall(t *testing.T) {
	srv, c := start(t, sandboxtest.WithSandboxes("sb-1"))
	srv.FailNext(mUnaryExec, 1, stReset)
	req := &sandboxpb.ExecRequest{SandboxId: "sb-1", Command: []string{"date"}}
	want := []struct {
		code codes.Code
		runs int
	}{{codes.Unavailable, 0}, {codes.OK, 1}, {codes.OK, 2}}
	for i, w := range want {
		_, err := c.sandbox.Exec(callCtx(t), req)
		if got := status.Code(err); got != w.code {
			t.Errorf("Exec #%d code = %v, want %v", i+1, got, w.code)
		}
		if got := srv.ExecRuns(); got != w.runs {
			t.Errorf("ExecRuns() after Exec #%d = %d, want %d", i+1, got, w.runs)
		}
	}
}

func TestCreateFileSystemSnapshotDedup(t *testing.T) {
	srv, c := start(t, sandboxtest.WithSandboxes("sb-1"), sandboxtest.WithSnapshots("fss-1"))
	ctx := callCtx(t)
	snap := func(sandboxID, reqID string) (*sandboxpb.FileSystemSnapshot, error) {
		return c.sandbox.CreateFileSystemSnapshot(ctx, &sandboxpb.CreateFileSystemSnapshotRequest{
			SandboxId: sandboxID, RequestId: reqID, ScratchVolumeName: "scratch"})
	}
	mustSnap := func(reqID string) *sandboxpb.FileSystemSnapshot {
		t.Helper()
		s, err := snap("sb-1", reqID)
		if err != nil {
			t.Fatalf("CreateFileSystemSnapshot(sb-1, %q) error = %v", reqID, err)
		}
		return s
	}
	a1, a2, b := mustSnap("req-a"), mustSnap("req-a"), mustSnap("req-b")
	want := &sandboxpb.FileSystemSnapshot{FileSystemSnapshotId: "fss-2", State: sandboxpb.SnapshotState_SNAPSHOT_STATE_CREATING}
	if diff := cmp.Diff(want, a1, protocmp.Transform()); diff != "" {
		t.Errorf("CreateFileSystemSnapshot(req-a) mismatch (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(a1, a2, protocmp.Transform()); diff != "" {
		t.Errorf("CreateFileSystemSnapshot(req-a) twice differs (-first +second):\n%s", diff)
	}
	if b.GetFileSystemSnapshotId() == a1.GetFileSystemSnapshotId() {
		t.Errorf("CreateFileSystemSnapshot(req-b) id = %q, want a new id", b.GetFileSystemSnapshotId())
	}
	e1, e2 := mustSnap(""), mustSnap("")
	if e1.GetFileSystemSnapshotId() == e2.GetFileSystemSnapshotId() {
		t.Errorf("CreateFileSystemSnapshot without request_id twice gave id %q twice", e1.GetFileSystemSnapshotId())
	}
	if got := srv.SnapshotsCreated(); got != 4 {
		t.Errorf("SnapshotsCreated() = %d, want 4", got)
	}

	got, err := c.sandbox.GetFileSystemSnapshot(ctx, &sandboxpb.GetFileSystemSnapshotRequest{FileSystemSnapshotId: a1.GetFileSystemSnapshotId()})
	if err != nil || got.GetState() != sandboxpb.SnapshotState_SNAPSHOT_STATE_READY {
		t.Errorf("GetFileSystemSnapshot(%s) = %v, %v, want READY, nil", a1.GetFileSystemSnapshotId(), got, err)
	}

	// A failed call is not remembered: its request_id may be used again.
	_, err = snap("nope", "req-c")
	checkStatus(t, "CreateFileSystemSnapshot(nope)", err, codes.NotFound,
		faultlinetest.ErrorInfo(sandboxtest.Domain, sandboxtest.ReasonSandboxNotFound, map[string]string{"sandbox_id": "nope"}))
	if c := mustSnap("req-c"); c.GetFileSystemSnapshotId() == "" {
		t.Errorf("CreateFileSystemSnapshot(sb-1, req-c) after a failed req-c = %v, want a new snapshot", c)
	}
	if got := srv.SnapshotsCreated(); got != 5 {
		t.Errorf("SnapshotsCreated() = %d, want 5", got)
	}
}

func TestDeleteSandboxDedup(t *testing.T) {
	srv, c := start(t, sandboxtest.WithSandboxes("sb-1", "sb-2"))
	ctx := callCtx(t)
	del := func(id, reqID string) (*sandboxpb.DeleteSandboxResponse, error) {
		return c.sandbox.DeleteSandbox(ctx, &sandboxpb.DeleteSandboxRequest{SandboxId: id, SnapshotVolumes: true, RequestId: reqID})
	}
	want := &sandboxpb.DeleteSandboxResponse{
		Sandbox: &sandboxpb.Sandbox{
			SandboxId: "sb-1",
			Status:    &sandboxpb.SandboxStatus{State: sandboxpb.SandboxStatus_STATE_TERMINATED},
		},
		FileSystemSnapshotIds: []string{"fss-sb-1"},
	}

	// With a request_id, a delete that ran but failed returns its first
	// response when sent again.
	srv.FailAfterNext(mDelete, 1, stReset)
	_, err := del("sb-1", "del-1")
	checkStatus(t, "DeleteSandbox(sb-1, del-1) #1", err, codes.Unavailable)
	got, err := del("sb-1", "del-1")
	if err != nil {
		t.Fatalf("DeleteSandbox(sb-1, del-1) #2 error = %v", err)
	}
	if diff := cmp.Diff(want, got, protocmp.Transform()); diff != "" {
		t.Errorf("DeleteSandbox(sb-1, del-1) #2 mismatch (-want +got):\n%s", diff)
	}
	if n := srv.SnapshotsCreated(); n != 1 {
		t.Errorf("SnapshotsCreated() = %d, want 1", n)
	}

	// Without one, the second delete finds no sandbox.
	srv.FailAfterNext(mDelete, 1, stReset)
	_, err = del("sb-2", "")
	checkStatus(t, "DeleteSandbox(sb-2) #1", err, codes.Unavailable)
	_, err = del("sb-2", "")
	checkStatus(t, "DeleteSandbox(sb-2) #2", err, codes.NotFound,
		faultlinetest.ErrorInfo(sandboxtest.Domain, sandboxtest.ReasonSandboxNotFound, map[string]string{"sandbox_id": "sb-2"}))
	if n := srv.SnapshotsCreated(); n != 2 {
		t.Errorf("SnapshotsCreated() = %d, want 2", n)
	}

	// A failed delete is not remembered.
	_, err = del("sb-3", "del-3")
	checkStatus(t, "DeleteSandbox(sb-3, del-3) before sb-3 exists", err, codes.NotFound,
		faultlinetest.ErrorInfo(sandboxtest.Domain, sandboxtest.ReasonSandboxNotFound, map[string]string{"sandbox_id": "sb-3"}))
	if _, err := c.sandbox.CreateSandbox(ctx, &sandboxpb.CreateSandboxRequest{Sandbox: &sandboxpb.Sandbox{SandboxId: "sb-3"}}); err != nil {
		t.Fatalf("CreateSandbox(sb-3) error = %v", err)
	}
	if got, err := del("sb-3", "del-3"); err != nil || got.GetSandbox().GetSandboxId() != "sb-3" {
		t.Errorf("DeleteSandbox(sb-3, del-3) = %v, %v, want sb-3 deleted", got, err)
	}
}

func TestResetClearsCounters(t *testing.T) {
	srv, c := start(t, sandboxtest.WithSandboxes("sb-1"))
	ctx := callCtx(t)
	if _, err := c.sandbox.CreateSandbox(ctx, &sandboxpb.CreateSandboxRequest{}); err != nil {
		t.Fatalf("CreateSandbox error = %v", err)
	}
	if _, err := c.sandbox.Exec(ctx, &sandboxpb.ExecRequest{SandboxId: "sb-1", Command: []string{"true"}}); err != nil {
		t.Fatalf("Exec error = %v", err)
	}
	if _, err := c.sandbox.CreateFileSystemSnapshot(ctx, &sandboxpb.CreateFileSystemSnapshotRequest{SandboxId: "sb-1"}); err != nil {
		t.Fatalf("CreateFileSystemSnapshot error = %v", err)
	}
	if got, want := effects(srv), (sideEffects{1, 1, 1}); got != want {
		t.Fatalf("side effects = %+v, want %+v", got, want)
	}
	srv.Reset()
	if got := effects(srv); got != (sideEffects{}) {
		t.Errorf("side effects after Reset = %+v, want none", got)
	}
	if got := srv.Handled(mCreate) + srv.Handled(mUnaryExec) + srv.Handled(mSnapshot); got != 0 {
		t.Errorf("Handled after Reset = %d, want 0", got)
	}
}

// TestGrowingLog: a follow stream of a growing log sends what is appended as it is
// appended and ends once the log has ended; a stream without follow sends what the log
// holds; a resumed one starts at its offset.
func TestGrowingLog(t *testing.T) {
	srv, c := start(t, sandboxtest.WithSandboxes("sb-1"), sandboxtest.WithGrowingLog())
	srv.AppendLog(2)
	got, err := recvLogs(t, c, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
	if err != nil || len(got) != 2 {
		t.Fatalf("StreamLogs without follow = %d entries, %v; want the 2 appended", len(got), err)
	}

	st, err := c.sandbox.StreamLogs(callCtx(t), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1", Follow: true, ResumeLogOffset: 1})
	if err != nil {
		t.Fatal(err)
	}
	recv := func(n int) []*sandboxpb.LogEntry {
		t.Helper()
		var out []*sandboxpb.LogEntry
		for range n {
			e, err := st.Recv()
			if err != nil {
				t.Fatalf("Recv = %v after %d entries, want %d", err, len(out), n)
			}
			out = append(out, e)
		}
		return out
	}
	got = recv(1) // line 1: the log holds 2 lines, the stream resumed at 1
	srv.AppendLog(3)
	got = append(got, recv(3)...)
	srv.EndLog()
	if _, err := st.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("Recv after EndLog = %v, want io.EOF", err)
	}
	if diff := cmp.Diff([]*sandboxpb.LogEntry{entry(1), entry(2), entry(3), entry(4)}, got, protocmp.Transform()); diff != "" {
		t.Errorf("followed entries mismatch (-want +got):\n%s", diff)
	}
}
