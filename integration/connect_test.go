package integration_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/rs/zerolog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/connectfaultline"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

// The connect-go tests put a connect-go server (Connect, gRPC and gRPC-Web, HTTP/1.1 and
// HTTP/2 without TLS, on 127.0.0.1) in front of the real sandboxtest server, which does the
// work and counts it, and toxiproxy between it and connect-go clients that use
// connectfaultline. The connect-go server forwards each call through a grpc-go client: the
// side effects (sandboxes created, commands run, log lines) are sandboxtest's, and the
// faults are real TCP resets between the client and the connect-go server.

// connectProtocol is a connect-go client protocol.
type connectProtocol struct {
	name string
	opt  connect.ClientOption
}

var connectProtocols = []connectProtocol{
	{"connect", connect.WithClientOptions()},
	{"grpc", connect.WithGRPC()},
	{"grpcweb", connect.WithGRPCWeb()},
}

// connectClient is one HTTP version and protocol.
type connectClient struct {
	http2 bool
	p     connectProtocol
}

func (c connectClient) String() string {
	v := "HTTP/1.1"
	if c.http2 {
		v = "HTTP/2"
	}
	return v + "/" + c.p.name
}

// eachConnectClient runs f as a subtest for every HTTP version and protocol.
func eachConnectClient(t *testing.T, f func(t *testing.T, c connectClient)) {
	for _, h2 := range []bool{false, true} {
		for _, p := range connectProtocols {
			c := connectClient{h2, p}
			t.Run(c.String(), func(t *testing.T) { f(t, c) })
		}
	}
}

// connectEnv is the sandboxtest server behind a connect-go server behind a toxiproxy proxy.
type connectEnv struct {
	srv   *sandboxtest.Server
	proxy *toxiproxy.Proxy
	fault *faultEnv // the proxy, for injectReset and the like
}

// startConnectEnv serves a sandboxtest server made with opts behind a connect-go server and
// a toxiproxy proxy, until the test ends.
func startConnectEnv(t *testing.T, opts ...sandboxtest.Option) *connectEnv {
	t.Helper()
	srv, grpcAddr := startServer(t, opts...)
	conn, err := grpc.NewClient("passthrough:///"+grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatalf("grpc.NewClient(%q) error = %v", grpcAddr, err)
	}
	t.Cleanup(func() { conn.Close() })
	sb := sandboxpb.NewSandboxServiceClient(conn)
	mux := http.NewServeMux()
	mux.Handle(mCreate, connect.NewUnaryHandler(mCreate, forward(sb.CreateSandbox)))
	mux.Handle(mExecUnary, connect.NewUnaryHandler(mExecUnary, forward(sb.Exec)))
	mux.Handle(mLogs, connect.NewServerStreamHandler(mLogs, func(ctx context.Context, req *connect.Request[sandboxpb.StreamLogsRequest],
		out *connect.ServerStream[sandboxpb.LogEntry]) error {
		st, err := sb.StreamLogs(outgoing(ctx, req.Header()), req.Msg)
		if err != nil {
			return connectError(err)
		}
		for {
			m, err := st.Recv()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return connectError(err)
			}
			if err := out.Send(m); err != nil {
				return err
			}
		}
	}))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	hs := &http.Server{Handler: mux, Protocols: &protocols}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = hs.Serve(lis)
	}()
	t.Cleanup(func() {
		_ = hs.Close()
		<-served
	})

	api := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(nil), zerolog.Nop())
	proxy := toxiproxy.NewProxy(api, "connect", "127.0.0.1:0", lis.Addr().String())
	if err := proxy.Start(); err != nil {
		t.Fatalf("proxy.Start() error = %v", err)
	}
	t.Cleanup(proxy.Stop)
	return &connectEnv{srv: srv, proxy: proxy, fault: &faultEnv{srv: srv, proxy: proxy}}
}

// forward is a connect-go unary handler that makes the call with a grpc-go method.
func forward[Req, Res any](call func(context.Context, *Req, ...grpc.CallOption) (*Res, error)) func(context.Context, *connect.Request[Req]) (*connect.Response[Res], error) {
	return func(ctx context.Context, req *connect.Request[Req]) (*connect.Response[Res], error) {
		res, err := call(outgoing(ctx, req.Header()), req.Msg)
		if err != nil {
			return nil, connectError(err)
		}
		return connect.NewResponse(res), nil
	}
}

