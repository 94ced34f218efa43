package echotest

import (
	"context"
	"fmt"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/internal/testpb"
)

// Server is an in-memory implementation of the Echo service that counts
// calls and side effects and fails scripted calls. Create it with [New].
// All its methods are safe for concurrent use, including while it serves
// calls.
type Server struct {
	mu       sync.Mutex
	steps    map[string][]step // queued failures per full method
	calls    map[string]int
	handled  map[string]int
	requests map[string][]*testpb.EchoRequest
	created  int
	byReqID  map[string]*testpb.EchoResponse // Create result per request_id
}

// step is one scripted failure: st returned before the handler runs, or
// after it ran when after is set.
type step struct {
	st    *status.Status
	after bool
}

// New returns a Server with no scripted failures.
func New() *Server {
	return &Server{
		steps:    make(map[string][]step),
		calls:    make(map[string]int),
		handled:  make(map[string]int),
		requests: make(map[string][]*testpb.EchoRequest),
		byReqID:  make(map[string]*testpb.EchoResponse),
	}
}

// Register registers the Echo implementation on gs. It needs no
// interceptor: counting and scripts run in the handlers.
func (s *Server) Register(gs grpc.ServiceRegistrar) {
	testpb.RegisterEchoServer(gs, &echo{s: s})
}

// FailNext makes the next n calls of the full method (for example
// [testpb.Echo_Do_FullMethodName]) fail with st before their handler runs,
// after any failures already queued for it. It panics if st is nil or OK,
// or if method is not a method of Echo.
func (s *Server) FailNext(method string, n int, st *status.Status) {
	s.queue(method, n, step{st: st})
}

// FailAfterNext makes the next n calls of the full method run their
// handler (the call's side effect happens, a Create creates) and then fail
// with st instead of returning the response, after any failures already
// queued for it. It panics if st is nil or OK, or if method is not a method
// of Echo.
func (s *Server) FailAfterNext(method string, n int, st *status.Status) {
	s.queue(method, n, step{st: st, after: true})
}

func (s *Server) queue(method string, n int, st step) {
	if st.st == nil || st.st.Code() == codes.OK {
		panic("echotest: status must be a non-OK status")
	}
	mustKnow(method)
	s.mu.Lock()
	defer s.mu.Unlock()
	for range max(n, 0) {
		s.steps[method] = append(s.steps[method], st)
	}
}

// Calls returns how many calls of the full method the server received,
// including calls failed by a script.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// Handled returns how many calls of the full method ran their handler:
// calls not failed by [Server.FailNext], including calls failed by
// [Server.FailAfterNext].
func (s *Server) Handled(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handled[method]
}

// Requests returns clones of the requests the server received for the full
// method, in arrival order, one per call.
func (s *Server) Requests(method string) []*testpb.EchoRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*testpb.EchoRequest, len(s.requests[method]))
	for i, r := range s.requests[method] {
		out[i] = proto.CloneOf(r)
	}
	return out
}

// Created returns how many times Create created something: every Create
// call that ran its handler without a request_id seen before in a Create
// that ran its handler.
func (s *Server) Created() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created
}

// echo implements testpb.EchoServer.
type echo struct {
	testpb.UnimplementedEchoServer
	s *Server
}

func (e *echo) Read(_ context.Context, req *testpb.EchoRequest) (*testpb.EchoResponse, error) {
	return e.s.serve(testpb.Echo_Read_FullMethodName, req, nil)
}

func (e *echo) Put(_ context.Context, req *testpb.EchoRequest) (*testpb.EchoResponse, error) {
	return e.s.serve(testpb.Echo_Put_FullMethodName, req, nil)
}

func (e *echo) Do(_ context.Context, req *testpb.EchoRequest) (*testpb.EchoResponse, error) {
	return e.s.serve(testpb.Echo_Do_FullMethodName, req, nil)
}

func (e *echo) Create(_ context.Context, req *testpb.EchoRequest) (*testpb.EchoResponse, error) {
	return e.s.serve(testpb.Echo_Create_FullMethodName, req, e.s.createLocked)
}

// serve counts and records a call, takes its scripted step, and runs
// handle (or echoes the text when handle is nil) under s.mu.
func (s *Server) serve(method string, req *testpb.EchoRequest, handle func(*testpb.EchoRequest) *testpb.EchoResponse) (*testpb.EchoResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[method]++
	s.requests[method] = append(s.requests[method], proto.CloneOf(req))
	var st step
	if q := s.steps[method]; len(q) > 0 {
		st, s.steps[method] = q[0], q[1:]
	}
	if st.st != nil && !st.after {
		return nil, st.st.Err()
	}
	s.handled[method]++
	res := &testpb.EchoResponse{Text: req.GetText()}
	if handle != nil {
		res = handle(req)
	}
	if st.st != nil {
		return nil, st.st.Err()
	}
	return res, nil
}

// createLocked deduplicates by request_id; s.mu must be held.
func (s *Server) createLocked(req *testpb.EchoRequest) *testpb.EchoResponse {
	rid := req.GetRequestId()
	if first, ok := s.byReqID[rid]; ok && rid != "" {
		return proto.CloneOf(first)
	}
	s.created++
	res := &testpb.EchoResponse{Text: req.GetText()}
	if rid != "" {
		s.byReqID[rid] = proto.CloneOf(res)
	}
	return res
}

// knownMethods holds the full method names of Echo.
var knownMethods = func() map[string]bool {
	m := make(map[string]bool)
	for _, md := range testpb.Echo_ServiceDesc.Methods {
		m["/"+testpb.Echo_ServiceDesc.ServiceName+"/"+md.MethodName] = true
	}
	return m
}()

func mustKnow(method string) {
	if !knownMethods[method] {
		panic(fmt.Sprintf("echotest: unknown method %q (want a full method name such as %q)",
			method, testpb.Echo_Do_FullMethodName))
	}
}
