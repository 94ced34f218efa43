package sandboxtest

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/internal/sandboxpb"
)

// Server is a scriptable in-memory implementation of SandboxService and
// DiscoveryService. Create it with [New]. All its methods are safe for
// concurrent use, including while it serves calls.
type Server struct {
	token string // bearer token required when non-empty; set by options only

	mu         sync.Mutex
	steps      map[string][]Step          // queued steps per full method
	always     map[string]*status.Status  // "always fail" status per full method
	logScripts []StreamLogsScript         // queued StreamLogs scripts
	execScript []StreamExecScript         // queued StreamExec scripts
	calls      map[string]int             // calls received per full method
	handled    map[string]int             // calls that reached the handler per full method
	arrived    chan struct{}              // closed and replaced when a call is counted
	requests   map[string][]proto.Message // request messages received per full method
	md         map[string][]metadata.MD   // incoming metadata per call per full method
	created    int                        // sandboxes created (CreateSandbox runs that made one)
	execRuns   int                        // commands run by Exec
	snapsMade  int                        // snapshots created (CreateFileSystemSnapshot, DeleteSandbox)
	nextID     int                        // last generated sandbox number
	nextSnap   int                        // last generated snapshot number
	sandboxes  map[string]*sandbox
	byReqID    map[string]*sandboxpb.Sandbox               // CreateSandbox result per request_id
	snapByReq  map[string]*sandboxpb.FileSystemSnapshot    // CreateFileSystemSnapshot result per request_id
	delByReqID map[string]*sandboxpb.DeleteSandboxResponse // DeleteSandbox result per request_id
	snapshots  map[string]bool
	runners    map[string]bool
	logLines   uint64        // the log's length, when set: see WithLog
	logEvery   time.Duration // the pause before each log entry, when set
	growing    bool          // the log grows: see WithGrowingLog
	logEnd     uint64        // the growing log's length
	logEnded   bool          // the growing log has ended
	logGrew    chan struct{} // closed and replaced when the growing log changes
}

type sandbox struct {
	pb    *sandboxpb.Sandbox
	files map[string][]byte
}

// WithLog gives every sandbox a log of lines entries, sent every interval (0: at once):
// a StreamLogs call for which no [StreamLogsScript] is queued sends the entries from its
// resume_log_offset up to the end of the log, pausing interval before each, then ends with
// OK. It is how a test tails a long log across faults and resumes.
func WithLog(lines int, interval time.Duration) Option {
	return optionFunc(func(s *Server) { s.logLines, s.logEvery = uint64(max(lines, 0)), max(interval, 0) })
}

// An Option configures a [Server] in [New].
type Option interface{ apply(*Server) }

type optionFunc func(*Server)

func (f optionFunc) apply(s *Server) { f(s) }

// WithBearerToken makes every RPC require the metadata
// "authorization: Bearer <key>"; a call with a missing or different value
// fails with UNAUTHENTICATED before any script step is taken. The check runs
// in the interceptors of [Server.ServerOptions]. The default is no auth; the
// last WithBearerToken wins and an empty key turns auth off.
func WithBearerToken(key string) Option {
	return optionFunc(func(s *Server) { s.token = key })
}

// WithSandboxes adds sandboxes in state RUNNING with the given ids, as if
// they had been created before. Repeated options add up. The default is
// none.
func WithSandboxes(ids ...string) Option {
	return optionFunc(func(s *Server) {
		for _, id := range ids {
			s.sandboxes[id] = newSandbox(id, nil)
		}
	})
}

// WithSnapshots adds file system snapshots in state READY with the given
// ids. Repeated options add up. The default is none.
func WithSnapshots(ids ...string) Option {
	return optionFunc(func(s *Server) {
		for _, id := range ids {
			s.snapshots[id] = true
		}
	})
}

// WithRunners adds available runners with the given ids. Repeated options
// add up. The default is none.
func WithRunners(ids ...string) Option {
	return optionFunc(func(s *Server) {
		for _, id := range ids {
			s.runners[id] = true
		}
	})
}

