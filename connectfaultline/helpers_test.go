package connectfaultline_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/connectfaultline"
	"github.com/faultline-go/faultline/connectfaultline/internal/connecttest"
	"github.com/faultline-go/faultline/connectfaultline/internal/sandboxpbconnect"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Procedures used throughout.
const (
	mCreate     = sandboxpb.SandboxService_CreateSandbox_FullMethodName
	mGet        = sandboxpb.SandboxService_GetSandbox_FullMethodName
	mDelete     = sandboxpb.SandboxService_DeleteSandbox_FullMethodName
	mRead       = sandboxpb.SandboxService_ReadFile_FullMethodName
	mLogs       = sandboxpb.SandboxService_StreamLogs_FullMethodName
	mExec       = sandboxpb.SandboxService_Exec_FullMethodName
	mStreamExec = sandboxpb.SandboxService_StreamExec_FullMethodName
	mRunner     = sandboxpb.DiscoveryService_GetAvailableRunner_FullMethodName
	sandboxSvc  = "/coreweave.sandbox.v1.SandboxService/"
	attemptKey  = "x-retry-attempt"

	// callTimeout bounds every call of a test on the real clock: only a hang reaches it.
	callTimeout = 2 * time.Minute
)

// callCtx returns a context for the test's calls that ends after callTimeout.
func callCtx(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

// A transport serves a handler for a test: real TCP on 127.0.0.1, or in memory.
type transport struct {
	name  string
	serve func(testing.TB, http.Handler, connecttest.HTTP) *connecttest.Endpoint
}

var (
	tcp    = transport{"tcp", connecttest.Serve}
	memory = transport{"memory", connecttest.ServeMemory}
)

// env is a connecttest server and clients of one protocol, through one interceptor.
type env struct {
	srv  *connecttest.Server
	ep   *connecttest.Endpoint
	p    connecttest.Protocol
	v    connecttest.HTTP
	i    *connectfaultline.Interceptor
	sb   sandboxpbconnect.SandboxServiceClient
	disc sandboxpbconnect.DiscoveryServiceClient
}

// newEnv serves a server with sandbox "sb-1", snapshot "fss-1", runner "r-1" and the file
// /data/in.txt in sb-1 on tr with HTTP version v, and returns it with clients speaking p
// through an interceptor built from opts (then copts). Inside a synctest bubble, tr must be
// memory and newEnv called inside the bubble.
func newEnv(t testing.TB, tr transport, v connecttest.HTTP, p connecttest.Protocol, opts []connectfaultline.Option,
	copts ...connect.ClientOption) *env {
	t.Helper()
	srv := connecttest.New(sandboxes()...)
	ep := tr.serve(t, srv, v)
	i, err := connectfaultline.New(opts...)
	if err != nil {
		t.Fatalf("New() error = %v", err)
	}
	all := append([]connect.ClientOption{connect.WithInterceptors(i)}, copts...)
	e := &env{srv: srv, ep: ep, p: p, v: v, i: i, sb: ep.SandboxClient(p, all...), disc: ep.DiscoveryClient(p, all...)}
	plain := ep.SandboxClient(p)
	if _, err := plain.WriteFile(context.Background(), connect.NewRequest(&sandboxpb.WriteFileRequest{
		SandboxId: "sb-1", Path: "/data/in.txt", Content: []byte("hello")})); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	srv.Reset()
	return e
}

// sandboxes is the server of every test: sandbox "sb-1" with a log of 8 lines, snapshot
// "fss-1", runner "r-1".
func sandboxes() []sandboxtest.Option {
	return []sandboxtest.Option{sandboxtest.WithSandboxes("sb-1"), sandboxtest.WithSnapshots("fss-1"),
		sandboxtest.WithRunners("r-1"), sandboxtest.WithLog(8, 0)}
}

// client is one HTTP version and protocol on one transport.
type client struct {
	tr transport
	v  connecttest.HTTP
	p  connecttest.Protocol
}

func (c client) String() string { return fmt.Sprintf("%s/%v/%v", c.tr.name, c.v, c.p) }

// eachClient runs f as a subtest for every HTTP version and protocol, on each transport.
func eachClient(t *testing.T, trs []transport, f func(t *testing.T, c client)) {
	t.Helper()
	for _, tr := range trs {
		for _, v := range connecttest.HTTPVersions() {
			for _, p := range connecttest.Protocols() {
				c := client{tr, v, p}
				t.Run(c.String(), func(t *testing.T) { f(t, c) })
			}
		}
	}
}

// inBubble runs f inside a synctest bubble for every HTTP version and protocol, in memory.
func inBubble(t *testing.T, f func(t *testing.T, c client)) {
	t.Helper()
	for _, v := range connecttest.HTTPVersions() {
		for _, p := range connecttest.Protocols() {
			c := client{memory, v, p}
			t.Run(fmt.Sprintf("%v/%v", v, p), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) { f(t, c) })
			})
		}
	}
}

func (c client) env(t testing.TB, opts []connectfaultline.Option, copts ...connect.ClientOption) *env {
	t.Helper()
	return newEnv(t, c.tr, c.v, c.p, opts, copts...)
}

