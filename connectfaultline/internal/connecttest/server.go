package connecttest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/connectfaultline/internal/sandboxpbconnect"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
)

// Server serves a [sandboxtest.Server] over connect-go: SandboxService and
// DiscoveryService with sandboxtest's semantics, scripts and counters (every
// method of the embedded *sandboxtest.Server works as documented there), on the
// Connect, gRPC and gRPC-Web protocols, plus the transport faults of [Fault]
// ([Server.Inject]). Create it with [New]; it is an [http.Handler] (serve it
// with [Serve] or [ServeMemory]). All its methods are safe for concurrent use,
// including while it serves calls.
//
// The embedded server's Register, ServerOptions, StartBufconn and StartTCP
// still serve the same sandboxes over grpc-go.
type Server struct {
	*sandboxtest.Server

	unary   grpc.UnaryServerInterceptor
	stream  grpc.StreamServerInterceptor
	methods registrar // by procedure ("/pkg.Service/Method")
	mux     *http.ServeMux

	mu      sync.Mutex
	faults  map[string][]Fault // queued faults per procedure
	arrived map[string]int     // calls that reached the connect handler, per procedure
}

// method is one method of the sandboxtest services, as grpc-go would call it.
type method struct {
	srv    any                // the service implementation sandboxtest registered
	unary  grpc.MethodHandler // nil for a streaming method
	stream grpc.StreamHandler // nil for a unary method
	info   grpc.StreamServerInfo
}

// registrar collects the methods sandboxtest registers, by full name.
type registrar map[string]method

func (r registrar) RegisterService(sd *grpc.ServiceDesc, impl any) {
	for _, m := range sd.Methods {
		r["/"+sd.ServiceName+"/"+m.MethodName] = method{srv: impl, unary: m.Handler}
	}
	for _, st := range sd.Streams {
		name := "/" + sd.ServiceName + "/" + st.StreamName
		r[name] = method{srv: impl, stream: st.Handler, info: grpc.StreamServerInfo{
			FullMethod: name, IsClientStream: st.ClientStreams, IsServerStream: st.ServerStreams,
		}}
	}
}

// New returns a Server with a new sandboxtest.Server made with opts
// (sandboxtest.WithSandboxes, WithBearerToken, WithLog, ...), no scripts and
// no faults.
func New(opts ...sandboxtest.Option) *Server {
	s := &Server{
		Server:  sandboxtest.New(opts...),
		methods: make(registrar),
		mux:     http.NewServeMux(),
		faults:  make(map[string][]Fault),
		arrived: make(map[string]int),
	}
	s.unary, s.stream = s.Server.Interceptors()
	s.Register(s.methods)
	s.mux.Handle(sandboxpbconnect.NewSandboxServiceHandler(sandboxHandler{s}))
	s.mux.Handle(sandboxpbconnect.NewDiscoveryServiceHandler(discoveryHandler{s}))
	return s
}

// ServeHTTP serves the connect-go handlers of both services, and the faults
// queued with [Server.Inject].
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ex := &exchange{w: w, conn: connFrom(r.Context()), h2: r.ProtoMajor == 2}
	s.mux.ServeHTTP(ex, r.WithContext(context.WithValue(r.Context(), exchangeKey{}, ex)))
	if ex.wasReset() {
		// Whatever connect-go wrote after the reset was dropped; this makes
		// net/http abort the exchange instead of ending the response.
		panic(http.ErrAbortHandler)
	}
}

// Arrived returns how many calls of the procedure (a full method name such as
// sandboxpbconnect.SandboxServiceGetSandboxProcedure, the same string as the
// sandboxpb.*_FullMethodName constants) reached the connect handler since
// [New] or [Server.Reset], including calls a [Fault] delayed or reset before
// the service saw them (which [sandboxtest.Server.Calls] does not count).
func (s *Server) Arrived(procedure string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.arrived[procedure]
}

// Reset is [sandboxtest.Server.Reset], and also clears the queued faults and
// the [Server.Arrived] counters.
func (s *Server) Reset() {
	s.mu.Lock()
	clear(s.faults)
	clear(s.arrived)
	s.mu.Unlock()
	s.Server.Reset()
}

