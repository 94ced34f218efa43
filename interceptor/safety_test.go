package interceptor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/testing/testpb"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/echotest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	testpbe "github.com/faultline-go/faultline/internal/testpb"
	"github.com/faultline-go/faultline/retry"
)

const createSandbox = sandboxpb.SandboxService_CreateSandbox_FullMethodName

// stopOf returns the stop cause and attempts of err's *retry.Error, or 0, 0.
func stopOf(err error) (retry.StopReason, int) {
	var re *retry.Error
	if !errors.As(err, &re) {
		return 0, 0
	}
	return re.StopReason(), re.Attempts()
}

// TestLocalFailuresNotRetried: a message over the client's receive limit was answered by a
// server that ran the call, and one over the send limit never left the client; grpc-go
// reports both as RESOURCE_EXHAUSTED and would again: never retried, and returned at once.
func TestLocalFailuresNotRetried(t *testing.T) {
	for _, tc := range []struct {
		name        string
		method      string
		call        func(e *env) error
		serverCalls int
	}{
		{name: "GetSandbox over the receive limit", method: getSandbox, serverCalls: 1, call: func(e *env) error {
			_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}, grpc.MaxCallRecvMsgSize(1))
			return err
		}},
		{name: "CreateSandbox without request id over the receive limit", method: createSandbox, serverCalls: 1, call: func(e *env) error {
			_, err := e.sb.CreateSandbox(context.Background(), &sandboxpb.CreateSandboxRequest{}, grpc.MaxCallRecvMsgSize(1))
			return err
		}},
		{name: "GetSandbox over the send limit", method: getSandbox, serverCalls: 0, call: func(e *env) error {
			_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}, grpc.MaxCallSendMsgSize(1))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))))
				start := time.Now()
				err := tc.call(e)
				if status.Code(err) != codes.ResourceExhausted {
					t.Fatalf("call = %v, want RESOURCE_EXHAUSTED", err)
				}
				if cause, n := stopOf(err); cause != retry.StopLocalFailure || n != 1 {
					t.Errorf("stop = %v after %d attempts, want %v after 1", cause, n, retry.StopLocalFailure)
				}
				if d := time.Since(start); d != 0 {
					t.Errorf("returned after %v, want at once", d)
				}
				if n := e.srv.Calls(tc.method); n != tc.serverCalls {
					t.Errorf("server calls = %d, want %d", n, tc.serverCalls)
				}
				if tc.method == createSandbox {
					if n := e.srv.Created(); n != 1 {
						t.Errorf("sandboxes created = %d, want 1", n)
					}
				}
			})
		})
	}
}

// TestResourceExhaustedNeedsServerSignal: a bare RESOURCE_EXHAUSTED is a quota; only RetryInfo
// or a trusted transient reason makes it retryable (safety.md section 3).
func TestResourceExhaustedNeedsServerSignal(t *testing.T) {
	for _, tc := range []struct {
		name  string
		st    *status.Status
		calls int
		stop  retry.StopReason
	}{
		{name: "bare", st: faultlinetest.Status(codes.ResourceExhausted, "quota"), calls: 1, stop: retry.StopNoServerSignal},
		{name: "RetryInfo", st: faultlinetest.Status(codes.ResourceExhausted, "slow down", faultlinetest.RetryInfo(time.Second)), calls: 5, stop: retry.StopExhausted},
		{name: "transient reason", st: faultlinetest.Status(codes.ResourceExhausted, "throttled",
			faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_FSS_INFLIGHT_LIMIT", nil)), calls: 5, stop: retry.StopExhausted},
		{name: "untrusted transient reason", st: faultlinetest.Status(codes.ResourceExhausted, "throttled",
			faultlinetest.ErrorInfo("proxy.example", "CWSANDBOX_FSS_INFLIGHT_LIMIT", nil)), calls: 1, stop: retry.StopNoServerSignal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))))
				e.srv.FailAlways(getSandbox, tc.st)
				_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
				if cause, _ := stopOf(err); cause != tc.stop {
					t.Errorf("stop = %v, want %v (err %v)", cause, tc.stop, err)
				}
				if n := e.srv.Calls(getSandbox); n != tc.calls {
					t.Errorf("server calls = %d, want %d", n, tc.calls)
				}
			})
		})
	}
}

