package interceptor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

func ExampleUnary() {
	srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
	lis, stop := srv.StartBufconn()
	defer stop()
	conn, err := sandboxtest.DialBufconn(lis,
		grpc.WithChainUnaryInterceptor(interceptor.Unary(interceptor.WithRetrier(retry.MustNew(millisecondPolicy())))))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := sandboxpb.NewSandboxServiceClient(conn)
	ctx := context.Background()
	const method = sandboxpb.SandboxService_GetSandbox_FullMethodName

	// Two transient failures, with a server hint: the caller sees only the success.
	srv.FailNext(method, 2, faultlinetest.Status(codes.Unavailable, "runner unavailable",
		faultlinetest.ErrorInfo("cwsandbox.com", "CWSANDBOX_RUNNER_UNAVAILABLE", nil),
		faultlinetest.RetryInfo(time.Millisecond)))
	sb, err := client.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
	fmt.Println("got", sb.GetSandboxId(), "error", err, "server calls", srv.Calls(method))

	// A failure that is not transient: classified, not retried.
	_, err = client.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-404"})
	var e *errs.Error
	if errors.As(err, &e) {
		fmt.Println(e.Kind(), "for", e.Resource().SandboxID, "code", status.Code(err), "server calls", srv.Calls(method))
	}

	// A server that stays down: the retries stop once the client is failing (the
	// budget's floor closes: here at three more failures than successes), with the last
	// error. A fleet of such clients stays within 20% of its calls in retries.
	srv.Reset()
	srv.FailAlways(method, faultlinetest.Status(codes.Unavailable, "backend restarting"))
	_, err = client.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
	var re *retry.Error
	if errors.As(err, &re) {
		fmt.Printf("unavailable: %v, %d attempts, %v; server calls %d\n",
			errors.Is(err, errs.ErrSandboxUnavailable), re.Attempts(), re.StopReason(), srv.Calls(method))
	}
	// Output:
	// got sb-1 error <nil> server calls 3
	// SandboxNotFoundError for sb-404 code NotFound server calls 4
	// unavailable: true, 2 attempts, retry budget exhausted; server calls 2
}

