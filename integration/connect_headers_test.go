package integration_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/faultline-go/faultline/connectfaultline"
	"github.com/faultline-go/faultline/internal/testpb"
	"github.com/faultline-go/faultline/retry"
)

// headersThenFail is a grpc-go server whose Do (a method of unknown idempotency) sends its
// response headers (the handler ran) and then fails with a bare UNAVAILABLE.
type headersThenFail struct {
	testpb.UnimplementedEchoServer
	calls atomic.Int32
}

func (s *headersThenFail) Do(ctx context.Context, _ *testpb.EchoRequest) (*testpb.EchoResponse, error) {
	s.calls.Add(1)
	_ = grpc.SendHeader(ctx, metadata.Pairs("x-handled", "1"))
	return nil, status.Error(codes.Unavailable, "backend went away")
}

// TestConnectUnaryHeadersCommit (safety.md 1, "Response headers commit a unary call"): a
// connect-go client speaking gRPC to a grpc-go server whose handler sent its response
// headers and then failed does not repeat a call of unknown idempotency, as the grpc-go
// interceptors do not. (connect-go does not tell a status sent with the response headers
// from one sent alone: on connect-go every status the server sent counts as committed.)
func TestConnectUnaryHeadersCommit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		impl := &headersThenFail{}
		gs := grpc.NewServer()
		testpb.RegisterEchoServer(gs, impl)
		lis := bufconn.Listen(1 << 20)
		go func() { _ = gs.Serve(lis) }()
		defer func() { gs.Stop(); _ = lis.Close() }()
		var protocols http.Protocols
		protocols.SetUnencryptedHTTP2(true)
		tr := &http.Transport{Protocols: &protocols, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return lis.DialContext(ctx) }}
		defer tr.CloseIdleConnections()
		p := retry.DefaultPolicy()
		p.InitialBackoff, p.Jitter = time.Second, 0
		ic, err := connectfaultline.New(connectfaultline.WithRetrier(retry.MustNew(p, retry.WithBudget(nil))))
		if err != nil {
			t.Fatal(err)
		}
		c := connect.NewClient[testpb.EchoRequest, testpb.EchoResponse](&http.Client{Transport: tr},
			"http://memory"+testpb.Echo_Do_FullMethodName, connect.WithGRPC(), connect.WithInterceptors(ic))
		_, err = c.CallUnary(context.Background(), connect.NewRequest(&testpb.EchoRequest{Text: "x"}))
		if connect.CodeOf(err) != connect.CodeUnavailable {
			t.Errorf("Do() = %v, want UNAVAILABLE", err)
		}
		if re, ok := errors.AsType[*retry.Error](err); !ok || re.StopReason() != retry.StopUnsafe {
			t.Errorf("Do() = %v, want a *retry.Error stopped as %v", err, retry.StopUnsafe)
		}
		if n := impl.calls.Load(); n != 1 {
			t.Errorf("server calls = %d, want 1: the server sent response headers before failing", n)
		}
	})
}