// callUnary calls a unary method: the fault first, then sandboxtest's interceptor
// and the method, with the request's headers as incoming metadata.
func callUnary[Res, Req any](ctx context.Context, s *Server, req *connect.Request[Req]) (*connect.Response[Res], error) {
	procedure := req.Spec().Procedure
	m, ok := s.methods[procedure]
	if !ok || m.unary == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, fmt.Errorf("connecttest: no unary method %s", procedure))
	}
	f, err := s.begin(ctx, procedure)
	if err != nil {
		return nil, err
	}
	ctx = metadata.NewIncomingContext(ctx, incomingMetadata(req.Header()))
	in, ok := any(req.Msg).(proto.Message)
	if !ok {
		return nil, connect.NewError(connect.CodeInternal, fmt.Errorf("connecttest: request %T is not a protobuf message", req.Msg))
	}
	dec := func(v any) error {
		proto.Merge(v.(proto.Message), in)
		return nil
	}
	res, err := m.unary(m.srv, ctx, dec, s.unary)
	if f.reset != 0 {
		return nil, resetNow(ctx, f.reset)
	}
	if err != nil {
		return nil, wireError(err)
	}
	return connect.NewResponse(res.(*Res)), nil
}

// streaming calls a streaming method through sandboxtest's stream interceptor
// on conn; first is the request of a server-streaming call, which connect-go
// has already read (nil for a bidi call).
func (s *Server) streaming(ctx context.Context, conn connect.StreamingHandlerConn, header http.Header, first proto.Message) error {
	procedure := conn.Spec().Procedure
	m, ok := s.methods[procedure]
	if !ok || m.stream == nil {
		return connect.NewError(connect.CodeUnimplemented, fmt.Errorf("connecttest: no streaming method %s", procedure))
	}
	f, err := s.begin(ctx, procedure)
	if err != nil {
		return err
	}
	gs := &grpcStream{
		ctx:   metadata.NewIncomingContext(ctx, incomingMetadata(header)),
		conn:  conn,
		first: first,
		reset: f.reset,
		sends: f.sends,
	}
	err = s.stream(m.srv, gs, &m.info, m.stream)
	if f.reset != 0 {
		return resetNow(ctx, f.reset) // at the end, if the handler sent no more than f.sends
	}
	return wireError(err)
}

// grpcStream is a connect-go stream as grpc-go's [grpc.ServerStream], the
// shape sandboxtest's handlers and interceptor take. With a reset fault it
// delivers sends messages, then resets on the next SendMsg.
type grpcStream struct {
	ctx   context.Context
	conn  connect.StreamingHandlerConn
	first proto.Message // the server stream's request, until RecvMsg returned it
	reset Reset         // 0: no reset
	sends int           // with reset: messages delivered before it
}

func (g *grpcStream) Context() context.Context { return g.ctx }

// SetHeader adds md to the response headers; connect-go sends them with the
// first message (or the end of the stream).
func (g *grpcStream) SetHeader(md metadata.MD) error {
	addMetadata(g.conn.ResponseHeader(), md)
	return nil
}

// SendHeader is SetHeader: connect-go has no call to send headers alone.
func (g *grpcStream) SendHeader(md metadata.MD) error { return g.SetHeader(md) }

func (g *grpcStream) SetTrailer(md metadata.MD) { addMetadata(g.conn.ResponseTrailer(), md) }

func (g *grpcStream) SendMsg(m any) error {
	if g.reset != 0 {
		if g.sends <= 0 {
			return resetNow(g.ctx, g.reset) // and on every later send
		}
		g.sends--
	}
	return g.conn.Send(m)
}

func (g *grpcStream) RecvMsg(m any) error {
	if g.conn.Spec().StreamType&connect.StreamTypeClient == 0 {
		if g.first == nil {
			return io.EOF
		}
		proto.Merge(m.(proto.Message), g.first)
		g.first = nil
		return nil
	}
	err := g.conn.Receive(m)
	if errors.Is(err, io.EOF) {
		return io.EOF // grpc-go's end of the client's messages
	}
	return err
}

// incomingMetadata returns the request headers as grpc-go's incoming metadata:
// lower-case keys, the values of "-bin" keys decoded (a value that does not
// decode is kept as sent).
func incomingMetadata(h http.Header) metadata.MD {
	md := make(metadata.MD, len(h))
	for k, vs := range h {
		key := strings.ToLower(k)
		for _, v := range vs {
			if strings.HasSuffix(key, "-bin") {
				if b, err := connect.DecodeBinaryHeader(v); err == nil {
					v = string(b)
				}
			}
			md[key] = append(md[key], v)
		}
	}
	return md
}

// addMetadata adds md to h, encoding the values of "-bin" keys.
func addMetadata(h http.Header, md metadata.MD) {
	for k, vs := range md {
		for _, v := range vs {
			if strings.HasSuffix(k, "-bin") {
				v = connect.EncodeBinaryHeader([]byte(v))
			}
			h.Add(k, v)
		}
	}
}

