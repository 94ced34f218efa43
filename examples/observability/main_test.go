package main

import "os"

// The logging interceptor after ours logs all three attempts; the one before ours logs the
// call once; the retry hooks log each wait with its source, and never the ErrorInfo
// metadata (the "token" the server sent).
func Example() {
	_ = run(os.Stdout)
	// Output:
	// level=WARN msg="finished call" layer=attempt protocol=grpc grpc.component=client grpc.service=coreweave.sandbox.v1.SandboxService grpc.method=GetSandbox grpc.method_type=unary grpc.code=Unavailable grpc.error="rpc error: code = Unavailable desc = runner is restarting"
	// level=INFO msg="retry scheduled" layer=faultline code=Unavailable kind=SandboxUnavailableError operation=GetSandbox error="GetSandbox: unavailable: runner is restarting (sandbox sb-1)" attempt=1 delay=100ms delay_source="server hint"
	// level=WARN msg="finished call" layer=attempt protocol=grpc grpc.component=client grpc.service=coreweave.sandbox.v1.SandboxService grpc.method=GetSandbox grpc.method_type=unary grpc.code=Unavailable grpc.error="rpc error: code = Unavailable desc = runner is restarting"
	// level=INFO msg="retry scheduled" layer=faultline code=Unavailable kind=SandboxUnavailableError operation=GetSandbox error="GetSandbox: unavailable: runner is restarting (sandbox sb-1)" attempt=2 delay=100ms delay_source="server hint"
	// level=DEBUG msg="finished call" layer=attempt protocol=grpc grpc.component=client grpc.service=coreweave.sandbox.v1.SandboxService grpc.method=GetSandbox grpc.method_type=unary grpc.code=OK
	// level=DEBUG msg="finished call" layer=call protocol=grpc grpc.component=client grpc.service=coreweave.sandbox.v1.SandboxService grpc.method=GetSandbox grpc.method_type=unary grpc.code=OK
	// GetSandbox returned <nil> after 3 server calls
}