// New returns a Server with no scripts, so that every call behaves as the
// service would, until a script says otherwise.
func New(opts ...Option) *Server {
	s := &Server{
		steps:      make(map[string][]Step),
		always:     make(map[string]*status.Status),
		calls:      make(map[string]int),
		handled:    make(map[string]int),
		arrived:    make(chan struct{}),
		requests:   make(map[string][]proto.Message),
		md:         make(map[string][]metadata.MD),
		sandboxes:  make(map[string]*sandbox),
		byReqID:    make(map[string]*sandboxpb.Sandbox),
		snapByReq:  make(map[string]*sandboxpb.FileSystemSnapshot),
		delByReqID: make(map[string]*sandboxpb.DeleteSandboxResponse),
		snapshots:  make(map[string]bool),
		runners:    make(map[string]bool),
	}
	for _, o := range opts {
		o.apply(s)
	}
	return s
}

// Register registers the SandboxService and DiscoveryService
// implementations on gs. Counting, recording, auth and script steps run in
// interceptors: gs must have been created with [Server.ServerOptions].
func (s *Server) Register(gs grpc.ServiceRegistrar) {
	sandboxpb.RegisterSandboxServiceServer(gs, &sandboxService{s: s})
	sandboxpb.RegisterDiscoveryServiceServer(gs, &discoveryService{s: s})
}

// ServerOptions returns the options that install the Server's unary and
// stream interceptors. Pass them to [grpc.NewServer] first, so that they run
// before (outside) any other interceptor.
func (s *Server) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(s.unaryInterceptor),
		grpc.ChainStreamInterceptor(s.streamInterceptor),
	}
}

// Interceptors returns the unary and stream interceptors that [Server.ServerOptions]
// installs (counting, recording, auth and script steps), for a transport other than
// grpc-go that calls the services registered by [Server.Register] itself: it must call
// every method through them, with the call's incoming metadata in the context
// ([metadata.NewIncomingContext]). connectfaultline's connect-go test server does.
func (s *Server) Interceptors() (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	return s.unaryInterceptor, s.streamInterceptor
}

// StartBufconn serves s on a new in-memory listener, with
// [Server.ServerOptions], then opts. Dial it with [DialBufconn]. stop stops
// the gRPC server (cancelling calls in flight), waits for every handler and
// the serving goroutine to return, and closes the listener; it may be called
// more than once.
func (s *Server) StartBufconn(opts ...grpc.ServerOption) (lis *bufconn.Listener, stop func()) {
	lis = bufconn.Listen(1 << 20)
	return lis, s.serve(lis, opts)
}

// StartTCP is like [Server.StartBufconn] on a TCP listener bound to
// 127.0.0.1 on a free port, whose address ("127.0.0.1:port") it returns. The
// error is the one from [net.Listen].
func (s *Server) StartTCP(opts ...grpc.ServerOption) (addr string, stop func(), err error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("sandboxtest: listen: %w", err)
	}
	return lis.Addr().String(), s.serve(lis, opts), nil
}

func (s *Server) serve(lis net.Listener, opts []grpc.ServerOption) func() {
	all := append(s.ServerOptions(), grpc.WaitForHandlers(true))
	gs := grpc.NewServer(append(all, opts...)...)
	s.Register(gs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = gs.Serve(lis) // returns nil after Stop
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			gs.Stop() // closes lis and all connections
			<-done
		})
	}
}

// DialBufconn returns a client connection to lis with insecure transport
// credentials, then opts. The caller closes it. The error is the one from
// [grpc.NewClient].
func DialBufconn(lis *bufconn.Listener, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	all := []grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return lis.DialContext(ctx)
		}),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}
	return grpc.NewClient("passthrough:///bufconn", append(all, opts...)...)
}

// Calls returns how many calls of the full method (for example
// [sandboxpb.SandboxService_GetSandbox_FullMethodName]) the server received
// since [New] or [Server.Reset], including calls that failed for any reason.
func (s *Server) Calls(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[method]
}