// TestNestedInstallNeverMultiplies: the interceptors installed twice on one connection make
// the attempts of one policy, not their product, and the final error tells the truth.
func TestNestedInstallNeverMultiplies(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := attempts(secondsPolicy(), 3)
		opts := append(interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(p, retry.WithBudget(nil)))),
			interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(p, retry.WithBudget(nil))))...)
		e := newEnv(t, opts)
		e.srv.FailAlways(getSandbox, unavailable())
		_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
		if cause, n := stopOf(err); cause != retry.StopExhausted || n != 3 {
			t.Errorf("stop = %v after %d attempts, want %v after 3", cause, n, retry.StopExhausted)
		}
		if n := e.srv.Calls(getSandbox); n != 3 {
			t.Errorf("server calls = %d, want 3", n)
		}
		if got, want := fmt.Sprintf("%q", headerValues(t, e.srv.Metadata(getSandbox), attemptHeader)), `["" "1" "2"]`; got != want {
			t.Errorf("attempt headers = %s, want %s", got, want)
		}
		if !strings.HasSuffix(err.Error(), "[3 attempts, attempts exhausted]") {
			t.Errorf("error = %q, want it to report 3 attempts", err)
		}
	})
}

// TestOnFinishOncePerCall: grpc.OnFinish means once per RPC; a retried call runs it once,
// with the final outcome.
func TestOnFinishOncePerCall(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fails int
		want  string
	}{
		{name: "succeeds on the second attempt", fails: 1, want: "[<nil>]"},
		{name: "gives up", fails: 10, want: "[Unavailable]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))))
				e.srv.FailNext(getSandbox, tc.fails, unavailable())
				var got []string
				onFinish := grpc.OnFinish(func(err error) {
					if err == nil {
						got = append(got, "<nil>")
					} else {
						got = append(got, status.Code(err).String())
					}
				})
				_, _ = e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}, onFinish)
				if fmt.Sprint(got) != tc.want {
					t.Errorf("OnFinish ran with %v, want %v", got, tc.want)
				}
			})
		})
	}
	t.Run("stream", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))))
			e.srv.FailNext(streamLogs, 1, unavailable())
			var got []error
			st, err := e.sb.StreamLogs(context.Background(), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"},
				grpc.OnFinish(func(err error) { got = append(got, err) }))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := recvLogs(st); err != nil {
				t.Fatalf("stream = %v", err)
			}
			if fmt.Sprint(got) != "[<nil>]" {
				t.Errorf("OnFinish ran with %v, want once with nil", got)
			}
		})
	})
}

// TestAttemptHeaderReplaced: a value of the attempt header already in the outgoing metadata
// (a proxy forwarding what it received) is replaced on retries, never appended to.
func TestAttemptHeaderReplaced(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))))
		e.srv.FailNext(getSandbox, 2, unavailable())
		ctx := metadata.AppendToOutgoingContext(context.Background(), attemptHeader, "3")
		if _, err := e.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, md := range e.srv.Metadata(getSandbox) {
			got = append(got, strings.Join(md.Get(attemptHeader), ","))
		}
		if want := "[3 1 2]"; fmt.Sprint(got) != want {
			t.Errorf("attempt headers = %v, want %v", got, want)
		}
	})
}

// TestCallerCancelIsNotTheSandbox: a failure that came back after the caller cancelled is the
// caller's doing: not retried, not a SandboxNotRunningError, and errors.Is context.Canceled.
func TestCallerCancelIsNotTheSandbox(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))))
		e.srv.Script(getSandbox, sandboxtest.Stall())
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			_, err := e.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
			errc <- err
		}()
		synctest.Wait()
		cancel()
		err := <-errc
		if errors.Is(err, errs.ErrSandboxNotRunning) {
			t.Errorf("errors.Is(%v, ErrSandboxNotRunning) = true, want false", err)
		}
		if !errors.Is(err, context.Canceled) || status.Code(err) != codes.Canceled {
			t.Errorf("err = %v (code %v), want context.Canceled, CANCELLED", err, status.Code(err))
		}
		if !errors.Is(err, errs.ErrSandbox) {
			t.Errorf("err = %v, want the family base SandboxError", err)
		}
		if n := e.srv.Calls(getSandbox); n != 1 {
			t.Errorf("server calls = %d, want 1", n)
		}
	})
}

