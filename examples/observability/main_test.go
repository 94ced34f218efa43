package main

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// The logging interceptor after ours logs all three attempts; the one before ours logs the
// call once; the retry hooks log each wait with its source, the recovery, and a NOT_FOUND at
// Debug, never the ErrorInfo metadata (the "token" the server sent).
func Example_logs() {
	_ = runLogs(os.Stdout)
	// Output:
	// level=WARN msg="finished call" layer=attempt protocol=grpc grpc.component=client grpc.service=coreweave.sandbox.v1.SandboxService grpc.method=GetSandbox grpc.method_type=unary grpc.code=Unavailable grpc.error="rpc error: code = Unavailable desc = runner is restarting"
	// level=INFO msg="retry scheduled" layer=faultline method=/coreweave.sandbox.v1.SandboxService/GetSandbox target=passthrough:///bufconn code=Unavailable kind=SandboxUnavailableError reason=CWSANDBOX_RUNNER_UNAVAILABLE domain=cwsandbox.com operation=GetSandbox error="GetSandbox: unavailable: runner is restarting (sandbox sb-1)" attempt=1 delay=100ms delay_source="server hint"
	// level=WARN msg="finished call" layer=attempt protocol=grpc grpc.component=client grpc.service=coreweave.sandbox.v1.SandboxService grpc.method=GetSandbox grpc.method_type=unary grpc.code=Unavailable grpc.error="rpc error: code = Unavailable desc = runner is restarting"
	// level=INFO msg="retry scheduled" layer=faultline method=/coreweave.sandbox.v1.SandboxService/GetSandbox target=passthrough:///bufconn code=Unavailable kind=SandboxUnavailableError reason=CWSANDBOX_RUNNER_UNAVAILABLE domain=cwsandbox.com operation=GetSandbox error="GetSandbox: unavailable: runner is restarting (sandbox sb-1)" attempt=2 delay=100ms delay_source="server hint"
	// level=DEBUG msg="finished call" layer=attempt protocol=grpc grpc.component=client grpc.service=coreweave.sandbox.v1.SandboxService grpc.method=GetSandbox grpc.method_type=unary grpc.code=OK
	// level=INFO msg="retry succeeded" layer=faultline method=/coreweave.sandbox.v1.SandboxService/GetSandbox target=passthrough:///bufconn attempts=3 total_wait=200ms
	// level=DEBUG msg="finished call" layer=call protocol=grpc grpc.component=client grpc.service=coreweave.sandbox.v1.SandboxService grpc.method=GetSandbox grpc.method_type=unary grpc.code=OK
	// GetSandbox(sb-1) returned <nil> after 3 server calls
	// level=DEBUG msg="finished call" layer=attempt protocol=grpc grpc.component=client grpc.service=coreweave.sandbox.v1.SandboxService grpc.method=GetSandbox grpc.method_type=unary grpc.code=NotFound grpc.error="rpc error: code = NotFound desc = sandbox \"sb-gone\" not found"
	// level=DEBUG msg="retry stopped" layer=faultline method=/coreweave.sandbox.v1.SandboxService/GetSandbox target=passthrough:///bufconn code=NotFound kind=SandboxNotFoundError reason=CWSANDBOX_SANDBOX_NOT_FOUND domain=cwsandbox.com operation=GetSandbox error="GetSandbox: sandbox not found: sandbox \"sb-gone\" not found (sandbox sb-gone)" attempts=1 stop_reason="not retryable" total_wait=0s
	// level=DEBUG msg="finished call" layer=call protocol=grpc grpc.component=client grpc.service=coreweave.sandbox.v1.SandboxService grpc.method=GetSandbox grpc.method_type=unary grpc.code=NotFound grpc.error="GetSandbox: sandbox not found: sandbox \"sb-gone\" not found (sandbox sb-gone)"
	// GetSandbox(sb-gone) returned GetSandbox: sandbox not found: sandbox "sb-gone" not found (sandbox sb-gone)
}

