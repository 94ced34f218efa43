package connectfaultline_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/grpc/codes"

	"github.com/faultline-go/faultline/connectfaultline"
	"github.com/faultline-go/faultline/connectfaultline/internal/connecttest"
	"github.com/faultline-go/faultline/connectfaultline/internal/sandboxpbconnect"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

// inMemory is an HTTP client that serves each request with h itself, in memory: enough for
// unary calls of the Connect protocol.
func inMemory(h http.Handler) *http.Client {
	return &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Result(), nil
	})}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// examplePolicy is the default policy without jitter and with short waits, so that the
// example's output does not depend on the clock.
func examplePolicy() retry.Policy {
	p := retry.DefaultPolicy()
	p.InitialBackoff, p.MaxBackoff, p.Jitter, p.HintJitter = time.Millisecond, 2*time.Millisecond, 0, 0
	return p
}

// A client of the sandbox API gets typed errors and safe retries from one client option.
// The server here asks for a 10ms pause twice, then answers; a missing sandbox is a
// SandboxNotFoundError and still a connect NOT_FOUND.
func Example() {
	srv := connecttest.New(sandboxtest.WithSandboxes("sb-1"))
	srv.FailNext(sandboxpb.SandboxService_GetSandbox_FullMethodName, 2,
		faultlinetest.Status(codes.Unavailable, "runner restarting",
			faultlinetest.ErrorInfo(sandboxtest.Domain, "CWSANDBOX_RUNNER_UNAVAILABLE", nil),
			faultlinetest.RetryInfo(10*time.Millisecond)))
	hooks := retry.Hooks{OnRetry: func(_ context.Context, ev retry.RetryEvent) {
		var e *errs.Error
		if errors.As(ev.Err, &e) {
			fmt.Printf("attempt %d failed (%v), retrying after the server's hint: %v\n", ev.Attempt, e.Kind(), ev.FromHint)
		}
	}}
	client := sandboxpbconnect.NewSandboxServiceClient(inMemory(srv), "http://sandbox.example",
		connectfaultline.ClientOption(connectfaultline.WithRetrier(retry.MustNew(examplePolicy(), retry.WithHooks(hooks)))))

	ctx := context.Background()
	res, err := client.GetSandbox(ctx, connect.NewRequest(&sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}))
	fmt.Println(res.Msg.GetSandboxId(), err)

	_, err = client.GetSandbox(ctx, connect.NewRequest(&sandboxpb.GetSandboxRequest{SandboxId: "sb-2"}))
	fmt.Println(errors.Is(err, errs.ErrSandboxNotFound), connect.CodeOf(err))
	// Output:
	// attempt 1 failed (SandboxUnavailableError), retrying after the server's hint: true
	// attempt 2 failed (SandboxUnavailableError), retrying after the server's hint: true
	// sb-1 <nil>
	// true not_found
}

// New reports a configuration that cannot work; the Interceptor it returns goes to
// connect.WithInterceptors.
func ExampleNew() {
	p := examplePolicy()
	p.MaxRetryDelay = 0 // would refuse every hinted retry
	_, err := connectfaultline.New(connectfaultline.WithMethodPolicy("/coreweave.sandbox.v1.SandboxService/", p))
	fmt.Println(errors.Is(err, retry.ErrInvalidPolicy))

	i, err := connectfaultline.New(connectfaultline.WithRetrier(retry.MustNew(examplePolicy())))
	if err != nil {
		panic(err)
	}
	srv := connecttest.New(sandboxtest.WithSandboxes("sb-1"))
	client := sandboxpbconnect.NewSandboxServiceClient(inMemory(srv), "http://sandbox.example", connect.WithInterceptors(i))
	res, err := client.GetSandbox(context.Background(), connect.NewRequest(&sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}))
	fmt.Println(res.Msg.GetSandboxId(), err)
	// Output:
	// true
	// sb-1 <nil>
}

// Exec runs the user's command, so it is never repeated, not even when the server declined
// the work. Declared not idempotent, a failure the server declined (RetryInfo) is retried,
// and one that may have run the command still is not.
func ExampleWithIdempotency() {
	exec := func(opts ...connectfaultline.Option) {
		srv := connecttest.New(sandboxtest.WithSandboxes("sb-1"))
		srv.FailNext(sandboxpb.SandboxService_Exec_FullMethodName, 1,
			faultlinetest.Status(codes.Unavailable, "runner busy", faultlinetest.RetryInfo(time.Millisecond)))
		opts = append([]connectfaultline.Option{connectfaultline.WithRetrier(retry.MustNew(examplePolicy()))}, opts...)
		client := sandboxpbconnect.NewSandboxServiceClient(inMemory(srv), "http://sandbox.example", connectfaultline.ClientOption(opts...))
		_, err := client.Exec(context.Background(), connect.NewRequest(&sandboxpb.ExecRequest{SandboxId: "sb-1", Command: []string{"make"}}))
		var re *retry.Error
		if errors.As(err, &re) {
			fmt.Printf("error after %d attempt(s): %v; command runs: %d\n", re.Attempts(), re.StopReason(), srv.ExecRuns())
			return
		}
		fmt.Printf("error %v; command runs: %d\n", err, srv.ExecRuns())
	}
	exec()
	exec(connectfaultline.WithIdempotency(sandboxpb.SandboxService_Exec_FullMethodName, retry.NotIdempotent))
	// Output:
	// error after 1 attempt(s): not safe to repeat; command runs: 0
	// error <nil>; command runs: 1
}