// TestCloseEndsWait: closing the connection ends a wait between attempts at once.
func TestCloseEndsWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))))
		e.srv.FailAlways(getSandbox, withHint(20*time.Second))
		start := time.Now()
		errc := make(chan error, 1)
		go func() {
			_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
			errc <- err
		}()
		time.Sleep(time.Second) // inside the 20 s wait
		_ = e.conn.Close()
		err := <-errc
		if d := time.Since(start); d != time.Second {
			t.Errorf("call returned after %v, want 1s (at the close)", d)
		}
		if cause, n := stopOf(err); cause != retry.StopCancelled || n != 1 {
			t.Errorf("stop = %v after %d attempts, want %v after 1", cause, n, retry.StopCancelled)
		}
		if status.Code(err) != codes.Unavailable {
			t.Errorf("status.Code = %v, want the last attempt's Unavailable", status.Code(err))
		}
	})
}

// TestStreamOneContextAndHeader: a server stream that failed before its first message and was
// retried keeps the context taken right after opening alive, and Header before the first
// Recv returns the headers of the attempt that delivers them.
func TestStreamOneContextAndHeader(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))))
		e.srv.FailNext(streamLogs, 1, unavailable())
		st, err := e.sb.StreamLogs(context.Background(), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
		if err != nil {
			t.Fatal(err)
		}
		sctx := st.Context()
		md, err := st.Header()
		if err != nil || md == nil {
			t.Fatalf("Header() = %v, %v; want the second attempt's headers", md, err)
		}
		if sctx.Err() != nil {
			t.Fatalf("stream context ended after the retry: %v", sctx.Err())
		}
		lines, err := recvLogs(st)
		if err != nil || len(lines) == 0 {
			t.Fatalf("stream = %v, %v; want its lines", lines, err)
		}
		if sctx.Err() == nil {
			t.Errorf("stream context alive after the stream ended")
		}
		if n := e.srv.Calls(streamLogs); n != 2 {
			t.Errorf("server calls = %d, want 2", n)
		}
	})
}

// TestHugeHintStopsRetrying: a valid RetryInfo too long for time.Duration is clamped and
// present: the call stops as "hint too long" with the delay readable.
func TestHugeHintStopsRetrying(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))))
		st := faultlinetest.Status(codes.Unavailable, "come back much later", hugeRetryInfo())
		e.srv.FailAlways(getSandbox, st)
		_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
		if cause, n := stopOf(err); cause != retry.StopHintTooLong || n != 1 {
			t.Errorf("stop = %v after %d attempts, want %v after 1", cause, n, retry.StopHintTooLong)
		}
		var ee *errs.Error
		if !errors.As(err, &ee) {
			t.Fatalf("err = %v, want an *errs.Error inside", err)
		}
		if d, ok := ee.RetryDelay(); !ok || d != time.Duration(1<<63-1) {
			t.Errorf("RetryDelay() = %v, %v; want the largest duration, present", d, ok)
		}
	})
}

// hugeRetryInfo is a valid RetryInfo of 10^10 s, beyond time.Duration.
func hugeRetryInfo() *errdetails.RetryInfo {
	return &errdetails.RetryInfo{RetryDelay: &durationpb.Duration{Seconds: 1e10}}
}

// TestPolicyWithoutMaxRetryDelayRejected: a Policy literal that leaves MaxRetryDelay zero
// would refuse every hinted retry; retry.New, and New for a method policy, reject it naming
// the field.
func TestPolicyWithoutMaxRetryDelayRejected(t *testing.T) {
	p := retry.Policy{MaxAttempts: 3, InitialBackoff: time.Second, MaxBackoff: time.Second, Multiplier: 1,
		RetryOn: retry.On(errs.ErrSandboxUnavailable)}
	if _, err := retry.New(p); !errors.Is(err, retry.ErrInvalidPolicy) || !strings.Contains(err.Error(), "MaxRetryDelay") {
		t.Errorf("retry.New(policy without MaxRetryDelay) = %v, want an invalid policy naming MaxRetryDelay", err)
	}
	_, err := interceptor.New(interceptor.WithMethodPolicy(getSandbox, p))
	if !errors.Is(err, retry.ErrInvalidPolicy) || !strings.Contains(err.Error(), "MaxRetryDelay") {
		t.Errorf("New(method policy without MaxRetryDelay) = %v, want an invalid policy naming MaxRetryDelay", err)
	}
}

