// Command demo shows faultline at work in a few seconds: it starts the embedded sandbox
// server on 127.0.0.1, installs the interceptors on a client connection, runs a short
// scripted session against it, and prints for each call what the server sent, the kind it
// became, every retry with its delay and why, and the outcome.
//
//	go run ./examples/demo
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// step is one call of the session: what to script on the server, and the call itself.
type step struct {
	name   string
	script func(srv *sandboxtest.Server)
	call   func(ctx context.Context, c sandboxpb.SandboxServiceClient) (string, error)
}

func run(out io.Writer) error {
	srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-demo"), sandboxtest.WithLog(6, 0))
	addr, stop, err := srv.StartTCP()
	if err != nil {
		return err
	}
	defer stop()

	var log retryLog
	conn, err := grpc.NewClient(addr, append(interceptor.DialOptions(
		interceptor.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithHooks(retry.Hooks{OnRetry: log.onRetry}))),
	), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := sandboxpb.NewSandboxServiceClient(conn)

	unavailable := func(hint time.Duration) *status.Status {
		details := []proto.Message{faultlinetest.ErrorInfo("cwsandbox.com", "CWSANDBOX_RUNNER_UNAVAILABLE", map[string]string{"runner": "r-7"})}
		if hint > 0 {
			details = append(details, faultlinetest.RetryInfo(hint))
		}
		return faultlinetest.Status(codes.Unavailable, "runner is restarting", details...)
	}
	steps := []step{
		{
			name: "CreateSandbox (no id)",
			script: func(srv *sandboxtest.Server) {
				// The sandbox is created, then the connection drops before the answer.
				srv.FailAfterNext(sandboxpb.SandboxService_CreateSandbox_FullMethodName, 1,
					faultlinetest.Status(codes.Unavailable, "connection reset"))
			},
			call: func(ctx context.Context, c sandboxpb.SandboxServiceClient) (string, error) {
				before := srv.SandboxesCreated()
				sb, err := c.CreateSandbox(ctx, &sandboxpb.CreateSandboxRequest{Sandbox: &sandboxpb.Sandbox{SandboxId: "sb-new"}})
				ids := map[string]bool{}
				for _, r := range srv.Requests(sandboxpb.SandboxService_CreateSandbox_FullMethodName) {
					ids[r.(*sandboxpb.CreateSandboxRequest).GetRequestId()] = true
				}
				return fmt.Sprintf("created %s once (%d sandbox, %d generated request id)",
					sb.GetSandboxId(), srv.SandboxesCreated()-before, len(ids)), err
			},
		},
		{
			name: "GetSandbox (poll)",
			script: func(srv *sandboxtest.Server) {
				srv.FailNext(sandboxpb.SandboxService_GetSandbox_FullMethodName, 2, unavailable(300*time.Millisecond))
			},
			call: func(ctx context.Context, c sandboxpb.SandboxServiceClient) (string, error) {
				sb, err := c.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-new"})
				return sb.GetStatus().GetState().String(), err
			},
		},
		{
			name: "Exec",
			script: func(srv *sandboxtest.Server) {
				// The command runs, then the connection drops before the answer.
				srv.FailAfterNext(sandboxpb.SandboxService_Exec_FullMethodName, 1,
					faultlinetest.Status(codes.Unavailable, "connection reset"))
			},
			call: func(ctx context.Context, c sandboxpb.SandboxServiceClient) (string, error) {
				_, err := c.Exec(ctx, &sandboxpb.ExecRequest{SandboxId: "sb-new", Command: []string{"train.sh"}})
				return "", err
			},
		},
		{
			name: "WriteFile (quota)",
			script: func(srv *sandboxtest.Server) {
				srv.FailNext(sandboxpb.SandboxService_WriteFile_FullMethodName, 1,
					faultlinetest.Status(codes.ResourceExhausted, "file quota exceeded"))
			},
			call: func(ctx context.Context, c sandboxpb.SandboxServiceClient) (string, error) {
				_, err := c.WriteFile(ctx, &sandboxpb.WriteFileRequest{SandboxId: "sb-new", Path: "/work/in.txt", Content: []byte("hi")})
				return "written", err
			},
		},
		{
			name: "WriteFile (throttled)",
			script: func(srv *sandboxtest.Server) {
				srv.FailNext(sandboxpb.SandboxService_WriteFile_FullMethodName, 1,
					faultlinetest.Status(codes.ResourceExhausted, "too many writes in flight", faultlinetest.RetryInfo(200*time.Millisecond)))
			},
			call: func(ctx context.Context, c sandboxpb.SandboxServiceClient) (string, error) {
				_, err := c.WriteFile(ctx, &sandboxpb.WriteFileRequest{SandboxId: "sb-new", Path: "/work/in.txt", Content: []byte("hi")})
				return "written", err
			},
		},
		{
			name: "GetSandbox (gone)",
			call: func(ctx context.Context, c sandboxpb.SandboxServiceClient) (string, error) {
				_, err := c.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-gone"})
				return "", err
			},
		},
		{
			name: "CreateSandbox (bad spec)",
			script: func(srv *sandboxtest.Server) {
				srv.FailNext(sandboxpb.SandboxService_CreateSandbox_FullMethodName, 1,
					faultlinetest.Status(codes.InvalidArgument, "invalid sandbox spec",
						faultlinetest.ErrorInfo("cwsandbox.com", "CWSANDBOX_INVALID_REQUEST", nil),
						faultlinetest.BadRequest(
							faultlinetest.FieldViolation("spec.image", "must not be empty"),
							faultlinetest.FieldViolation("spec.tags[0]", "must be lower case"))))
			},
			call: func(ctx context.Context, c sandboxpb.SandboxServiceClient) (string, error) {
				_, err := c.CreateSandbox(ctx, &sandboxpb.CreateSandboxRequest{Sandbox: &sandboxpb.Sandbox{}, RequestId: "req-1"})
				return "", err
			},
		},
		{
			name: "StreamLogs",
			script: func(srv *sandboxtest.Server) {
				srv.ScriptStreamLogs(sandboxtest.StreamLogsScript{Err: faultlinetest.Status(codes.Unavailable, "log stream reset")})
			},
			call: tail,
		},
		{
			name: "StreamLogs (restart)",
			script: func(srv *sandboxtest.Server) {
				// The runner restarts after three lines: the stream is resumed from its cursor.
				srv.ScriptStreamLogs(sandboxtest.StreamLogsScript{Entries: 3, Err: unavailable(0)})
			},
			call: tail,
		},
		{
			name: "GetSandbox (long hint)",
			script: func(srv *sandboxtest.Server) {
				srv.FailNext(sandboxpb.SandboxService_GetSandbox_FullMethodName, 1, unavailable(2*time.Minute))
			},
			call: func(ctx context.Context, c sandboxpb.SandboxServiceClient) (string, error) {
				_, err := c.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-demo"})
				return "", err
			},
		},
	}

	start := time.Now()
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CALL\tSERVER SENT (LAST)\tKIND\tATTEMPTS\tOUTCOME")
	var retries, errTexts []string
	for _, s := range steps {
		if s.script != nil {
			s.script(srv)
		}
		log.reset()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		result, err := s.call(ctx, client)
		cancel()
		attempts := 1 + len(log.events())
		resumes := 0
		for _, ev := range log.events() {
			if ev.Resumed {
				resumes++
			}
		}
		if resumes > 0 {
			result += fmt.Sprintf(" (resumed %dx from its cursor)", resumes)
		}
		var re *retry.Error
		if errors.As(err, &re) {
			attempts = re.Attempts()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", s.name, sent(err, log.events()), kind(err, log.events()), attempts, outcome(result, err, re))
		if err != nil {
			errTexts = append(errTexts, fmt.Sprintf("  %-24s %v", s.name, err))
		}
		for _, ev := range log.events() {
			retries = append(retries, fmt.Sprintf("  %-24s %s", s.name, describe(ev)))
		}
	}
	tw.Flush()
	fmt.Fprintln(out, "\nErrors as the caller sees them (err.Error()):")
	for _, e := range errTexts {
		fmt.Fprintln(out, e)
	}
	fmt.Fprintln(out, "\nRetries (each wait and why):")
	for _, r := range retries {
		fmt.Fprintln(out, r)
	}
	fmt.Fprintf(out, "\nServer received %d GetSandbox, %d CreateSandbox (%d created), %d Exec (%d run), %d StreamLogs calls; session took %v.\n",
		srv.Calls(sandboxpb.SandboxService_GetSandbox_FullMethodName),
		srv.Calls(sandboxpb.SandboxService_CreateSandbox_FullMethodName), srv.SandboxesCreated(),
		srv.Calls(sandboxpb.SandboxService_Exec_FullMethodName), srv.ExecRuns(),
		srv.Calls(sandboxpb.SandboxService_StreamLogs_FullMethodName), time.Since(start).Round(10*time.Millisecond))
	return nil
}

// tail reads the demo sandbox's log to its end and says whether each line came once, in order.
func tail(ctx context.Context, c sandboxpb.SandboxServiceClient) (string, error) {
	st, err := c.StreamLogs(ctx, &sandboxpb.StreamLogsRequest{SandboxId: "sb-demo", Follow: true})
	if err != nil {
		return "", err
	}
	var next uint64
	for {
		e, err := st.Recv()
		if err == io.EOF {
			return fmt.Sprintf("%d log lines, each once, in order", next), nil
		}
		if err != nil {
			return fmt.Sprintf("%d log lines", next), err
		}
		if e.GetNextLogOffset() != next+1 {
			return "", fmt.Errorf("line %d after line %d", e.GetNextLogOffset()-1, next-1)
		}
		next++
	}
}

// retryLog records the retry events of the call in progress.
type retryLog struct {
	mu  sync.Mutex
	evs []retry.RetryEvent
}

func (l *retryLog) onRetry(_ context.Context, ev retry.RetryEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, ev)
}