// outgoing returns ctx with the request's test and retry headers as outgoing metadata.
func outgoing(ctx context.Context, h http.Header) context.Context {
	md := metadata.MD{}
	for k, vs := range h {
		if k := strings.ToLower(k); strings.HasPrefix(k, "x-") {
			md[k] = vs
		}
	}
	return metadata.NewOutgoingContext(ctx, md)
}

// connectError is the grpc-go error err as connect-go sends it: code, message and details.
func connectError(err error) error {
	st := status.Convert(err)
	ce := connect.NewError(connect.Code(st.Code()), errors.New(st.Message()))
	for _, d := range st.Proto().GetDetails() {
		if cd, err := connect.NewErrorDetail(d); err == nil {
			ce.AddDetail(cd)
		}
	}
	return ce
}

// client returns an HTTP client that speaks c's HTTP version to the proxy, and the base URL.
func (e *connectEnv) client(t *testing.T, c connectClient) (*http.Client, string) {
	t.Helper()
	var protocols http.Protocols
	if c.http2 {
		protocols.SetUnencryptedHTTP2(true)
	} else {
		protocols.SetHTTP1(true)
	}
	tr := &http.Transport{Protocols: &protocols}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}, "http://" + e.proxy.Listen
}

// TestConnectNoRepeatUnderResets is TestNoRepeatUnderResets for connect-go clients, on every
// HTTP version and protocol: 30 CreateSandbox calls without a request id, then 30 unary
// Exec calls, over real TCP while toxiproxy resets the connection on and off, so that
// responses are lost after the server did the work. Every attempt of one create carries the
// one request id generated for it, so no call creates two sandboxes; no Exec is ever sent
// twice, so no command runs twice.
func TestConnectNoRepeatUnderResets(t *testing.T) {
	eachConnectClient(t, func(t *testing.T, c connectClient) {
		for _, tc := range []struct {
			name   string
			method string
		}{
			{"CreateSandbox without request id", mCreate},
			{"Exec", mExecUnary},
		} {
			t.Run(tc.name, func(t *testing.T) {
				e := startConnectEnv(t, sandboxtest.WithSandboxes("sb-1"))
				hc, base := e.client(t, c)
				i, err := connectfaultline.New(connectfaultline.WithRetrier(retry.MustNew(recoveryPolicy(8))))
				if err != nil {
					t.Fatal(err)
				}
				create := connect.NewClient[sandboxpb.CreateSandboxRequest, sandboxpb.Sandbox](hc, base+mCreate, c.p.opt, connect.WithInterceptors(i))
				exec := connect.NewClient[sandboxpb.ExecRequest, sandboxpb.ExecResponse](hc, base+mExecUnary, c.p.opt, connect.WithInterceptors(i))
				call := func(ctx context.Context, id string) error {
					var err error
					if tc.method == mCreate {
						req := connect.NewRequest(&sandboxpb.CreateSandboxRequest{})
						req.Header().Set(callIDKey, id)
						_, err = create.CallUnary(ctx, req)
					} else {
						req := connect.NewRequest(&sandboxpb.ExecRequest{SandboxId: "sb-1", Command: []string{"echo", "once"}})
						req.Header().Set(callIDKey, id)
						_, err = exec.CallUnary(ctx, req)
					}
					return err
				}
				// Warm up: connect before the faults.
				if err := call(callCtxFor(t), "warm-up"); err != nil {
					t.Fatalf("warm-up call error = %v", err)
				}
				e.srv.Reset()
				// Every request takes 10ms to reach the server, so resets land on calls in flight.
				e.fault.addToxic(t, "slow", "latency", "upstream", `{"latency":10,"jitter":0}`)
				stop := flapResets(t, e.fault, 7*time.Millisecond, 10*time.Second)
				const calls = 30
				var succeeded atomic.Int32
				var unclassified atomic.Int32
				var mu sync.Mutex
				seen := map[string]int{}
				var wg sync.WaitGroup
				for w := range 5 {
					wg.Go(func() {
						for n := range calls / 5 {
							ctx, cancel := context.WithTimeout(context.Background(), hangBound)
							err := call(ctx, fmt.Sprintf("%d-%d", w, n))
							cancel()
							if err == nil {
								succeeded.Add(1)
							} else {
								if _, ok := errors.AsType[*errs.Error](err); !ok {
									unclassified.Add(1)
								}
								mu.Lock()
								seen[connectSummary(err)]++
								mu.Unlock()
							}
						}
					})
				}
				wg.Wait()
				resets := stop()
				for s, n := range seen {
					t.Logf("%d x %s", n, s)
				}
				if n := unclassified.Load(); n > 0 {
					t.Errorf("%d calls failed with an error that holds no *errs.Error", n)
				}
				checkNoRepeat(t, e.srv, tc.method, calls, int(succeeded.Load()), resets)
			})
		}
	})
}

