package sandboxtest

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/internal/sandboxpb"
)

// A Step is what one call of a scripted method does: fail with a status
// before its handler runs ([Fail]), stall ([Stall]), succeed (go on to the
// handler: [Succeed]), or run the handler and then fail ([FailAfter]). The
// zero Step succeeds.
type Step struct {
	st    *status.Status
	stall bool
	after bool // st replaces the handler's result
}

// Fail returns a Step that fails the call with st (build it with faultlinetest.Status).
// Fail panics if st is nil or has code OK.
func Fail(st *status.Status) Step {
	if st == nil || st.Code() == codes.OK {
		panic("sandboxtest.Fail: status must be a non-OK status")
	}
	return Step{st: st}
}

// FailAfter returns a Step that lets the call through to its handler, so
// that its side effect happens (a sandbox or snapshot is created, a command
// runs, a file is written), then fails the call with st instead of
// returning the handler's response or error: the client cannot tell that
// the work was done. For a streaming method the handler runs to its end
// (every message it sends is sent), then the stream ends with st.
// FailAfter panics if st is nil or has code OK.
func FailAfter(st *status.Status) Step {
	if st == nil || st.Code() == codes.OK {
		panic("sandboxtest.FailAfter: status must be a non-OK status")
	}
	return Step{st: st, after: true}
}

// Succeed returns a Step that lets the call through to its handler.
func Succeed() Step { return Step{} }

// Stall returns a Step that blocks the call until its context ends (deadline
// or cancellation), then fails it with the matching status
// (DEADLINE_EXCEEDED or CANCELED).
func Stall() Step { return Step{stall: true} }

// Script queues steps for the full method (for example
// [sandboxpb.SandboxService_GetSandbox_FullMethodName]): each call that
// passes auth takes the next queued step. Once the queue is empty, calls fail
// with the status set by [Server.FailAlways], if any, or else succeed.
// Calls to Script add to the queue. For streaming methods a step applies
// when the stream starts, before any message is received or sent (a
// [FailAfter] step, when the handler returns).
//
// A step is taken only by a call that reaches the server: a call whose
// deadline passes before it was sent leaves the step queued for the next
// call. Tests that cancel a stalled call should wait for it with
// [Server.WaitCalls] first.
//
// Script panics if method is not a method of SandboxService or
// DiscoveryService.
func (s *Server) Script(method string, steps ...Step) {
	mustKnow(method)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.steps[method] = append(s.steps[method], steps...)
}

// FailNext makes the next n calls of the full method fail with st; calls
// after them succeed. It is Script(method, Fail(st), ... n times).
func (s *Server) FailNext(method string, n int, st *status.Status) {
	step := Fail(st)
	steps := make([]Step, max(n, 0))
	for i := range steps {
		steps[i] = step
	}
	s.Script(method, steps...)
}

// FailAfterNext makes the next n calls of the full method run their handler
// and then fail with st (see [FailAfter]); calls after them succeed. It is
// Script(method, FailAfter(st), ... n times).
func (s *Server) FailAfterNext(method string, n int, st *status.Status) {
	step := FailAfter(st)
	steps := make([]Step, max(n, 0))
	for i := range steps {
		steps[i] = step
	}
	s.Script(method, steps...)
}

// FailAlways makes every call of the full method fail with st once its
// queued steps (see [Server.Script]) are used up. A nil st turns it off.
func (s *Server) FailAlways(method string, st *status.Status) {
	mustKnow(method)
	if st != nil && st.Code() == codes.OK {
		panic("sandboxtest.FailAlways: status must be nil or non-OK")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st == nil {
		delete(s.always, method)
		return
	}
	s.always[method] = st
}

// nextStepLocked takes the method's next step; s.mu must be held.
func (s *Server) nextStepLocked(method string) Step {
	if q := s.steps[method]; len(q) > 0 {
		s.steps[method] = q[1:]
		return q[0]
	}
	return Step{st: s.always[method]}
}

// DefaultLogEntries is how many entries StreamLogs sends, before ending
// with OK, in a call for which no [StreamLogsScript] is queued.
const DefaultLogEntries = 3

// A StreamLogsScript says how one StreamLogs call ends. The call sends
// Entries log entries, then a last entry carrying InBandError if it is set,
// then ends with Err if it is set, or else OK.
//
// Entry data is "line N\n" where N is the entry's log offset, starting at the
// request's resume_log_offset; each entry's next_log_offset is N+1 and its
// log_session_id is "logs-" plus the sandbox id, so that resumed streams can
// be checked for gaps and duplicates.
type StreamLogsScript struct {
	Entries     int
	InBandError *sandboxpb.LogStreamError
	Err         *status.Status
}

// ScriptStreamLogs queues scripts for StreamLogs, one per call that reaches
// the handler for a known sandbox (past auth and any [Server.Script] step).
func (s *Server) ScriptStreamLogs(scripts ...StreamLogsScript) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sc := range scripts {
		if sc.InBandError != nil {
			sc.InBandError = proto.CloneOf(sc.InBandError)
		}
		s.logScripts = append(s.logScripts, sc)
	}
}

// A StreamExecScript says how one StreamExec call behaves after the server
// sent ready. Without InBandError and Err it echoes each stdin chunk as a
// stdout output and, on close (or when the client closes its side), sends
// exit with ExitCode. With either set it echoes Chunks stdin chunks (none if
// Chunks is 0), then sends a last response carrying InBandError if it is
// set, then ends with Err if it is set, or else OK.
//
// To fail a StreamExec call before ready, use [Server.Script].
type StreamExecScript struct {
	Chunks      int
	InBandError *sandboxpb.ExecStreamError
	Err         *status.Status
	ExitCode    int32
}

// ScriptStreamExec queues scripts for StreamExec, one per call that reaches
// the handler with a valid init for a known sandbox. Calls for which none is
// queued echo until close and exit with code 0.
func (s *Server) ScriptStreamExec(scripts ...StreamExecScript) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sc := range scripts {
		if sc.InBandError != nil {
			sc.InBandError = proto.CloneOf(sc.InBandError)
		}
		s.execScript = append(s.execScript, sc)
	}
}

// knownMethods holds the full method names of both services.
var knownMethods = func() map[string]bool {
	m := make(map[string]bool)
	for _, sd := range []*grpc.ServiceDesc{&sandboxpb.SandboxService_ServiceDesc, &sandboxpb.DiscoveryService_ServiceDesc} {
		for _, md := range sd.Methods {
			m["/"+sd.ServiceName+"/"+md.MethodName] = true
		}
		for _, st := range sd.Streams {
			m["/"+sd.ServiceName+"/"+st.StreamName] = true
		}
	}
	return m
}()

func mustKnow(method string) {
	if !knownMethods[method] {
		panic(fmt.Sprintf("sandboxtest: unknown method %q (want a full method name such as %q)",
			method, sandboxpb.SandboxService_GetSandbox_FullMethodName))
	}
}
