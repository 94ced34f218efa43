package connecttest_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"go.uber.org/goleak"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/faultline-go/faultline/connectfaultline/internal/connecttest"
	"github.com/faultline-go/faultline/connectfaultline/internal/sandboxpbconnect"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	mCreate    = sandboxpb.SandboxService_CreateSandbox_FullMethodName
	mGet       = sandboxpb.SandboxService_GetSandbox_FullMethodName
	mLogs      = sandboxpb.SandboxService_StreamLogs_FullMethodName
	mStreamExe = sandboxpb.SandboxService_StreamExec_FullMethodName
	mExec      = sandboxpb.SandboxService_Exec_FullMethodName
	mGetRunner = sandboxpb.DiscoveryService_GetAvailableRunner_FullMethodName

	callTimeout = time.Minute
)

// callCtx returns a context for the test's calls that ends after callTimeout, so
// that a call that should have returned fails the test instead of hanging it.
func callCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), callTimeout)
	t.Cleanup(cancel)
	return ctx
}

// A transport serves a handler for a test: real TCP or in memory.
type transport struct {
	name  string
	serve func(testing.TB, http.Handler, connecttest.HTTP) *connecttest.Endpoint
}

var (
	tcp       = transport{"tcp", connecttest.Serve}
	memory    = transport{"memory", connecttest.ServeMemory}
	bothPaths = []transport{tcp, memory}
)

// env is a connecttest server and clients of one protocol on one endpoint.
type env struct {
	srv  *connecttest.Server
	ep   *connecttest.Endpoint
	p    connecttest.Protocol
	sb   sandboxpbconnect.SandboxServiceClient
	disc sandboxpbconnect.DiscoveryServiceClient
}

// newEnv serves a Server with sandbox "sb-1", snapshot "fss-1" and runner "r-1"
// (plus opts) on tr with HTTP version v, and returns it with clients speaking p.
func newEnv(t *testing.T, tr transport, v connecttest.HTTP, p connecttest.Protocol, opts ...sandboxtest.Option) *env {
	t.Helper()
	all := append([]sandboxtest.Option{sandboxtest.WithSandboxes("sb-1"), sandboxtest.WithSnapshots("fss-1"),
		sandboxtest.WithRunners("r-1")}, opts...)
	srv := connecttest.New(all...)
	ep := tr.serve(t, srv, v)
	return &env{srv: srv, ep: ep, p: p, sb: ep.SandboxClient(p), disc: ep.DiscoveryClient(p)}
}

// eachClient runs f as a subtest for every HTTP version and protocol, on each
// transport given.
func eachClient(t *testing.T, trs []transport, f func(t *testing.T, tr transport, v connecttest.HTTP, p connecttest.Protocol)) {
	t.Helper()
	for _, tr := range trs {
		for _, v := range connecttest.HTTPVersions() {
			for _, p := range connecttest.Protocols() {
				t.Run(fmt.Sprintf("%s/%v/%v", tr.name, v, p), func(t *testing.T) { f(t, tr, v, p) })
			}
		}
	}
}

// connectError returns err as a *connect.Error, failing the test if it is not one.
func connectError(t *testing.T, call string, err error) *connect.Error {
	t.Helper()
	ce, ok := errors.AsType[*connect.Error](err)
	if !ok {
		t.Fatalf("%s error = %v (%T), want a *connect.Error", call, err, err)
	}
	return ce
}

// rebuild returns the google.rpc.Status that a connect error's Code, Message and
// Details carry, built from each detail's Type and Bytes: what a client-side
// classifier sees, on any protocol.
func rebuild(ce *connect.Error) *spb.Status {
	p := &spb.Status{Code: int32(ce.Code()), Message: ce.Message()}
	for _, d := range ce.Details() {
		p.Details = append(p.Details, &anypb.Any{TypeUrl: "type.googleapis.com/" + d.Type(), Value: d.Bytes()})
	}
	return p
}

func getSandbox(ctx context.Context, e *env, id string) error {
	_, err := e.sb.GetSandbox(ctx, connect.NewRequest(&sandboxpb.GetSandboxRequest{SandboxId: id}))
	return err
}

// recvLogs reads a StreamLogs stream to its end and returns its entries and the
// error that ended it (nil for a clean end).
func recvLogs(ctx context.Context, e *env, req *sandboxpb.StreamLogsRequest) ([]*sandboxpb.LogEntry, error) {
	st, err := e.sb.StreamLogs(ctx, connect.NewRequest(req))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var got []*sandboxpb.LogEntry
	for st.Receive() {
		got = append(got, st.Msg())
	}
	return got, st.Err()
}

func entry(off uint64) *sandboxpb.LogEntry {
	return &sandboxpb.LogEntry{
		Data:          fmt.Appendf(nil, "line %d\n", off),
		LogSessionId:  "logs-sb-1",
		NextLogOffset: off + 1,
	}
}