// callCtxFor is a context bounded by hangBound, ended when the test ends.
func callCtxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	t.Cleanup(cancel)
	return ctx
}

// checkNoRepeat checks what the server recorded of calls of method under resets: no Exec
// reached it twice, every attempt of one create carried one generated request id, and the
// side effects lie between the successful calls and the calls that reached the server.
func checkNoRepeat(t *testing.T, srv *sandboxtest.Server, method string, calls, succeeded, resets int) {
	t.Helper()
	attempts := map[string]int{}
	ids := map[string]map[string]bool{} // call -> request ids its attempts carried
	reqs, mds := srv.Requests(method), srv.Metadata(method)
	if len(reqs) != len(mds) {
		t.Fatalf("server recorded %d requests and %d metadata", len(reqs), len(mds))
	}
	for i, md := range mds {
		v := md.Get(callIDKey)
		if len(v) != 1 {
			t.Fatalf("attempt %d: %s = %q, want the call's id", i, callIDKey, v)
		}
		attempts[v[0]]++
		if r, ok := reqs[i].(*sandboxpb.CreateSandboxRequest); ok {
			if ids[v[0]] == nil {
				ids[v[0]] = map[string]bool{}
			}
			ids[v[0]][r.GetRequestId()] = true
		}
	}
	retried := 0
	for call, n := range attempts {
		if n > 1 {
			retried++
		}
		if method == mExecUnary && n > 1 {
			t.Errorf("call %s: Exec reached the server %d times, want at most once", call, n)
		}
		if set := ids[call]; method == mCreate && (len(set) != 1 || set[""]) {
			t.Errorf("call %s: request ids %v, want one generated id on every attempt", call, set)
		}
	}
	switch method {
	case mCreate:
		created := srv.SandboxesCreated()
		t.Logf("%d creates under %d resets: %d succeeded, %d retried, %d sandboxes created, %d server attempts",
			calls, resets, succeeded, retried, created, len(reqs))
		if created < succeeded || created > len(ids) {
			t.Errorf("sandboxes created = %d, want between the %d successful calls and the %d calls that reached the server",
				created, succeeded, len(ids))
		}
	case mExecUnary:
		runs := srv.ExecRuns()
		t.Logf("%d execs under %d resets: %d succeeded, %d commands run, %d server attempts",
			calls, resets, succeeded, runs, len(reqs))
		if runs > len(attempts) || runs < succeeded {
			t.Errorf("commands run = %d, want between the %d successful calls and the %d calls that reached the server",
				runs, succeeded, len(attempts))
		}
	}
	if succeeded == 0 || resets == 0 {
		t.Errorf("%d calls succeeded under %d resets: the scenario did not exercise both", succeeded, resets)
	}
}