// TestInvalidCallPolicyFailsTheCall: an invalid per-call policy is an INVALID_ARGUMENT of the
// call, not silence.
func TestInvalidCallPolicyFailsTheCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithBudget(nil)))))
		bad := secondsPolicy()
		bad.Multiplier = 0
		_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}, interceptor.WithCallPolicy(bad))
		if status.Code(err) != codes.InvalidArgument || !errors.Is(err, retry.ErrInvalidPolicy) {
			t.Errorf("call = %v (code %v), want INVALID_ARGUMENT matching retry.ErrInvalidPolicy", err, status.Code(err))
		}
		if n := e.srv.Calls(getSandbox); n != 0 {
			t.Errorf("server calls = %d, want 0", n)
		}
	})
}

// TestFamiliesTellTheTruth: a health check is not a sandbox; a discovery failure is always a
// DiscoveryError; both are still retried when transient.
func TestFamiliesTellTheTruth(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(attempts(secondsPolicy(), 2), retry.WithBudget(nil)))))
		e.srv.FailAlways(getRunner, unavailable())
		_, err := e.disc.GetAvailableRunner(context.Background(), &sandboxpb.GetAvailableRunnerRequest{RunnerId: "r-1"})
		if !errors.Is(err, errs.ErrDiscovery) || errors.Is(err, errs.ErrSandboxUnavailable) {
			t.Errorf("discovery UNAVAILABLE = %v, want a DiscoveryError and not a SandboxUnavailableError", err)
		}
		if cause, n := stopOf(err); cause != retry.StopExhausted || n != 2 {
			t.Errorf("stop = %v after %d attempts, want %v after 2", cause, n, retry.StopExhausted)
		}
	})
}

// TestNotIdempotentCreate: a CreateSandbox without a request id, with keys turned off, is
// not idempotent: a failure that may have reached the server is not retried; one the server
// declined is.
func TestNotIdempotentCreate(t *testing.T) {
	for _, tc := range []struct {
		name    string
		st      *status.Status
		calls   int
		stop    retry.StopReason
		created int
	}{
		{name: "bare UNAVAILABLE", st: unavailable(), calls: 1, stop: retry.StopUnsafe},
		{name: "RetryInfo", st: withHint(time.Second), calls: 3, stop: retry.StopExhausted},
		{name: "transient reason", st: faultlinetest.Status(codes.Unavailable, "no runner",
			faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_RUNNER_UNAVAILABLE", nil)), calls: 3, stop: retry.StopExhausted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(attempts(secondsPolicy(), 3), retry.WithBudget(nil))), interceptor.WithoutIdempotencyKeys()))
				e.srv.FailAlways(createSandbox, tc.st)
				_, err := e.sb.CreateSandbox(context.Background(), &sandboxpb.CreateSandboxRequest{})
				if cause, _ := stopOf(err); cause != tc.stop {
					t.Errorf("stop = %v, want %v (err %v)", cause, tc.stop, err)
				}
				if n := e.srv.Calls(createSandbox); n != tc.calls {
					t.Errorf("server calls = %d, want %d", n, tc.calls)
				}
			})
		})
	}
}

// TestGeneratedRequestID: a CreateSandbox without a request id gets one UUIDv4, the same on
// every attempt, on a copy: the caller's message stays as it was, and a retried create
// creates one sandbox.
func TestGeneratedRequestID(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))))
		e.srv.FailNext(createSandbox, 2, unavailable())
		req := &sandboxpb.CreateSandboxRequest{}
		orig := proto.Clone(req)
		if _, err := e.sb.CreateSandbox(context.Background(), req); err != nil {
			t.Fatalf("CreateSandbox = %v", err)
		}
		if !proto.Equal(req, orig) {
			t.Errorf("caller's request changed to %v", req)
		}
		var ids []string
		for _, m := range e.srv.Requests(createSandbox) {
			ids = append(ids, m.(*sandboxpb.CreateSandboxRequest).GetRequestId())
		}
		if len(ids) != 3 || ids[0] == "" || ids[0] != ids[1] || ids[1] != ids[2] || len(ids[0]) != 36 || ids[0][14] != '4' {
			t.Errorf("request ids per attempt = %q, want one UUIDv4 three times", ids)
		}
		if n := e.srv.Created(); n != 1 {
			t.Errorf("sandboxes created = %d, want 1", n)
		}
	})
	t.Run("caller's id kept", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))))
			e.srv.FailNext(createSandbox, 1, unavailable())
			if _, err := e.sb.CreateSandbox(context.Background(), &sandboxpb.CreateSandboxRequest{RequestId: "mine"}); err != nil {
				t.Fatalf("CreateSandbox = %v", err)
			}
			for i, m := range e.srv.Requests(createSandbox) {
				if id := m.(*sandboxpb.CreateSandboxRequest).GetRequestId(); id != "mine" {
					t.Errorf("attempt %d request id = %q, want %q", i+1, id, "mine")
				}
			}
		})
	})
}

