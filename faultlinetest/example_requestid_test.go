package faultlinetest_test

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

// A test that a create whose answer was lost is retried under one request id: the sandbox
// is created, the connection drops before the answer (SendThenFail on a unary call), and
// the retry carries the same request id the interceptor generated, so the server answers
// it from its first result and one sandbox exists.
func Example_requestID() {
	const create = sandboxpb.SandboxService_CreateSandbox_FullMethodName
	var inj faultlinetest.Injector
	inj.Script(create, faultlinetest.SendThenFail(0, faultlinetest.Status(codes.Unavailable, "connection reset")))

	srv := sandboxtest.New() // deduplicates creates by request_id, counts sandboxes
	s := faultlinetest.NewServer(func(gs *grpc.Server) { srv.Register(gs) }, inj.ServerOptions()...)
	defer s.Close()
	policy := retry.DefaultPolicy()
	policy.InitialBackoff, policy.Jitter = time.Millisecond, 0
	conn, err := s.Dial(interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(policy)))...)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()

	req := &sandboxpb.CreateSandboxRequest{} // no request_id: the interceptor sets one
	if _, err := sandboxpb.NewSandboxServiceClient(conn).CreateSandbox(context.Background(), req); err != nil {
		fmt.Println(err)
		return
	}
	var ids []string
	for _, c := range inj.Calls(create) {
		ids = append(ids, c.Requests[0].(*sandboxpb.CreateSandboxRequest).GetRequestId())
	}
	fmt.Println("attempts:", len(ids))
	fmt.Println("one generated request id:", ids[0] != "" && ids[0] == ids[1])
	fmt.Println("caller's request untouched:", req.GetRequestId() == "")
	fmt.Println("sandboxes created:", srv.SandboxesCreated())
	// Output:
	// attempts: 2
	// one generated request id: true
	// caller's request untouched: true
	// sandboxes created: 1
}