// With grpc-go's stats/opentelemetry before our interceptors, each call is one span with a
// child span per attempt; our events are on the call span. The metrics: gRFC A96's
// histograms (one call retried twice, waiting 0.2s), the retries by source, the calls that
// failed by why retrying stopped, and the budget's refusal.
func Example_openTelemetry() {
	_ = runOTel(os.Stdout)
	// Output:
	// flaky  GetSandbox(sb-1): <nil>
	// gone   GetSandbox(sb-gone): GetSandbox: sandbox not found: sandbox "sb-gone" not found (sandbox sb-gone)
	// quota  GetSandbox(sb-1): GetSandbox: resource exhausted: sandbox quota reached (sandbox sb-1) [1 attempt, no server signal]
	// outage GetSandbox(sb-1): GetSandbox: unavailable: runner is restarting (sandbox sb-1) [1 attempt, retry budget exhausted]
	//
	// spans (events of ours; grpc-go's attempt spans):
	//   call flaky
	//     Sent.coreweave.sandbox.v1.SandboxService.GetSandbox [Ok]
	//       event faultline.retry error.type=UNAVAILABLE faultline.kind=SandboxUnavailableError faultline.retry.attempt=1 faultline.retry.delay=0.1 faultline.retry.from_retry_info=true
	//       event faultline.retry error.type=UNAVAILABLE faultline.kind=SandboxUnavailableError faultline.retry.attempt=2 faultline.retry.delay=0.1 faultline.retry.from_retry_info=true
	//       Attempt.coreweave.sandbox.v1.SandboxService.GetSandbox previous-rpc-attempts=0 [Error]
	//       Attempt.coreweave.sandbox.v1.SandboxService.GetSandbox previous-rpc-attempts=1 [Error]
	//       Attempt.coreweave.sandbox.v1.SandboxService.GetSandbox previous-rpc-attempts=2 [Ok]
	//   call gone
	//     Sent.coreweave.sandbox.v1.SandboxService.GetSandbox [Error]
	//       event faultline.retry.stopped error.type=NOT_FOUND faultline.kind=SandboxNotFoundError faultline.retry.attempts=1 faultline.retry.total_wait=0 faultline.stop_reason=not_retryable
	//       Attempt.coreweave.sandbox.v1.SandboxService.GetSandbox previous-rpc-attempts=0 [Error]
	//   call quota
	//     Sent.coreweave.sandbox.v1.SandboxService.GetSandbox [Error]
	//       event faultline.retry.stopped error.type=RESOURCE_EXHAUSTED faultline.kind=SandboxResourceExhaustedError faultline.retry.attempts=1 faultline.retry.total_wait=0 faultline.stop_reason=no_server_signal
	//       Attempt.coreweave.sandbox.v1.SandboxService.GetSandbox previous-rpc-attempts=0 [Error]
	//   call outage
	//     Sent.coreweave.sandbox.v1.SandboxService.GetSandbox [Error]
	//       event faultline.retry.stopped error.type=UNAVAILABLE faultline.kind=SandboxUnavailableError faultline.retry.attempts=1 faultline.retry.total_wait=0 faultline.stop_reason=budget
	//       Attempt.coreweave.sandbox.v1.SandboxService.GetSandbox previous-rpc-attempts=0 [Error]
	//
	// metrics:
	//   faultline.client.retries {retry}
	//     error.type=UNAVAILABLE faultline.kind=SandboxUnavailableError faultline.retry.source=retry_info grpc.method=coreweave.sandbox.v1.SandboxService/GetSandbox grpc.target=passthrough:///bufconn: 2
	//   faultline.client.retry.budget_refusals {retry}
	//     error.type=UNAVAILABLE faultline.kind=SandboxUnavailableError grpc.method=coreweave.sandbox.v1.SandboxService/GetSandbox grpc.target=passthrough:///bufconn: 1
	//   faultline.client.retry.stops {call}
	//     error.type=NOT_FOUND faultline.kind=SandboxNotFoundError faultline.stop_reason=not_retryable grpc.method=coreweave.sandbox.v1.SandboxService/GetSandbox grpc.target=passthrough:///bufconn: 1
	//     error.type=RESOURCE_EXHAUSTED faultline.kind=SandboxResourceExhaustedError faultline.stop_reason=no_server_signal grpc.method=coreweave.sandbox.v1.SandboxService/GetSandbox grpc.target=passthrough:///bufconn: 1
	//     error.type=UNAVAILABLE faultline.kind=SandboxUnavailableError faultline.stop_reason=budget grpc.method=coreweave.sandbox.v1.SandboxService/GetSandbox grpc.target=passthrough:///bufconn: 1
	//   grpc.client.call.retries {retry}
	//     grpc.method=coreweave.sandbox.v1.SandboxService/GetSandbox grpc.target=passthrough:///bufconn: count=1 sum=2
	//   grpc.client.call.retry_delay s
	//     grpc.method=coreweave.sandbox.v1.SandboxService/GetSandbox grpc.target=passthrough:///bufconn: count=1 sum=0.2
	//   grpc.client.attempt.started (grpc-go, all calls): 6
	//   grpc.client.call.duration (grpc-go, all calls): count=4
}