// TestStreamNotSentRetried: a stream of a not-idempotent method whose attempt failed before
// any message reached its transport never ran: it is retried.
func TestStreamNotSentRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &pingServer{failFirst: 1, failAfter: 0}
		c := newPing(t, p, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil))),
			interceptor.WithDefaultIdempotency(retry.NotIdempotent))...)
		st, err := c.PingStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the first attempt fails before anything was sent
		if err := st.Send(&testpb.PingStreamRequest{Value: "a"}); err != nil {
			t.Fatalf("Send = %v", err)
		}
		m, err := st.Recv()
		if err != nil || m.GetValue() != "a" {
			t.Fatalf("Recv = %v, %v; want the echo of a", m, err)
		}
		if got, _ := p.Received(); fmt.Sprint(got) != "[[] [a]]" {
			t.Errorf("server received %v, want [[] [a]]", got)
		}
		_ = st.CloseSend()
	})
}

// TestStreamReplayCountsFraming: the replay buffer counts what grpc-go puts on the wire, so
// empty messages cannot pile up past the limit: past it the stream commits and a later
// failure is not retried.
func TestStreamReplayCountsFraming(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &pingServer{failFirst: 1}
		c := newPing(t, p, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil))),
			interceptor.WithReplayLimit(50))...)
		st, err := c.PingClientStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for range 20 { // 20 empty messages are 100 bytes on the wire
			if err := st.Send(&testpb.PingClientStreamRequest{}); err != nil {
				t.Fatalf("Send = %v", err)
			}
		}
		_, err = st.CloseAndRecv()
		if status.Code(err) != codes.Unavailable {
			t.Errorf("CloseAndRecv = %v, want the first attempt's UNAVAILABLE, not retried", err)
		}
		if got, _ := p.Received(); len(got) != 1 {
			t.Errorf("server attempts = %d, want 1", len(got))
		}
	})
}

// permissionServer rejects a client stream with PERMISSION_DENIED after its first message.
type permissionServer struct {
	testpb.UnimplementedTestServiceServer
}

func (permissionServer) PingClientStream(stream testpb.TestService_PingClientStreamServer) error {
	if _, err := stream.Recv(); err != nil {
		return err
	}
	return status.Error(codes.PermissionDenied, "not yours")
}

// TestStreamSendAfterFinalFailure: once a failure will not be retried, SendMsg returns io.EOF,
// as a plain grpc-go stream does, and RecvMsg the error.
func TestStreamSendAfterFinalFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newPing(t, permissionServer{}, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil))))...)
		st, err := c.PingClientStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&testpb.PingClientStreamRequest{Value: "a"}); err != nil {
			t.Fatalf("first Send = %v", err)
		}
		synctest.Wait() // the server has rejected the stream
		if err := st.Send(&testpb.PingClientStreamRequest{Value: "b"}); err != io.EOF {
			t.Fatalf("Send after the rejection = %v, want io.EOF", err)
		}
		if _, err := st.CloseAndRecv(); status.Code(err) != codes.PermissionDenied {
			t.Errorf("CloseAndRecv = %v, want PERMISSION_DENIED", err)
		}
	})
}

// TestStreamHeaderRecvNoRace: Header in one goroutine while another is in Recv, on a stream
// whose first attempt sent a header and failed; run under -race. (PingList is declared
// idempotent, so that a failure after headers is retried: a method of unknown idempotency
// would not be, whichever goroutine saw the failure.)
func TestStreamHeaderRecvNoRace(t *testing.T) {
	for range 20 {
		synctest.Test(t, func(t *testing.T) {
			p := &pingServer{failFirst: 1}
			c := newPing(t, p, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil))),
				interceptor.WithIdempotency(pingList, retry.Idempotent))...)
			st, err := c.PingList(context.Background(), &testpb.PingListRequest{Value: "v"})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var md metadata.MD
			var herr error
			wg.Go(func() { md, herr = st.Header() })
			_, rerr := st.Recv()
			wg.Wait()
			if herr != nil {
				t.Fatalf("Header() = %v", herr)
			}
			// Either the caller saw the failing attempt's header (the stream committed, and the
			// failure is final) or the retried attempt's (and Recv succeeded).
			switch served := md.Get("served-by"); {
			case len(served) == 1 && served[0] == "failing":
				if status.Code(rerr) != codes.Unavailable {
					t.Errorf("Recv after the failing header = %v, want UNAVAILABLE", rerr)
				}
			case rerr != nil:
				t.Errorf("Recv = %v after header %v, want a message", rerr, md)
			}
		})
	}
}