func (l *retryLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = nil
}

func (l *retryLog) events() []retry.RetryEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]retry.RetryEvent(nil), l.evs...)
}

// sent describes the last failure the server sent: code, reason and hint.
func sent(err error, evs []retry.RetryEvent) string {
	if err == nil && len(evs) > 0 {
		err = evs[len(evs)-1].Err
	}
	if err == nil {
		return "OK"
	}
	return statusText(err)
}

func statusText(err error) string {
	var e *errs.Error
	if !errors.As(err, &e) {
		return status.Code(err).String()
	}
	parts := []string{strings.ToUpper(codeName(e.Code()))}
	if r := e.Reason(); r != "" {
		parts = append(parts, r)
	}
	if d, ok := e.RetryDelay(); ok {
		parts = append(parts, "RetryInfo "+d.String())
	}
	if v := e.FieldViolations(); len(v) > 0 {
		parts = append(parts, fmt.Sprintf("BadRequest(%d)", len(v)))
	}
	return strings.Join(parts, " + ")
}

func codeName(c codes.Code) string {
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// kind names the kind of the call's error or, for a call that succeeded after retries, of
// the failure that was retried.
func kind(err error, evs []retry.RetryEvent) string {
	if err == nil && len(evs) > 0 {
		err = evs[len(evs)-1].Err
	}
	var e *errs.Error
	if errors.As(err, &e) {
		return e.Kind().String()
	}
	return "-"
}

func outcome(result string, err error, re *retry.Error) string {
	switch {
	case err == nil:
		return "ok: " + result
	case re != nil && re.StopReason() != retry.StopNotRetryable:
		return "error, not retried: " + re.StopReason().String()
	}
	return "error, not retryable"
}

func describe(ev retry.RetryEvent) string {
	why := "backoff"
	if ev.FromHint {
		why = "server RetryInfo"
	}
	what := "wait"
	if ev.Resumed {
		what = "resume after"
	}
	return fmt.Sprintf("attempt %d got %s -> %s %v (%s)", ev.Attempt, statusText(ev.Err), what, ev.Delay.Round(time.Millisecond), why)
}
