package faultlinetest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/retry"
)

// A client with faultline's interceptors rides out two UNAVAILABLE answers carrying a
// RetryInfo, against grpc's own health service. Examples run on the real clock, so the
// hint here is a millisecond; in a test, inside testing/synctest, use the real 5 s hint:
// it then takes no time (see the package documentation).
func Example() {
	var inj faultlinetest.Injector
	inj.FailNext(healthCheck, 2, faultlinetest.Status(codes.Unavailable, "runner unavailable",
		faultlinetest.ErrorInfo("cwsandbox.com", "CWSANDBOX_RUNNER_UNAVAILABLE", nil),
		faultlinetest.RetryInfo(time.Millisecond)))

	hs := health.NewServer()
	srv := faultlinetest.NewServer(func(s *grpc.Server) { healthpb.RegisterHealthServer(s, hs) },
		inj.ServerOptions()...)
	defer srv.Close()
	conn, err := srv.Dial(interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(noJitter())))...)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	res, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	fmt.Println(res.GetStatus(), err)
	for i, c := range inj.Calls(healthCheck) {
		fmt.Printf("call %d: x-retry-attempt %q\n", i+1, c.Metadata.Get("x-retry-attempt"))
	}
	// Output:
	// SERVING <nil>
	// call 1: x-retry-attempt []
	// call 2: x-retry-attempt ["1"]
	// call 3: x-retry-attempt ["2"]
}

// A poller that waits for a sandbox to run survives GetSandbox's UNAVAILABLE with a
// RetryInfo: the interceptor waits the hint and retries, the poller never sees it.
// TestPollerSurvivesRetryInfo runs the same with a 5 s hint inside testing/synctest.
func Example_poller() {
	var inj faultlinetest.Injector
	inj.FailNext(sandboxpb.SandboxService_GetSandbox_FullMethodName, 1,
		faultlinetest.Status(codes.Unavailable, "runner unavailable",
			faultlinetest.ErrorInfo("cwsandbox.com", "CWSANDBOX_RUNNER_UNAVAILABLE", nil),
			faultlinetest.RetryInfo(5*time.Millisecond)))
	sandboxes := &sandboxServer{states: []sandboxpb.SandboxStatus_State{
		sandboxpb.SandboxStatus_STATE_CREATING, sandboxpb.SandboxStatus_STATE_RUNNING}}
	srv := faultlinetest.NewServer(registerSandbox(sandboxes), inj.ServerOptions()...)
	defer srv.Close()
	conn, err := srv.Dial(interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(noJitter())))...)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	polls, err := waitRunning(context.Background(), sandboxpb.NewSandboxServiceClient(conn), "sb-1", time.Millisecond)
	fmt.Println("running after", polls, "polls, error", err)
	fmt.Println("server calls:", inj.Count(sandboxpb.SandboxService_GetSandbox_FullMethodName))
	// Output:
	// running after 2 polls, error <nil>
	// server calls: 3
}

// A command line tool prints every field violation of an INVALID_ARGUMENT.
func Example_cli() {
	var inj faultlinetest.Injector
	inj.FailNext(sandboxpb.SandboxService_CreateSandbox_FullMethodName, 1,
		faultlinetest.Status(codes.InvalidArgument, "invalid sandbox",
			faultlinetest.BadRequest(
				faultlinetest.FieldViolation("sandbox.spec.image", "must not be empty"),
				faultlinetest.FieldViolation("sandbox.spec.tags[0]", "must be lower case"))))
	srv := faultlinetest.NewServer(registerSandbox(&sandboxServer{}), inj.ServerOptions()...)
	defer srv.Close()
	conn, err := srv.Dial(interceptor.DialOptions()...)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	_, err = sandboxpb.NewSandboxServiceClient(conn).CreateSandbox(context.Background(),
		&sandboxpb.CreateSandboxRequest{Sandbox: &sandboxpb.Sandbox{Spec: &sandboxpb.SandboxSpec{Tags: []string{"GPU"}}}})
	printError(os.Stdout, err)
	// Output:
	// error: InvalidArgument (SandboxValidationError)
	//   sandbox.spec.image: must not be empty
	//   sandbox.spec.tags[0]: must be lower case
}

func ExampleStatus() {
	st := faultlinetest.Status(codes.Unavailable, "runner unavailable",
		faultlinetest.ErrorInfo("cwsandbox.com", "CWSANDBOX_RUNNER_UNAVAILABLE", map[string]string{"runner": "r-1"}),
		faultlinetest.RetryInfo(2*time.Second),
		faultlinetest.LocalizedMessage("en-US", "The runner is restarting."))
	for _, d := range st.Details() {
		fmt.Printf("%T\n", d)
	}

	e := classify.Classify(st.Err())
	delay, _ := e.RetryDelay()
	fmt.Println(e.Kind(), e.Reason(), e.Metadata()["runner"], delay)
	// Output:
	// *errdetails.ErrorInfo
	// *errdetails.RetryInfo
	// *errdetails.LocalizedMessage
	// SandboxUnavailableError CWSANDBOX_RUNNER_UNAVAILABLE r-1 2s
}