// TestFinalErrorBounded: the final error of a retried call is one line of at most 1 KiB, even
// when the classified error already fills it.
func TestFinalErrorBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(attempts(secondsPolicy(), 3), retry.WithBudget(nil)))))
		var violations []*errdetails.BadRequest_FieldViolation
		for i := range 20 {
			violations = append(violations, faultlinetest.FieldViolation(fmt.Sprintf("spec.field_%02d_%s", i, strings.Repeat("x", 40)), strings.Repeat("bad value ", 12)))
		}
		st := faultlinetest.Status(codes.Unavailable, strings.Repeat("m", 400), faultlinetest.BadRequest(violations...))
		e.srv.FailAlways(getSandbox, st)
		_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
		msg := err.Error()
		if len(msg) > 1024 || strings.ContainsAny(msg, "\r\n") {
			t.Errorf("len(Error()) = %d, want one line of <= 1024 bytes", len(msg))
		}
		if !strings.HasSuffix(msg, "[3 attempts, attempts exhausted]") {
			t.Errorf("Error() = %q, want it to end with the attempts and the cause", msg)
		}
	})
}

const execMethod = sandboxpb.SandboxService_Exec_FullMethodName

// TestExecNeverRepeated: a unary Exec runs the user's command; no failure of it is repeated,
// not even one the server declined, and a failure after the command ran leaves one run.
func TestExecNeverRepeated(t *testing.T) {
	for _, tc := range []struct {
		name string
		step sandboxtest.Step
		runs int
	}{
		{name: "bare UNAVAILABLE after the command ran", step: sandboxtest.FailAfter(unavailable()), runs: 1},
		{name: "UNAVAILABLE with RetryInfo", step: sandboxtest.Fail(withHint(time.Second)), runs: 0},
		{name: "trusted transient reason", step: sandboxtest.Fail(faultlinetest.Status(codes.Unavailable, "no runner",
			faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_RUNNER_UNAVAILABLE", nil))), runs: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))))
				e.srv.Script(execMethod, tc.step)
				_, err := e.sb.Exec(context.Background(), &sandboxpb.ExecRequest{SandboxId: "sb-1", Command: []string{"rm", "-rf", "/data"}})
				if cause, n := stopOf(err); cause != retry.StopUnsafe || n != 1 {
					t.Errorf("stop = %v after %d attempts, want %v after 1 (err %v)", cause, n, retry.StopUnsafe, err)
				}
				if n := e.srv.Calls(execMethod); n != 1 {
					t.Errorf("server calls = %d, want 1", n)
				}
				if n := e.srv.ExecRuns(); n != tc.runs {
					t.Errorf("command runs = %d, want %d", n, tc.runs)
				}
			})
		})
	}
}

// TestExecNotReachedByServiceEntries: declaring the whole sandbox service idempotent does
// not make Exec repeatable (a command would run twice); an entry of Exec's own does change
// it.
func TestExecNotReachedByServiceEntries(t *testing.T) {
	for _, tc := range []struct {
		name  string
		entry string
		runs  int
	}{
		{name: "service-wide entry", entry: "/coreweave.sandbox.v1.SandboxService/", runs: 1},
		{name: "Exec's own entry", entry: execMethod, runs: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil))),
					interceptor.WithIdempotency(tc.entry, retry.Idempotent)))
				e.srv.Script(execMethod, sandboxtest.FailAfter(unavailable()))
				_, _ = e.sb.Exec(context.Background(), &sandboxpb.ExecRequest{SandboxId: "sb-1", Command: []string{"rm", "-rf", "/data"}})
				if n := e.srv.ExecRuns(); n != tc.runs {
					t.Errorf("command runs = %d, want %d", n, tc.runs)
				}
			})
		})
	}
}

