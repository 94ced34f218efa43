package interceptor_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

// A client that configures grpc-go's retries in a service config keeps them: the same string
// goes to grpc.WithDefaultServiceConfig (grpc-go keeps load balancing, timeouts,
// waitForReady) and to WithServiceConfig (faultline takes the retry parts). The waits follow
// the config's backoff, with jitter, so the example prints attempts and codes only.
func ExampleWithServiceConfig() {
	const sc = `{"methodConfig": [{
		"name": [{"service": "coreweave.sandbox.v1.SandboxService"}],
		"retryPolicy": {"maxAttempts": 3, "initialBackoff": "0.001s", "maxBackoff": "0.002s",
			"backoffMultiplier": 2, "retryableStatusCodes": ["UNAVAILABLE", "ABORTED"]}}]}`
	const (
		get  = sandboxpb.SandboxService_GetSandbox_FullMethodName
		exec = sandboxpb.SandboxService_Exec_FullMethodName
	)
	sandboxes := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
	var inj faultlinetest.Injector
	srv := faultlinetest.NewServer(func(gs *grpc.Server) { sandboxes.Register(gs) }, inj.ServerOptions()...)
	defer srv.Close()

	s, err := interceptor.New(interceptor.WithServiceConfig(sc)) // fails on a config grpc-go would refuse
	if err != nil {
		log.Fatal(err)
	}
	conn, err := srv.Dial(append(s.DialOptions(), grpc.WithDefaultServiceConfig(sc))...)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := sandboxpb.NewSandboxServiceClient(conn)
	ctx := context.Background()

	// Listed codes are retried, up to maxAttempts.
	inj.Script(get, faultlinetest.Fail(status.New(codes.Unavailable, "restarting")),
		faultlinetest.Fail(status.New(codes.Aborted, "conflict")))
	_, err = client.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
	fmt.Println("GetSandbox:", status.Code(err), "after", inj.Count(get), "attempts")

	// A code the config does not list is not.
	inj.Reset()
	inj.FailNext(get, 1, status.New(codes.FailedPrecondition, "not yet"))
	_, err = client.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
	fmt.Println("GetSandbox:", status.Code(err), "after", inj.Count(get), "attempt")

	// faultline's safety rules stay: Exec runs a command and is never repeated.
	inj.FailNext(exec, 1, status.New(codes.Unavailable, "restarting"))
	_, err = client.Exec(ctx, &sandboxpb.ExecRequest{SandboxId: "sb-1", Command: []string{"make"}})
	var re *retry.Error
	if errors.As(err, &re) {
		fmt.Println("Exec:", status.Code(err), "after", inj.Count(exec), "attempt:", re.StopReason())
	}

	// What grpc-go would refuse, New refuses, naming the field.
	_, err = interceptor.New(interceptor.WithServiceConfig(`{"methodConfig": [{"name": [{}],
		"retryPolicy": {"maxAttempts": 3, "initialBackoff": "100ms"}}]}`))
	fmt.Println(errors.Is(err, interceptor.ErrInvalidServiceConfig))
	fmt.Println(err)
	// Output:
	// GetSandbox: OK after 3 attempts
	// GetSandbox: FailedPrecondition after 1 attempt
	// Exec: Unavailable after 1 attempt: not safe to repeat
	// true
	// interceptor: invalid service config: methodConfig[0].retryPolicy.initialBackoff: got "100ms", want a duration string like "1.5s" (seconds are not a whole number)
}