// TestConnectResumeFollowStreams is TestResumeFollowStreams for connect-go clients, on every
// HTTP version and protocol: 5 logs followed at once while the connection is reset three
// times; every stream delivers every line exactly once, in order, by resuming from its
// cursor. As there, the logs grow in steps and each fault is healed once every stream has
// failed on it, so nothing depends on the machine's speed; each wait bounds a hang.
func TestConnectResumeFollowStreams(t *testing.T) {
	eachConnectClient(t, func(t *testing.T, c connectClient) {
		const streams, steps, perStep = 5, 4, 100
		var ids []string
		for i := range streams {
			ids = append(ids, fmt.Sprintf("sb-%d", i))
		}
		e := startConnectEnv(t, sandboxtest.WithSandboxes(ids...), sandboxtest.WithGrowingLog())
		hc, base := e.client(t, c)
		var resumes [streams]atomic.Int32
		hooks := retry.Hooks{OnRetry: func(ctx context.Context, ev retry.RetryEvent) {
			if n, ok := ctx.Value(streamKey{}).(int); ok && ev.Resumed {
				resumes[n].Add(1)
			}
		}}
		i, err := connectfaultline.New(connectfaultline.WithRetrier(retry.MustNew(recoveryPolicy(manyAttempts),
			retry.WithBudget(nil), retry.WithHooks(hooks))))
		if err != nil {
			t.Fatal(err)
		}
		logs := connect.NewClient[sandboxpb.StreamLogsRequest, sandboxpb.LogEntry](hc, base+mLogs, c.p.opt, connect.WithInterceptors(i))

		type result struct {
			delivered atomic.Int64
			lines     []uint64
			err       error
		}
		results := make([]*result, streams)
		ctx, cancel := context.WithTimeout(context.Background(), 2*hangBound)
		defer cancel()
		var wg sync.WaitGroup
		for n := range streams {
			r := &result{}
			results[n] = r
			sctx := context.WithValue(ctx, streamKey{}, n)
			wg.Go(func() {
				st, err := logs.CallServerStream(sctx, connect.NewRequest(&sandboxpb.StreamLogsRequest{SandboxId: ids[n], Follow: true}))
				if err != nil {
					r.err = err
					return
				}
				defer st.Close()
				for st.Receive() {
					r.lines = append(r.lines, st.Msg().GetNextLogOffset()-1)
					r.delivered.Add(1)
				}
				r.err = st.Err()
			})
		}
		stop := func(format string, args ...any) {
			t.Helper()
			cancel()
			e.srv.EndLog()
			wg.Wait()
			t.Fatalf(format, args...)
		}
		resumed := func() []int32 {
			out := make([]int32, streams)
			for n := range out {
				out[n] = resumes[n].Load()
			}
			return out
		}
		total := 0
		for step := range steps {
			var before []int32
			if step > 0 {
				before = resumed()
				injectReset(t, e.fault)
			}
			total = e.srv.AppendLog(perStep)
			if step > 0 {
				if !waitUntil(func() bool {
					now := resumed()
					for n := range now {
						if now[n] <= before[n] {
							return false
						}
					}
					return true
				}) {
					stop("step %d: streams had not all resumed after %v (resumes %v, before %v)", step, hangBound, resumed(), before)
				}
				healReset(t, e.fault)
			}
			if !waitUntil(func() bool {
				for _, r := range results {
					if r.delivered.Load() < int64(total) {
						return false
					}
				}
				return true
			}) {
				got := make([]int64, streams)
				for n, r := range results {
					got[n] = r.delivered.Load()
				}
				stop("step %d: lines delivered per stream %v after %v, want %d each", step, got, hangBound, total)
			}
		}
		e.srv.EndLog()
		wg.Wait()
		want := make([]uint64, total)
		for j := range want {
			want[j] = uint64(j)
		}
		for n, r := range results {
			if r.err != nil {
				t.Errorf("stream %d: ended with %v after %d lines", n, r.err, len(r.lines))
			}
			if !slices.Equal(r.lines, want) {
				t.Errorf("stream %d: %d lines, not every line once in order (first %v, last %v)",
					n, len(r.lines), r.lines[:min(3, len(r.lines))], r.lines[max(0, len(r.lines)-3):])
			}
		}
		t.Logf("%d follow streams x %d lines under %d resets: resumes per stream %v", streams, total, steps-1, resumed())
	})
}

type streamKey struct{}

// connectSummary is errSummary with the stop reason, and connect-go's own code.
func connectSummary(err error) string {
	reason := "-"
	if re, ok := errors.AsType[*retry.Error](err); ok {
		reason = fmt.Sprintf("%v after %d", re.StopReason(), re.Attempts())
	}
	return fmt.Sprintf("%s (%s; connect %v)", errSummary(err), reason, connect.CodeOf(err))
}