// TestCreateAfterSideEffect: a CreateSandbox whose sandbox was created before the failure
// came back is retried under its generated request id and creates one sandbox; with keys
// turned off it is not retried at all.
func TestCreateAfterSideEffect(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    []interceptor.Option
		calls   int
		wantErr bool
	}{
		{name: "generated request id", calls: 2},
		{name: "keys off", opts: []interceptor.Option{interceptor.WithoutIdempotencyKeys()}, calls: 1, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				opts := append([]interceptor.Option{interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))}, tc.opts...)
				e := newEnv(t, interceptor.DialOptions(opts...))
				e.srv.FailAfterNext(createSandbox, 1, unavailable())
				_, err := e.sb.CreateSandbox(context.Background(), &sandboxpb.CreateSandboxRequest{})
				if (err != nil) != tc.wantErr {
					t.Errorf("CreateSandbox = %v, want error %v", err, tc.wantErr)
				}
				if n := e.srv.Calls(createSandbox); n != tc.calls {
					t.Errorf("server calls = %d, want %d", n, tc.calls)
				}
				if n := e.srv.SandboxesCreated(); n != 1 {
					t.Errorf("sandboxes created = %d, want 1", n)
				}
			})
		})
	}
}

// TestIdempotencyResolution: what the caller configured, then an idempotency key, then the
// method's descriptor, then the configured default decide whether a failure that may have
// reached the server is retried.
func TestIdempotencyResolution(t *testing.T) {
	const (
		read   = "/faultline.test.v1.Echo/Read"
		put    = "/faultline.test.v1.Echo/Put"
		do     = "/faultline.test.v1.Echo/Do"
		create = "/faultline.test.v1.Echo/Create"
	)
	strict := interceptor.WithDefaultIdempotency(retry.NotIdempotent)
	for _, tc := range []struct {
		name   string
		opts   []interceptor.Option
		method string
		calls  int
	}{
		{name: "descriptor NO_SIDE_EFFECTS", opts: []interceptor.Option{strict}, method: "Read", calls: 3},
		{name: "descriptor IDEMPOTENT", opts: []interceptor.Option{strict}, method: "Put", calls: 3},
		{name: "unknown retried by default", method: "Do", calls: 3},
		{name: "unknown as not idempotent", opts: []interceptor.Option{strict}, method: "Do", calls: 1},
		{name: "configured beats the descriptor", opts: []interceptor.Option{strict, interceptor.WithIdempotency(read, retry.NotIdempotent)}, method: "Read", calls: 1},
		{name: "configured service entry", opts: []interceptor.Option{interceptor.WithIdempotency("/faultline.test.v1.Echo/", retry.NeverRetry)}, method: "Put", calls: 1},
		{name: "method entry beats service entry", opts: []interceptor.Option{interceptor.WithIdempotency("/faultline.test.v1.Echo/", retry.NotIdempotent),
			interceptor.WithIdempotency(do, retry.Idempotent)}, method: "Do", calls: 3},
		{name: "configured key", opts: []interceptor.Option{strict, interceptor.WithIdempotencyKey(create, "request_id")}, method: "Create", calls: 3},
		{name: "no key configured", opts: []interceptor.Option{strict}, method: "Create", calls: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := echotest.New() // the first two calls of the method fail with a bare UNAVAILABLE
				srv.FailNext("/faultline.test.v1.Echo/"+tc.method, 2, status.New(codes.Unavailable, "restarting"))
				opts := append([]interceptor.Option{interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))}, tc.opts...)
				conn := faultlinetest.Serve(t, func(gs *grpc.Server) { srv.Register(gs) }, nil, interceptor.DialOptions(opts...)...)
				c := testpbe.NewEchoClient(conn)
				ctx := context.Background()
				req := &testpbe.EchoRequest{Text: "hi"}
				var err error
				switch tc.method {
				case "Read":
					_, err = c.Read(ctx, req)
				case "Put":
					_, err = c.Put(ctx, req)
				case "Do":
					_, err = c.Do(ctx, req)
				case "Create":
					_, err = c.Create(ctx, req)
				}
				got := srv.Requests("/faultline.test.v1.Echo/" + tc.method)
				if len(got) != tc.calls {
					t.Errorf("server calls = %d, want %d (err %v)", len(got), tc.calls, err)
				}
				if tc.calls == 1 {
					if cause, _ := stopOf(err); cause != retry.StopUnsafe {
						t.Errorf("stop = %v, want %v", cause, retry.StopUnsafe)
					}
				}
				if tc.method == "Create" && tc.calls > 1 {
					if id := got[0].GetRequestId(); id == "" || id != got[len(got)-1].GetRequestId() {
						t.Errorf("request ids = %q .. %q, want one generated id on every attempt", id, got[len(got)-1].GetRequestId())
					}
				}
				if req.GetRequestId() != "" {
					t.Errorf("caller's request changed: request_id %q", req.GetRequestId())
				}
			})
		})
	}
	t.Run("bad names", func(t *testing.T) {
		for _, o := range []interceptor.Option{
			interceptor.WithIdempotency("Echo/Read", retry.Idempotent),
			interceptor.WithIdempotencyKey("/faultline.test.v1.Echo/", "request_id"),
			interceptor.WithIdempotencyKey(create, "not a field"),
		} {
			if _, err := interceptor.New(o); err == nil {
				t.Errorf("New(%v) = nil error, want one", o)
			}
		}
	})
}