// secondsPolicy is the default policy with backoffs of whole seconds (1s, 2s, 4s, 8s) and no
// jitter, so that waits are exact on a synctest bubble's virtual clock.
func secondsPolicy() retry.Policy {
	p := retry.DefaultPolicy()
	p.InitialBackoff, p.MaxBackoff, p.Jitter, p.HintJitter = time.Second, 8*time.Second, 0, 0
	return p
}

// fastPolicy is the default policy with backoffs of 1 ms, then 2 ms, and no jitter, for
// tests on the real clock.
func fastPolicy() retry.Policy {
	p := retry.DefaultPolicy()
	p.InitialBackoff, p.MaxBackoff, p.Jitter, p.HintJitter = time.Millisecond, 2*time.Millisecond, 0, 0
	return p
}

// attempts returns p with MaxAttempts n.
func attempts(p retry.Policy, n int) retry.Policy {
	p.MaxAttempts = n
	return p
}

// noBudget is the option of a retrier of p without a budget, then opts.
func noBudget(p retry.Policy, opts ...retry.Option) connectfaultline.Option {
	return connectfaultline.WithRetrier(retry.MustNew(p, append([]retry.Option{retry.WithBudget(nil)}, opts...)...))
}

// fast is the options of most tests on the real clock: fastPolicy without a budget.
func fast(opts ...connectfaultline.Option) []connectfaultline.Option {
	return append([]connectfaultline.Option{noBudget(fastPolicy())}, opts...)
}

func unavailable() *status.Status {
	return faultlinetest.Status(codes.Unavailable, "backend restarting")
}

func withHint(d time.Duration) *status.Status {
	return faultlinetest.Status(codes.Unavailable, "backend restarting", faultlinetest.RetryInfo(d))
}

func getSandbox(ctx context.Context, e *env) error {
	_, err := e.sb.GetSandbox(ctx, connect.NewRequest(&sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}))
	return err
}

// headerValues returns, for each recorded call, the values of key in its metadata, "" for
// a call without it.
func headerValues(t testing.TB, mds []metadata.MD, key string) []string {
	t.Helper()
	out := make([]string, len(mds))
	for i, md := range mds {
		switch v := md.Get(key); len(v) {
		case 0:
		case 1:
			out[i] = v[0]
		default:
			t.Errorf("call %d: %s = %q, want at most one value", i+1, key, v)
			out[i] = v[0]
		}
	}
	return out
}

// asErrs returns the *errs.Error in err, failing the test if there is none.
func asErrs(t testing.TB, call string, err error) *errs.Error {
	t.Helper()
	e, ok := errors.AsType[*errs.Error](err)
	if !ok {
		t.Fatalf("%s error = %v (%T), want an *errs.Error in it", call, err, err)
	}
	return e
}

// stopOf returns the stop reason and attempts of err's *retry.Error; 0, 1 for another error.
func stopOf(err error) (retry.StopReason, int) {
	if re, ok := errors.AsType[*retry.Error](err); ok {
		return re.StopReason(), re.Attempts()
	}
	return 0, 1
}

// recvLogs reads a StreamLogs stream to its end and returns the offset of each entry and
// the error that ended it (nil for a clean end).
func recvLogs(ctx context.Context, e *env, req *sandboxpb.StreamLogsRequest) ([]uint64, error) {
	st, err := e.sb.StreamLogs(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var got []uint64
	for st.Receive() {
		got = append(got, st.Msg().GetNextLogOffset()-1)
	}
	return got, st.Err()
}

// upTo returns 0, 1, ..., n-1.
func upTo(n int) []uint64 {
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i)
	}
	return out
}

// recorder keeps every hook event.
type recorder struct {
	mu      sync.Mutex
	retries []retry.RetryEvent
	dones   []retry.DoneEvent
}

func (r *recorder) hooks() retry.Hooks {
	return retry.Hooks{
		OnRetry: func(_ context.Context, ev retry.RetryEvent) {
			r.mu.Lock()
			r.retries = append(r.retries, ev)
			r.mu.Unlock()
		},
		OnDone: func(_ context.Context, ev retry.DoneEvent) { r.mu.Lock(); r.dones = append(r.dones, ev); r.mu.Unlock() },
	}
}

func (r *recorder) events() ([]retry.RetryEvent, []retry.DoneEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.retries), slices.Clone(r.dones)
}

// oneAttempt is the default policy with one attempt: classification only.
func oneAttempt() retry.Policy { return attempts(retry.DefaultPolicy(), 1) }

// drain reads a bidi stream until it ends, returning the stdout chunks and the error that
// ended it (nil for a clean end).
func drain(st *connect.BidiStreamForClient[sandboxpb.ExecStreamRequest, sandboxpb.ExecStreamResponse]) ([]string, error) {
	var out []string
	for {
		m, err := st.Receive()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if o := m.GetOutput(); o != nil {
			out = append(out, string(o.GetData()))
		}
	}
}

// synctestRun runs f inside a synctest bubble.
func synctestRun(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	synctest.Test(t, f)
}
