// Command observability shows how to watch faultline, in two scripted sessions against an
// in-memory server:
//
//   - logs: the retry hooks feed log/slog (retry.SlogHooks), chained with go-grpc-middleware
//     v2's logging interceptor. A logging interceptor placed before ours logs one line per
//     call; one placed after ours logs every attempt. A failure that was never retryable is
//     logged at Debug, not Warn.
//
//   - OpenTelemetry: otelfaultline's hooks and grpc-go's stats/opentelemetry, given to the
//     connection before ours, record into an SDK with a manual reader and a span recorder;
//     the session prints the metrics and spans they collected.
//
//     go run ./examples/observability
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

func main() {
	fmt.Println("== logs")
	if err := runLogs(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "observability:", err)
		os.Exit(1)
	}
	fmt.Println("\n== OpenTelemetry")
	if err := runOTel(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "observability:", err)
		os.Exit(1)
	}
}

// policy is the default policy without jitter, so that waits print the same every run.
func policy() retry.Policy {
	p := retry.DefaultPolicy()
	p.InitialBackoff, p.Jitter, p.HintJitter = 50*time.Millisecond, 0, 0
	return p
}

// runLogs makes a call that succeeds on its third attempt and one for a sandbox that does
// not exist, logging through slog.
func runLogs(out io.Writer) error {
	srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
	lis, stop := srv.StartBufconn()
	defer stop()

	logger := slog.New(slog.NewTextHandler(out, &slog.HandlerOptions{Level: slog.LevelDebug, ReplaceAttr: dropTime}))

	var opts []grpc.DialOption
	// Before ours: sees the call once, with its final outcome.
	opts = append(opts, grpc.WithChainUnaryInterceptor(
		logging.UnaryClientInterceptor(slogAdapter(logger.With("layer", "call")), logging.WithLogOnEvents(logging.FinishCall))))
	// Ours, with the retry hooks feeding slog.
	opts = append(opts, interceptor.DialOptions(
		interceptor.WithRetrier(retry.MustNew(policy(), retry.WithHooks(retry.SlogHooks(logger.With("layer", "faultline"))))))...)
	// After ours: sees every attempt.
	opts = append(opts, grpc.WithChainUnaryInterceptor(
		logging.UnaryClientInterceptor(slogAdapter(logger.With("layer", "attempt")), logging.WithLogOnEvents(logging.FinishCall))))

	conn, err := sandboxtest.DialBufconn(lis, opts...)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := sandboxpb.NewSandboxServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	srv.FailNext(sandboxpb.SandboxService_GetSandbox_FullMethodName, 2,
		faultlinetest.Status(codes.Unavailable, "runner is restarting",
			faultlinetest.ErrorInfo("cwsandbox.com", "CWSANDBOX_RUNNER_UNAVAILABLE", map[string]string{"token": "never-logged"}),
			faultlinetest.RetryInfo(100*time.Millisecond)))
	_, err = client.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
	fmt.Fprintf(out, "GetSandbox(sb-1) returned %v after %d server calls\n", err,
		srv.Calls(sandboxpb.SandboxService_GetSandbox_FullMethodName))

	_, err = client.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-gone"})
	fmt.Fprintf(out, "GetSandbox(sb-gone) returned %v\n", err)
	return nil
}

// slogAdapter makes a go-grpc-middleware logging.Logger of a *slog.Logger.
func slogAdapter(l *slog.Logger) logging.Logger {
	return logging.LoggerFunc(func(ctx context.Context, lvl logging.Level, msg string, fields ...any) {
		l.Log(ctx, slog.Level(lvl), msg, fields...)
	})
}

// dropTime leaves out the timestamp (and durations the middleware adds), so runs compare.
func dropTime(_ []string, a slog.Attr) slog.Attr {
	switch a.Key {
	case slog.TimeKey, "grpc.time_ms", "grpc.start_time", "grpc.request.deadline":
		return slog.Attr{}
	}
	return a
}