// TestStreamHeaderAfterRetries: Header in one goroutine while another receives, on a stream
// whose first two attempts fail without headers: Header returns the headers of the attempt
// that delivers them, even when the stream has ended by the time Header learns how the
// attempt it waited on ended. Real scheduling, many rounds: the interleavings vary.
func TestStreamHeaderAfterRetries(t *testing.T) {
	p := &pingServer{failFirst: 1 << 30}
	c := newPing(t, p, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(millisecondPolicy(), retry.WithBudget(nil))))...)
	nilHeaders := 0
	const rounds = 200
	for range rounds {
		p.mu.Lock()
		p.attempts, p.failFirst = 0, 2
		p.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		st, err := c.PingStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Send(&testpb.PingStreamRequest{Value: "a"}); err != nil {
			t.Fatalf("Send = %v", err)
		}
		_ = st.CloseSend()
		var wg sync.WaitGroup
		var md metadata.MD
		wg.Go(func() { md, _ = st.Header() })
		var got []string
		for {
			m, err := st.Recv()
			if err != nil {
				if err != io.EOF {
					t.Fatalf("Recv = %v", err)
				}
				break
			}
			got = append(got, m.GetValue())
		}
		wg.Wait()
		cancel()
		if fmt.Sprint(got) != "[a]" {
			t.Fatalf("received %v, want [a]", got)
		}
		if md == nil {
			nilHeaders++
		}
	}
	if nilHeaders > 0 {
		t.Errorf("Header() = nil in %d of %d rounds, want the delivering attempt's headers", nilHeaders, rounds)
	}
}

// TestInnerRetryLoopClassified: an SDK interceptor placed after ours that retries raw errors
// with retry.Do returns its *retry.Error; the call is not retried again, and the caller
// still gets a classified error, with the inner loop's attempts.
func TestInnerRetryLoopClassified(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		inner := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			return retry.Do(ctx, attempts(secondsPolicy(), 2), func(ctx context.Context) error {
				return invoker(ctx, method, req, reply, cc, opts...)
			}, retry.WithClassifyFunc(func(err error) *errs.Error { return classify.Classify(err) }))
		}
		opts := append(interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))),
			grpc.WithChainUnaryInterceptor(inner))
		e := newEnv(t, opts)
		e.srv.FailAlways(getSandbox, unavailable())
		_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
		var ee *errs.Error
		if !errors.As(err, &ee) || !errors.Is(err, errs.ErrSandboxUnavailable) || status.Code(err) != codes.Unavailable {
			t.Errorf("GetSandbox = %v (%T), want a classified SandboxUnavailableError", err, err)
		}
		if cause, n := stopOf(err); cause != retry.StopExhausted || n != 2 {
			t.Errorf("stop = %v after %d attempts, want the inner loop's %v after 2", cause, n, retry.StopExhausted)
		}
		if n := e.srv.Calls(getSandbox); n != 2 {
			t.Errorf("server calls = %d, want 2", n)
		}
	})
}

// TestConnCloseIsNotTheSandbox: a call on a connection the caller closed fails with grpc-go's
// CANCELLED; that is the caller's doing, not a sandbox that stopped running.
func TestConnCloseIsNotTheSandbox(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithBudget(nil)))))
		_ = e.conn.Close()
		_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
		if status.Code(err) != codes.Canceled || errors.Is(err, errs.ErrSandboxNotRunning) || !errors.Is(err, errs.ErrSandbox) {
			t.Errorf("GetSandbox on a closed connection = %v (code %v), want CANCELLED, the family base, not SandboxNotRunningError",
				err, status.Code(err))
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("errors.Is(%v, context.Canceled) = false, want true", err)
		}
	})
}