// wireError returns err as connect-go should send it: a grpc-go status (what
// sandboxtest returns) as [ErrorFromStatus] builds it; a *connect.Error, and
// any other error, as it is.
func wireError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := errors.AsType[*connect.Error](err); ok {
		return err
	}
	if st, ok := status.FromError(err); ok {
		return ErrorFromStatus(st)
	}
	return err
}

// ErrorFromStatus returns a *connect.Error with st's code, message and details:
// each google.rpc.Status detail is added as it is (the *anypb.Any, so its type
// URL and bytes are exactly st's, even for a detail that does not decode), so
// that a connect client's Code, Message and Details rebuild st on every
// protocol. It returns nil for a nil st or an OK one.
func ErrorFromStatus(st *status.Status) *connect.Error {
	if st == nil || st.Err() == nil {
		return nil
	}
	p := st.Proto()
	ce := connect.NewError(connect.Code(p.GetCode()), errors.New(p.GetMessage()))
	for _, a := range p.GetDetails() {
		d, err := connect.NewErrorDetail(a) // an *anypb.Any is used as it is: no error
		if err != nil {
			continue
		}
		ce.AddDetail(d)
	}
	return ce
}

type sandboxHandler struct{ s *Server }

func (h sandboxHandler) CreateSandbox(ctx context.Context, req *connect.Request[sandboxpb.CreateSandboxRequest]) (*connect.Response[sandboxpb.Sandbox], error) {
	return callUnary[sandboxpb.Sandbox](ctx, h.s, req)
}

func (h sandboxHandler) GetSandbox(ctx context.Context, req *connect.Request[sandboxpb.GetSandboxRequest]) (*connect.Response[sandboxpb.Sandbox], error) {
	return callUnary[sandboxpb.Sandbox](ctx, h.s, req)
}

func (h sandboxHandler) DeleteSandbox(ctx context.Context, req *connect.Request[sandboxpb.DeleteSandboxRequest]) (*connect.Response[sandboxpb.DeleteSandboxResponse], error) {
	return callUnary[sandboxpb.DeleteSandboxResponse](ctx, h.s, req)
}

func (h sandboxHandler) ReadFile(ctx context.Context, req *connect.Request[sandboxpb.ReadFileRequest]) (*connect.Response[sandboxpb.ReadFileResponse], error) {
	return callUnary[sandboxpb.ReadFileResponse](ctx, h.s, req)
}

func (h sandboxHandler) WriteFile(ctx context.Context, req *connect.Request[sandboxpb.WriteFileRequest]) (*connect.Response[sandboxpb.WriteFileResponse], error) {
	return callUnary[sandboxpb.WriteFileResponse](ctx, h.s, req)
}

func (h sandboxHandler) GetFileSystemSnapshot(ctx context.Context, req *connect.Request[sandboxpb.GetFileSystemSnapshotRequest]) (*connect.Response[sandboxpb.FileSystemSnapshot], error) {
	return callUnary[sandboxpb.FileSystemSnapshot](ctx, h.s, req)
}

func (h sandboxHandler) StreamLogs(ctx context.Context, req *connect.Request[sandboxpb.StreamLogsRequest], stream *connect.ServerStream[sandboxpb.LogEntry]) error {
	return h.s.streaming(ctx, stream.Conn(), req.Header(), req.Msg)
}

func (h sandboxHandler) Exec(ctx context.Context, req *connect.Request[sandboxpb.ExecRequest]) (*connect.Response[sandboxpb.ExecResponse], error) {
	return callUnary[sandboxpb.ExecResponse](ctx, h.s, req)
}

func (h sandboxHandler) CreateFileSystemSnapshot(ctx context.Context, req *connect.Request[sandboxpb.CreateFileSystemSnapshotRequest]) (*connect.Response[sandboxpb.FileSystemSnapshot], error) {
	return callUnary[sandboxpb.FileSystemSnapshot](ctx, h.s, req)
}

func (h sandboxHandler) StreamExec(ctx context.Context, stream *connect.BidiStream[sandboxpb.ExecStreamRequest, sandboxpb.ExecStreamResponse]) error {
	return h.s.streaming(ctx, stream.Conn(), stream.RequestHeader(), nil)
}

type discoveryHandler struct{ s *Server }

func (h discoveryHandler) GetAvailableRunner(ctx context.Context, req *connect.Request[sandboxpb.GetAvailableRunnerRequest]) (*connect.Response[sandboxpb.AvailableRunner], error) {
	return callUnary[sandboxpb.AvailableRunner](ctx, h.s, req)
}
