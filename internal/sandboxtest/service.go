package sandboxtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
)

// Domain is the ErrorInfo domain of the sandbox service.
const Domain = "cwsandbox.com"

// ErrorInfo reasons the Server itself returns.
const (
	ReasonSandboxNotFound = "CWSANDBOX_SANDBOX_NOT_FOUND" // metadata: sandbox_id
	ReasonFileNotFound    = "CWSANDBOX_FILE_NOT_FOUND"    // metadata: filepath
	ReasonFSSNotFound     = "CWSANDBOX_FSS_NOT_FOUND"     // metadata: file_system_snapshot_id
	ReasonRunnerNotFound  = "CWSANDBOX_RUNNER_NOT_FOUND"  // metadata: runner_id
)

type sandboxService struct {
	sandboxpb.UnimplementedSandboxServiceServer
	s *Server
}

type discoveryService struct {
	sandboxpb.UnimplementedDiscoveryServiceServer
	s *Server
}

func newSandbox(id string, spec *sandboxpb.SandboxSpec) *sandbox {
	return &sandbox{
		pb: &sandboxpb.Sandbox{
			SandboxId: id,
			Spec:      spec,
			Status:    &sandboxpb.SandboxStatus{State: sandboxpb.SandboxStatus_STATE_RUNNING},
		},
		files: make(map[string][]byte),
	}
}

func sandboxNotFound(id string) error {
	return faultlinetest.Error(codes.NotFound, fmt.Sprintf("sandbox %q not found", id),
		faultlinetest.ErrorInfo(Domain, ReasonSandboxNotFound, map[string]string{"sandbox_id": id}))
}

func invalid(field, description string) error {
	return faultlinetest.Error(codes.InvalidArgument, field+": "+description, faultlinetest.BadRequest(faultlinetest.FieldViolation(field, description)))
}

// lookup returns the sandbox with the given id; s.mu must be held.
func (s *Server) lookup(id string) (*sandbox, error) {
	sb, ok := s.sandboxes[id]
	if !ok {
		return nil, sandboxNotFound(id)
	}
	return sb, nil
}

// CreateSandbox creates a sandbox (returned in state CREATING; GetSandbox
// then reports RUNNING). A non-empty request_id seen before returns the
// first result again.
func (h *sandboxService) CreateSandbox(_ context.Context, req *sandboxpb.CreateSandboxRequest) (*sandboxpb.Sandbox, error) {
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if first, ok := s.byReqID[req.GetRequestId()]; ok && req.GetRequestId() != "" {
		return proto.CloneOf(first), nil
	}
	id := req.GetSandbox().GetSandboxId()
	if id == "" {
		for id == "" || s.sandboxes[id] != nil {
			s.nextID++
			id = fmt.Sprintf("sb-%d", s.nextID)
		}
	} else if s.sandboxes[id] != nil {
		return nil, faultlinetest.Error(codes.AlreadyExists, fmt.Sprintf("sandbox %q already exists", id))
	}
	var spec *sandboxpb.SandboxSpec
	if sp := req.GetSandbox().GetSpec(); sp != nil {
		spec = proto.CloneOf(sp)
	}
	sb := newSandbox(id, spec)
	s.sandboxes[id] = sb
	s.created++
	res := proto.CloneOf(sb.pb)
	res.Status.State = sandboxpb.SandboxStatus_STATE_CREATING
	if req.GetRequestId() != "" {
		s.byReqID[req.GetRequestId()] = proto.CloneOf(res)
	}
	return res, nil
}

// GetSandbox returns a known sandbox in state RUNNING, or NOT_FOUND.
func (h *sandboxService) GetSandbox(_ context.Context, req *sandboxpb.GetSandboxRequest) (*sandboxpb.Sandbox, error) {
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, err := s.lookup(req.GetSandboxId())
	if err != nil {
		return nil, err
	}
	return proto.CloneOf(sb.pb), nil
}

// DeleteSandbox deletes a known sandbox and its files, returning it in state
// TERMINATED and, with snapshot_volumes, the id of a new READY snapshot
// ("fss-" plus the sandbox id). An unknown sandbox is NOT_FOUND, or an empty
// response with allow_missing. A non-empty request_id seen before in a
// successful DeleteSandbox returns that first response again (the sandbox is
// not looked up, no snapshot is made).
func (h *sandboxService) DeleteSandbox(_ context.Context, req *sandboxpb.DeleteSandboxRequest) (*sandboxpb.DeleteSandboxResponse, error) {
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	rid := req.GetRequestId()
	if first, ok := s.delByReqID[rid]; ok && rid != "" {
		return proto.CloneOf(first), nil
	}
	res := &sandboxpb.DeleteSandboxResponse{}
	sb, err := s.lookup(req.GetSandboxId())
	switch {
	case err != nil && !req.GetAllowMissing():
		return nil, err
	case err == nil:
		delete(s.sandboxes, req.GetSandboxId())
		res.Sandbox = proto.CloneOf(sb.pb)
		res.Sandbox.Status.State = sandboxpb.SandboxStatus_STATE_TERMINATED
		if req.GetSnapshotVolumes() {
			id := "fss-" + req.GetSandboxId()
			s.snapshots[id] = true
			s.snapsMade++
			res.FileSystemSnapshotIds = []string{id}
		}
	}
	if rid != "" {
		s.delByReqID[rid] = proto.CloneOf(res)
	}
	return res, nil
}

