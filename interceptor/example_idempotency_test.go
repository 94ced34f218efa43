package interceptor_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

// Exec runs the user's command, so by default it is never repeated, not even when the server
// declined it. Declaring it NotIdempotent lets the server's word count: a failure with
// RetryInfo (or a trusted transient reason) is retried, one that may have run the command (a
// bare UNAVAILABLE) still is not.
func ExampleWithIdempotency() {
	const exec = sandboxpb.SandboxService_Exec_FullMethodName
	declined := faultlinetest.Status(codes.Unavailable, "runner busy", faultlinetest.RetryInfo(time.Millisecond))
	cmd := &sandboxpb.ExecRequest{SandboxId: "sb-1", Command: []string{"make", "test"}}
	for _, opts := range [][]interceptor.Option{
		nil,
		{interceptor.WithIdempotency(exec, retry.NotIdempotent)},
	} {
		srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
		lis, stop := srv.StartBufconn()
		conn, err := sandboxtest.DialBufconn(lis, interceptor.DialOptions(append(opts, interceptor.WithRetrier(retry.MustNew(millisecondPolicy())))...)...)
		if err != nil {
			log.Fatal(err)
		}
		client := sandboxpb.NewSandboxServiceClient(conn)

		srv.FailNext(exec, 1, declined) // the server declined the first attempt
		_, err = client.Exec(context.Background(), cmd)
		fmt.Printf("declined: error %v, server calls %d, commands run %d\n", err != nil, srv.Calls(exec), srv.ExecRuns())

		srv.Reset()
		srv.FailAfterNext(exec, 1, faultlinetest.Status(codes.Unavailable, "connection reset")) // ran, then lost
		_, err = client.Exec(context.Background(), cmd)
		fmt.Printf("ambiguous: error %v, server calls %d, commands run %d\n", err != nil, srv.Calls(exec), srv.ExecRuns())

		conn.Close()
		stop()
	}
	// Output:
	// declined: error true, server calls 1, commands run 0
	// ambiguous: error true, server calls 1, commands run 1
	// declined: error false, server calls 2, commands run 1
	// ambiguous: error true, server calls 1, commands run 1
}