// Requests returns clones of the request messages the server received for
// the full method, in arrival order. For a unary method that is one message
// per call, including calls failed by auth or a script step. For a streaming
// method it is every message the handler read, so none for a call failed
// before its handler ran; for StreamExec that is every message every client
// sent.
func (s *Server) Requests(method string) []proto.Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]proto.Message, len(s.requests[method]))
	for i, m := range s.requests[method] {
		out[i] = proto.Clone(m)
	}
	return out
}

// Metadata returns copies of the incoming metadata of each call of the full
// method, in arrival order, one per counted call (for example to check
// "x-retry-attempt" or "authorization").
func (s *Server) Metadata(method string) []metadata.MD {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]metadata.MD, len(s.md[method]))
	for i, md := range s.md[method] {
		out[i] = md.Copy()
	}
	return out
}

// Handled returns how many calls of the full method reached its handler
// since [New] or [Server.Reset]: calls past auth and past their script
// step, including calls failed after their handler ran ([FailAfter]) and
// calls the handler itself failed (NOT_FOUND, INVALID_ARGUMENT). It is at
// most [Server.Calls].
func (s *Server) Handled(method string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.handled[method]
}

// WaitCalls blocks until the server has received at least n calls of the
// full method since [New] or [Server.Reset] (as [Server.Calls] counts them),
// then returns nil; or until ctx ends, then returns ctx.Err(). A call is
// counted in the same step as it takes its script step (if it passes auth),
// so once WaitCalls returned nil those n calls hold their steps: a later
// call cannot take the [Stall] step meant for them, and cancelling a
// stalled one ends it. It panics if method is not a method of
// SandboxService or DiscoveryService.
func (s *Server) WaitCalls(ctx context.Context, method string, n int) error {
	mustKnow(method)
	for {
		s.mu.Lock()
		got, arrived := s.calls[method], s.arrived
		s.mu.Unlock()
		if got >= n {
			return nil
		}
		select {
		case <-arrived:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// SandboxesCreated returns how many sandboxes CreateSandbox created since
// [New] or [Server.Reset]: every call that made a new sandbox counts, so two
// creates without a request_id count 2 even if the client meant one; a call
// answered from a remembered request_id does not count. Sandboxes added with
// [WithSandboxes] do not count.
func (s *Server) SandboxesCreated() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created
}

// Created is [Server.SandboxesCreated], kept for existing callers.
func (s *Server) Created() int { return s.SandboxesCreated() }

// ExecRuns returns how many times Exec ran a command since [New] or
// [Server.Reset]: every Exec call that reached its handler for a known
// sandbox with a non-empty command, including one failed afterwards by a
// [FailAfter] step.
func (s *Server) ExecRuns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.execRuns
}

// SnapshotsCreated returns how many file system snapshots were created
// since [New] or [Server.Reset]: one per CreateFileSystemSnapshot call that
// made a new snapshot, plus one per DeleteSandbox with snapshot_volumes that
// deleted a sandbox. Calls answered from a remembered request_id do not
// count; snapshots added with [WithSnapshots] do not either.
func (s *Server) SnapshotsCreated() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapsMade
}

// Reset clears the counters ([Server.Calls], [Server.Handled],
// [Server.SandboxesCreated], [Server.ExecRuns], [Server.SnapshotsCreated]),
// the recordings ([Server.Requests], [Server.Metadata]) and every script
// (queued steps, always-fail statuses, stream scripts). Sandboxes, files,
// snapshots, runners and remembered request ids are kept.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.steps)
	clear(s.always)
	clear(s.calls)
	clear(s.handled)
	clear(s.requests)
	clear(s.md)
	s.logScripts = nil
	s.execScript = nil
	s.created = 0
	s.execRuns = 0
	s.snapsMade = 0
}

func (s *Server) unaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	after, err := s.admit(ctx, info.FullMethod, req)
	if err != nil {
		return nil, err
	}
	res, err := handler(ctx, req)
	if after != nil {
		return nil, after.Err()
	}
	return res, err
}