// ReadFile returns a file written by WriteFile.
func (h *sandboxService) ReadFile(_ context.Context, req *sandboxpb.ReadFileRequest) (*sandboxpb.ReadFileResponse, error) {
	if req.GetPath() == "" {
		return nil, invalid("path", "must not be empty")
	}
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, err := s.lookup(req.GetSandboxId())
	if err != nil {
		return nil, err
	}
	content, ok := sb.files[req.GetPath()]
	if !ok {
		return nil, faultlinetest.Error(codes.NotFound, fmt.Sprintf("file %q not found", req.GetPath()),
			faultlinetest.ErrorInfo(Domain, ReasonFileNotFound, map[string]string{"filepath": req.GetPath()}))
	}
	return &sandboxpb.ReadFileResponse{Content: append([]byte(nil), content...)}, nil
}

// WriteFile stores a file in the sandbox's in-memory file map.
func (h *sandboxService) WriteFile(_ context.Context, req *sandboxpb.WriteFileRequest) (*sandboxpb.WriteFileResponse, error) {
	if req.GetPath() == "" {
		return nil, invalid("path", "must not be empty")
	}
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	sb, err := s.lookup(req.GetSandboxId())
	if err != nil {
		return nil, err
	}
	sb.files[req.GetPath()] = append([]byte(nil), req.GetContent()...)
	return &sandboxpb.WriteFileResponse{}, nil
}

// GetFileSystemSnapshot returns a known snapshot in state READY.
func (h *sandboxService) GetFileSystemSnapshot(_ context.Context, req *sandboxpb.GetFileSystemSnapshotRequest) (*sandboxpb.FileSystemSnapshot, error) {
	s := h.s
	id := req.GetFileSystemSnapshotId()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.snapshots[id] {
		return nil, faultlinetest.Error(codes.NotFound, fmt.Sprintf("file system snapshot %q not found", id),
			faultlinetest.ErrorInfo(Domain, ReasonFSSNotFound, map[string]string{"file_system_snapshot_id": id}))
	}
	return &sandboxpb.FileSystemSnapshot{
		FileSystemSnapshotId: id,
		State:                sandboxpb.SnapshotState_SNAPSHOT_STATE_READY,
	}, nil
}

// CreateFileSystemSnapshot snapshots a known sandbox: it returns a new
// snapshot ("fss-N", N counting up) in state CREATING, which
// GetFileSystemSnapshot then reports READY. An unknown sandbox is NOT_FOUND.
// A non-empty request_id seen before in a successful
// CreateFileSystemSnapshot returns that first result again.
func (h *sandboxService) CreateFileSystemSnapshot(_ context.Context, req *sandboxpb.CreateFileSystemSnapshotRequest) (*sandboxpb.FileSystemSnapshot, error) {
	s := h.s
	s.mu.Lock()
	defer s.mu.Unlock()
	rid := req.GetRequestId()
	if first, ok := s.snapByReq[rid]; ok && rid != "" {
		return proto.CloneOf(first), nil
	}
	if _, err := s.lookup(req.GetSandboxId()); err != nil {
		return nil, err
	}
	var id string
	for id == "" || s.snapshots[id] {
		s.nextSnap++
		id = fmt.Sprintf("fss-%d", s.nextSnap)
	}
	s.snapshots[id] = true
	s.snapsMade++
	res := &sandboxpb.FileSystemSnapshot{
		FileSystemSnapshotId: id,
		State:                sandboxpb.SnapshotState_SNAPSHOT_STATE_CREATING,
	}
	if rid != "" {
		s.snapByReq[rid] = proto.CloneOf(res)
	}
	return res, nil
}