// notFoundHealth is a fake health service whose Check fails as a real server would.
type notFoundHealth struct {
	healthpb.UnimplementedHealthServer
}

func (notFoundHealth) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	return nil, faultlinetest.Error(codes.NotFound, "unknown service",
		faultlinetest.ResourceInfo("service", req.GetService(), "", "not registered"))
}

// Error is the status as an error, for fake servers and stubs.
func ExampleError() {
	srv := faultlinetest.NewServer(func(s *grpc.Server) { healthpb.RegisterHealthServer(s, notFoundHealth{}) })
	defer srv.Close()
	conn, err := srv.Dial()
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	_, err = healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "billing"})
	st := status.Convert(err)
	fmt.Println(st.Code(), st.Message())
	for _, d := range st.Details() {
		if ri, ok := d.(*errdetails.ResourceInfo); ok {
			fmt.Println(ri.GetResourceType(), ri.GetResourceName(), ri.GetDescription())
		}
	}
	fmt.Println(faultlinetest.Error(codes.OK, "") == nil)
	// Output:
	// NotFound unknown service
	// service billing not registered
	// true
}

// A script per method: fail, fail, succeed; other methods are untouched. The recorded
// calls keep each request.
func ExampleInjector() {
	var inj faultlinetest.Injector
	inj.Script(healthCheck,
		faultlinetest.Fail(faultlinetest.Status(codes.Unavailable, "restarting")),
		faultlinetest.Fail(faultlinetest.Status(codes.ResourceExhausted, "busy")),
		faultlinetest.Pass())
	hs := health.NewServer()
	srv := faultlinetest.NewServer(func(s *grpc.Server) { healthpb.RegisterHealthServer(s, hs) },
		inj.ServerOptions()...)
	defer srv.Close()
	conn, err := srv.Dial() // no retries: the caller sees every answer
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	client := healthpb.NewHealthClient(conn)
	for _, service := range []string{"a", "b", "c", "d"} {
		_, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{Service: service})
		fmt.Println(service, status.Code(err))
	}
	_, err = client.List(context.Background(), &healthpb.HealthListRequest{})
	fmt.Println("List", status.Code(err))

	for _, c := range inj.Calls(healthCheck) {
		fmt.Print(c.Requests[0].(*healthpb.HealthCheckRequest).GetService(), " ")
	}
	fmt.Println("- calls:", inj.Count(healthCheck), inj.Count("/grpc.health.v1.Health/List"))
	// Output:
	// a Unavailable
	// b ResourceExhausted
	// c NotFound
	// d NotFound
	// List OK
	// a b c d - calls: 4 1
}

// A server stream that sends one message, then fails: grpc's health Watch sends the
// current status and waits; SendThenFail ends it after that message.
func ExampleSendThenFail() {
	var inj faultlinetest.Injector
	inj.Script("/grpc.health.v1.Health/Watch",
		faultlinetest.SendThenFail(1, faultlinetest.Status(codes.Unavailable, "connection reset")))
	hs := health.NewServer()
	srv := faultlinetest.NewServer(func(s *grpc.Server) { healthpb.RegisterHealthServer(s, hs) },
		inj.ServerOptions()...)
	defer srv.Close()
	conn, err := srv.Dial()
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	stream, err := healthpb.NewHealthClient(conn).Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		log.Fatal(err)
	}
	for {
		res, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fmt.Println(status.Code(err), status.Convert(err).Message())
			break
		}
		fmt.Println(res.GetStatus())
	}
	// Output:
	// SERVING
	// Unavailable connection reset
}

// Stall holds a call until the caller gives up.
func ExampleStall() {
	var inj faultlinetest.Injector
	inj.Script(healthCheck, faultlinetest.Stall())
	hs := health.NewServer()
	srv := faultlinetest.NewServer(func(s *grpc.Server) { healthpb.RegisterHealthServer(s, hs) },
		inj.ServerOptions()...)
	defer srv.Close()
	conn, err := srv.Dial()
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	fmt.Println(status.Code(err))
	// Output:
	// DeadlineExceeded
}

// A slow server: every call waits before its handler runs.
func ExampleStep_After() {
	var inj faultlinetest.Injector
	inj.Always(healthCheck, faultlinetest.Pass().After(50*time.Millisecond))
	hs := health.NewServer()
	srv := faultlinetest.NewServer(func(s *grpc.Server) { healthpb.RegisterHealthServer(s, hs) },
		inj.ServerOptions()...)
	defer srv.Close()
	conn, err := srv.Dial()
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	defer cancel()
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{})
	fmt.Println("in a hurry:", status.Code(err))
	res, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{})
	fmt.Println("patient:", res.GetStatus(), err)
	// Output:
	// in a hurry: DeadlineExceeded
	// patient: SERVING <nil>
}

func ExampleNewServer() {
	hs := health.NewServer()
	hs.SetServingStatus("billing", healthpb.HealthCheckResponse_NOT_SERVING)
	srv := faultlinetest.NewServer(func(s *grpc.Server) { healthpb.RegisterHealthServer(s, hs) })
	defer srv.Close()
	conn, err := srv.Dial()
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()

	res, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "billing"})
	fmt.Println(res.GetStatus(), err)
	// Output:
	// NOT_SERVING <nil>
}