func ExampleStream() {
	srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
	lis, stop := srv.StartBufconn()
	defer stop()
	conn, err := sandboxtest.DialBufconn(lis,
		grpc.WithChainStreamInterceptor(interceptor.Stream(interceptor.WithRetrier(retry.MustNew(millisecondPolicy())))))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := sandboxpb.NewSandboxServiceClient(conn)
	ctx := context.Background()
	const method = sandboxpb.SandboxService_StreamLogs_FullMethodName

	read := func() {
		st, err := client.StreamLogs(ctx, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
		if err != nil {
			log.Fatal(err)
		}
		for {
			entry, err := st.Recv()
			if err == io.EOF {
				fmt.Println("end of stream")
				return
			}
			if err != nil {
				var e *errs.Error
				errors.As(err, &e)
				_, retried := err.(*retry.Error)
				fmt.Println("error:", e.Kind(), "retried:", retried)
				return
			}
			fmt.Printf("%q\n", entry.GetData())
		}
	}

	// The stream fails before its first entry: it is retried, invisibly.
	srv.ScriptStreamLogs(
		sandboxtest.StreamLogsScript{Err: faultlinetest.Status(codes.Unavailable, "stream reset")},
		sandboxtest.StreamLogsScript{Entries: 2})
	read()
	fmt.Println("server calls", srv.Calls(method))

	// The stream fails after two entries: it has committed, so it is not started over;
	// StreamLogs is resumed from the last entry's cursor, and no entry is delivered twice.
	srv.Reset()
	srv.ScriptStreamLogs(
		sandboxtest.StreamLogsScript{Entries: 2, Err: faultlinetest.Status(codes.Unavailable, "stream reset")},
		sandboxtest.StreamLogsScript{Entries: 2})
	read()
	fmt.Println("server calls", srv.Calls(method))
	// Output:
	// "line 0\n"
	// "line 1\n"
	// end of stream
	// server calls 2
	// "line 0\n"
	// "line 1\n"
	// "line 2\n"
	// "line 3\n"
	// end of stream
	// server calls 2
}

func ExampleDialOptions() {
	srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
	lis, stop := srv.StartBufconn()
	defer stop()
	// Both interceptors, sharing one budget, with grpc-go's own retries off; GetSandbox
	// gets three attempts, the rest of the service the default five. (The budget is off
	// here so that the example shows the policies alone: with it, a client whose calls keep
	// failing soon stops retrying.)
	three := millisecondPolicy()
	three.MaxAttempts = 3
	conn, err := sandboxtest.DialBufconn(lis, interceptor.DialOptions(
		interceptor.WithRetrier(retry.MustNew(millisecondPolicy(), retry.WithBudget(nil))),
		interceptor.WithMethodPolicy(sandboxpb.SandboxService_GetSandbox_FullMethodName, three))...)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := sandboxpb.NewSandboxServiceClient(conn)
	ctx := context.Background()

	down := faultlinetest.Status(codes.Unavailable, "backend restarting")
	srv.FailAlways(sandboxpb.SandboxService_GetSandbox_FullMethodName, down)
	srv.FailAlways(sandboxpb.SandboxService_ReadFile_FullMethodName, down)
	_, err = client.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
	fmt.Println("GetSandbox:", status.Code(err), "server calls", srv.Calls(sandboxpb.SandboxService_GetSandbox_FullMethodName))
	_, err = client.ReadFile(ctx, &sandboxpb.ReadFileRequest{SandboxId: "sb-1", Path: "/etc/motd"})
	var e *errs.Error
	errors.As(err, &e)
	fmt.Println("ReadFile:", e.Kind(), e.Resource().FilePath, "server calls", srv.Calls(sandboxpb.SandboxService_ReadFile_FullMethodName))

	// Each retry says which it is.
	for i, md := range srv.Metadata(sandboxpb.SandboxService_GetSandbox_FullMethodName) {
		fmt.Printf("attempt %d: x-retry-attempt %q\n", i+1, md.Get("x-retry-attempt"))
	}
	// Output:
	// GetSandbox: Unavailable server calls 3
	// ReadFile: SandboxUnavailableError /etc/motd server calls 5
	// attempt 1: x-retry-attempt []
	// attempt 2: x-retry-attempt ["1"]
	// attempt 3: x-retry-attempt ["2"]
}

func ExampleWithCallPolicy() {
	srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
	lis, stop := srv.StartBufconn()
	defer stop()
	// The budget is off so that the example shows the policies alone.
	conn, err := sandboxtest.DialBufconn(lis, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(millisecondPolicy(), retry.WithBudget(nil))))...)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := sandboxpb.NewSandboxServiceClient(conn)
	ctx := context.Background()
	const method = sandboxpb.SandboxService_GetSandbox_FullMethodName
	srv.FailAlways(method, faultlinetest.Status(codes.Unavailable, "backend restarting"))

	// Make the option once and reuse it: then it costs nothing per call.
	patient := millisecondPolicy()
	patient.MaxAttempts = 8
	withPatience := interceptor.WithCallPolicy(patient)

	for _, c := range []struct {
		name string
		opts []grpc.CallOption
	}{
		{"default policy", nil},
		{"WithCallPolicy(8 attempts)", []grpc.CallOption{withPatience}},
		{"WithoutRetry", []grpc.CallOption{interceptor.WithoutRetry()}},
	} {
		before := srv.Calls(method)
		_, err := client.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}, c.opts...)
		fmt.Println(c.name+":", errors.Is(err, errs.ErrSandboxUnavailable), "server calls", srv.Calls(method)-before)
	}
	// Output:
	// default policy: true server calls 5
	// WithCallPolicy(8 attempts): true server calls 8
	// WithoutRetry: true server calls 1
}

// A server restart: while the connection is down, a retry waits for it to come back
// rather than failing fast, and an attempt that was never sent spends no retry budget.
func ExampleDialOptions_restart() {
	srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
	serve := func(lis net.Listener) *grpc.Server {
		gs := grpc.NewServer(srv.ServerOptions()...) // with the options that count calls
		srv.Register(gs)
		go gs.Serve(lis)
		return gs
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	gs := serve(lis)
	conn, err := grpc.NewClient(lis.Addr().String(), append(interceptor.DialOptions(),
		grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := sandboxpb.NewSandboxServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}); err != nil {
		log.Fatal(err)
	}

	gs.Stop() // the server goes away: its connections close, new ones are refused
	back := make(chan *grpc.Server)
	go func() {
		time.Sleep(300 * time.Millisecond)
		lis, err := net.Listen("tcp", lis.Addr().String()) // the same address
		if err != nil {
			log.Fatal(err)
		}
		back <- serve(lis)
	}()
	_, err = client.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
	defer (<-back).Stop()
	fmt.Println("GetSandbox across the restart:", err)
	fmt.Println("server calls:", srv.Calls(sandboxpb.SandboxService_GetSandbox_FullMethodName))
	// Output:
	// GetSandbox across the restart: <nil>
	// server calls: 2
}