// Exec "runs" the command in a known sandbox: it counts the run
// ([Server.ExecRuns]) and returns the command's words joined by single
// spaces as stdout (cut to max_output_bytes when that is positive), no
// stderr and exit code 0. env and container are recorded
// ([Server.Requests]) and otherwise ignored. An unknown sandbox is
// NOT_FOUND and an empty command INVALID_ARGUMENT; neither runs anything.
func (h *sandboxService) Exec(_ context.Context, req *sandboxpb.ExecRequest) (*sandboxpb.ExecResponse, error) {
	if len(req.GetCommand()) == 0 {
		return nil, invalid("command", "must not be empty")
	}
	s := h.s
	s.mu.Lock()
	_, err := s.lookup(req.GetSandboxId())
	if err == nil {
		s.execRuns++
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := []byte(strings.Join(req.GetCommand(), " "))
	if n := req.GetMaxOutputBytes(); n > 0 && int64(len(out)) > n {
		out = out[:n]
	}
	return &sandboxpb.ExecResponse{Stdout: out}, nil
}

// logEpoch is the timestamp of log offset 0; offset N is N seconds later.
var logEpoch = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

// StreamLogs plays the next StreamLogsScript (see its doc).
func (h *sandboxService) StreamLogs(req *sandboxpb.StreamLogsRequest, stream sandboxpb.SandboxService_StreamLogsServer) error {
	s := h.s
	s.mu.Lock()
	_, err := s.lookup(req.GetSandboxId())
	sc := StreamLogsScript{Entries: DefaultLogEntries}
	off := req.GetResumeLogOffset()
	every := time.Duration(0)
	if s.logLines > 0 {
		sc.Entries = int(s.logLines - min(off, s.logLines))
		every = s.logEvery
	}
	scripted := err == nil && len(s.logScripts) > 0
	if scripted {
		sc, s.logScripts = s.logScripts[0], s.logScripts[1:]
	}
	growing := s.growing
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if growing && !scripted {
		return s.tailGrowingLog(req, stream)
	}

	session := "logs-" + req.GetSandboxId()
	for range sc.Entries {
		if every > 0 {
			select {
			case <-stream.Context().Done():
				return stream.Context().Err()
			case <-time.After(every):
			}
		}
		e := &sandboxpb.LogEntry{
			Data:          fmt.Appendf(nil, "line %d\n", off),
			LogSessionId:  session,
			NextLogOffset: off + 1,
		}
		if req.GetTimestamps() {
			e.Timestamp = timestamppb.New(logEpoch.Add(time.Duration(off) * time.Second))
		}
		if err := stream.Send(e); err != nil {
			return err
		}
		off++
	}
	if sc.InBandError != nil {
		e := &sandboxpb.LogEntry{LogSessionId: session, NextLogOffset: off, Error: proto.CloneOf(sc.InBandError)}
		if err := stream.Send(e); err != nil {
			return err
		}
	}
	return sc.Err.Err() // nil for a nil status
}

// StreamExec plays the next StreamExecScript (see its doc).
func (h *sandboxService) StreamExec(stream sandboxpb.SandboxService_StreamExecServer) error {
	first, err := stream.Recv()
	if errors.Is(err, io.EOF) {
		return invalid("init", "the first message must be init")
	}
	if err != nil {
		return err
	}
	init := first.GetInit()
	if init == nil {
		return invalid("init", "the first message must be init")
	}

	s := h.s
	s.mu.Lock()
	_, err = s.lookup(init.GetSandboxId())
	var sc StreamExecScript
	if err == nil && len(s.execScript) > 0 {
		sc, s.execScript = s.execScript[0], s.execScript[1:]
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}

	send := func(r *sandboxpb.ExecStreamResponse) error { return stream.Send(r) }
	if err := send(ready()); err != nil {
		return err
	}
	early := sc.InBandError != nil || sc.Err != nil
	finish := func() error {
		if sc.InBandError != nil {
			if err := send(&sandboxpb.ExecStreamResponse{Response: &sandboxpb.ExecStreamResponse_Error{
				Error: proto.CloneOf(sc.InBandError)}}); err != nil {
				return err
			}
		}
		return sc.Err.Err()
	}
	exit := func() error {
		return send(&sandboxpb.ExecStreamResponse{Response: &sandboxpb.ExecStreamResponse_Exit{
			Exit: &sandboxpb.ExecStreamExit{ExitCode: sc.ExitCode}}})
	}
	if early && sc.Chunks <= 0 {
		return finish()
	}
	for echoed := 0; ; {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return exit()
		}
		if err != nil {
			return err
		}
		switch r := req.GetRequest().(type) {
		case *sandboxpb.ExecStreamRequest_Stdin:
			if err := send(stdout(r.Stdin)); err != nil {
				return err
			}
			if echoed++; early && echoed >= sc.Chunks {
				return finish()
			}
		case *sandboxpb.ExecStreamRequest_Close:
			return exit()
		case *sandboxpb.ExecStreamRequest_Resize:
			// Nothing to resize.
		default:
			return invalid("request", "init must be sent once, first; other messages need one of stdin, resize or close")
		}
	}
}

func ready() *sandboxpb.ExecStreamResponse {
	return &sandboxpb.ExecStreamResponse{Response: &sandboxpb.ExecStreamResponse_Ready{Ready: &sandboxpb.ExecStreamReady{}}}
}

func stdout(data []byte) *sandboxpb.ExecStreamResponse {
	return &sandboxpb.ExecStreamResponse{Response: &sandboxpb.ExecStreamResponse_Output{Output: &sandboxpb.ExecStreamOutput{
		Stream: sandboxpb.ExecStreamOutput_STREAM_STDOUT,
		Data:   data,
	}}}
}

// GetAvailableRunner returns a known runner, or NOT_FOUND.
func (h *discoveryService) GetAvailableRunner(_ context.Context, req *sandboxpb.GetAvailableRunnerRequest) (*sandboxpb.AvailableRunner, error) {
	s := h.s
	id := req.GetRunnerId()
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.runners[id] {
		return nil, faultlinetest.Error(codes.NotFound, fmt.Sprintf("runner %q not found", id),
			faultlinetest.ErrorInfo(Domain, ReasonRunnerNotFound, map[string]string{"runner_id": id}))
	}
	return &sandboxpb.AvailableRunner{RunnerId: id}, nil
}