func (s *Server) streamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	after, err := s.admit(ss.Context(), info.FullMethod, nil)
	if err != nil {
		return err
	}
	err = handler(srv, &recordingStream{ServerStream: ss, s: s, method: info.FullMethod})
	if after != nil {
		return after.Err()
	}
	return err
}

// recordingStream records every message the client sends.
type recordingStream struct {
	grpc.ServerStream
	s      *Server
	method string
}

func (r *recordingStream) RecvMsg(m any) error {
	err := r.ServerStream.RecvMsg(m)
	if err == nil {
		r.s.recordRequest(r.method, m)
	}
	return err
}

func (s *Server) recordRequest(method string, req any) {
	m, ok := req.(proto.Message)
	if !ok {
		return
	}
	m = proto.Clone(m)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[method] = append(s.requests[method], m)
}

// admit counts and records the call (and req, the request of a unary call;
// nil for a stream), checks auth, then takes the method's next script step.
// Counting and taking the step happen under one lock, so that once
// [Server.WaitCalls] sees a call, the call has its step and a later call
// cannot take it. A nil error lets the call through to its handler
// (counted in handled); after is then the status that replaces the
// handler's result, if the step is a [FailAfter].
func (s *Server) admit(ctx context.Context, method string, req any) (after *status.Status, err error) {
	md, _ := metadata.FromIncomingContext(ctx)
	md = md.Copy()
	var m proto.Message
	if pm, ok := req.(proto.Message); ok {
		m = proto.Clone(pm)
	}
	authed := s.token == "" || authorized(ctx, s.token)

	s.mu.Lock()
	s.calls[method]++
	s.md[method] = append(s.md[method], md)
	if m != nil {
		s.requests[method] = append(s.requests[method], m)
	}
	var step Step
	if authed {
		step = s.nextStepLocked(method)
		if !step.stall && (step.st == nil || step.after) {
			s.handled[method]++
		}
	}
	close(s.arrived)
	s.arrived = make(chan struct{})
	s.mu.Unlock()

	switch {
	case !authed:
		return nil, status.Error(codes.Unauthenticated, "missing or invalid bearer token")
	case step.stall:
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	case step.st != nil && !step.after:
		return nil, step.st.Err()
	}
	return step.st, nil
}

func authorized(ctx context.Context, token string) bool {
	md, _ := metadata.FromIncomingContext(ctx)
	got := md.Get("authorization")
	want := "Bearer " + token
	return len(got) == 1 && subtle.ConstantTimeCompare([]byte(got[0]), []byte(want)) == 1
}

// Restartable serves a Server on bufconn and can take it away and bring it back on the same
// address, as a restart does: while it is away every connection is closed and dials are
// refused, as a TCP connect to a closed port is. Give [Restartable.Dial] to
// grpc.WithContextDialer. Start it with [Server.StartRestartable].
type Restartable struct {
	s *Server

	mu   sync.Mutex
	lis  *bufconn.Listener // nil while away
	stop func()
}

// StartRestartable serves s as [Server.StartBufconn] does, and returns the handle that
// restarts it. Call Down when done.
func (s *Server) StartRestartable() *Restartable {
	r := &Restartable{s: s}
	r.Up()
	return r
}

// errRefused is what a dial returns while the server is away: what a TCP connect to a
// closed port returns.
var errRefused = &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}

// Up serves the same sandboxes on a new grpc.Server; it does nothing while serving.
func (r *Restartable) Up() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.lis == nil {
		r.lis, r.stop = r.s.StartBufconn()
	}
}

// Down stops the grpc.Server: dials are refused from now on, every connection is closed and
// calls in flight are cancelled. It returns when every handler has returned.
func (r *Restartable) Down() {
	r.mu.Lock()
	stop := r.stop
	r.lis, r.stop = nil, nil
	r.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// Dial connects to the server, or fails as a refused TCP connect while it is away.
func (r *Restartable) Dial(ctx context.Context, _ string) (net.Conn, error) {
	r.mu.Lock()
	lis := r.lis
	r.mu.Unlock()
	if lis == nil {
		return nil, errRefused
	}
	return lis.DialContext(ctx)
}
