package interceptor_test

// Tests of issue 16 ("Calls and streams that tell the truth") for the instances fixed in the
// retry core. Each checks one rule of spec/safety.md, section 5 unless said:
//
//   - TestStreamOnDoneAtRealEnd (instance 2), "Hooks see one call": OnDone runs once per
//     logical call, when it is over (for a stream: when it ends, not when it commits),
//     with its final outcome and its attempts, resumes included.
//   - TestStreamReplaysWhatWasSent (instance 3), "Replay what was sent": a retried upload
//     replays each message as it was when SendMsg took it, a, b, c, not c, c, c.
//   - TestUnaryHeadersCommit (instance 4), section 1, "Response headers commit a unary
//     call": a failure after response headers is not retried for a method of unknown
//     idempotency; a method without side effects is still retried by policy.
//   - TestEarlierCauseSurvivesDeadline (instance 6), "The earlier cause survives the
//     deadline": the final error keeps DEADLINE_EXCEEDED and the last real failure of an
//     earlier attempt stays reachable (errors.Is / errors.As on the tree, and Error()).
//   - TestRefusedDialRetriedForEveryMethod (instance 8), section 1, "Not sent means not
//     run": a stream that never reached a transport (its first dial was refused) is retried
//     whatever its method, StreamExec included.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/testing/testpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	testpbe "github.com/faultline-go/faultline/internal/testpb"
	"github.com/faultline-go/faultline/retry"
)

// hookCount counts the hooks' events of the calls through one interceptor set.
type hookCount struct {
	mu      sync.Mutex
	retries int
	dones   []retry.DoneEvent
}

func (h *hookCount) hooks() retry.Hooks {
	return retry.Hooks{
		OnRetry: func(context.Context, retry.RetryEvent) { h.mu.Lock(); h.retries++; h.mu.Unlock() },
		OnDone:  func(_ context.Context, ev retry.DoneEvent) { h.mu.Lock(); h.dones = append(h.dones, ev); h.mu.Unlock() },
	}
}

// counts returns the retries and dones so far.
func (h *hookCount) counts() (retries int, dones []retry.DoneEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.retries, append([]retry.DoneEvent(nil), h.dones...)
}

// listServer serves PingList by script: attempt n (from 1) sends sends[n-1] messages, then
// fails with UNAVAILABLE, or ends with OK when it is past the script.
type listServer struct {
	testpb.UnimplementedTestServiceServer
	sends []int

	mu       sync.Mutex
	attempts int
}

func (l *listServer) PingList(req *testpb.PingListRequest, st testpb.TestService_PingListServer) error {
	l.mu.Lock()
	l.attempts++
	n := l.attempts
	l.mu.Unlock()
	if n > len(l.sends) {
		return nil
	}
	for i := range l.sends[n-1] {
		if err := st.Send(&testpb.PingListResponse{Value: req.GetValue(), Counter: int32(i)}); err != nil {
			return err
		}
	}
	return status.Error(codes.Unavailable, "list backend restarting")
}

// TestStreamOnDoneAtRealEnd (issue 16, instance 2): OnDone runs once, when the stream ends,
// with its final outcome and attempts (resumes included): not at the first message of a
// stream that retried before committing, also for a stream that fails after its first
// message without retrying, and for a resumed stream.
func TestStreamOnDoneAtRealEnd(t *testing.T) {
	t.Run("retried once, then fails after its first message", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var h hookCount
			c := newPing(t, &listServer{sends: []int{0, 1}}, interceptor.DialOptions(noBudget(secondsPolicy(), retry.WithBudget(nil), retry.WithHooks(h.hooks())))...)
			st, err := c.PingList(context.Background(), &testpb.PingListRequest{Value: "x"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Recv(); err != nil {
				t.Fatalf("first Recv = %v, want the first message of attempt 2", err)
			}
			if _, dones := h.counts(); len(dones) != 0 {
				t.Errorf("OnDone at the first message: %v, want none until the stream ends", dones)
			}
			if _, err := st.Recv(); status.Code(err) != codes.Unavailable {
				t.Fatalf("second Recv = %v, want the UNAVAILABLE that ends the stream", err)
			}
			retries, dones := h.counts()
			if retries != 1 || len(dones) != 1 || dones[0].Attempts != 2 || dones[0].Err == nil {
				t.Errorf("retries, OnDone events = %d, %v; want 1, one with 2 attempts and the final error", retries, dones)
			}
		})
	})
	t.Run("fails after its first message without retrying", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var h hookCount
			c := newPing(t, &listServer{sends: []int{1}}, interceptor.DialOptions(noBudget(secondsPolicy(), retry.WithBudget(nil), retry.WithHooks(h.hooks())))...)
			st, err := c.PingList(context.Background(), &testpb.PingListRequest{Value: "x"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Recv(); err != nil {
				t.Fatalf("first Recv = %v", err)
			}
			if _, err := st.Recv(); status.Code(err) != codes.Unavailable {
				t.Fatalf("second Recv = %v, want UNAVAILABLE", err)
			}
			retries, dones := h.counts()
			if retries != 0 || len(dones) != 1 || dones[0].Attempts != 1 || dones[0].Err == nil {
				t.Errorf("retries, OnDone events = %d, %v; want 0, one with 1 attempt and the final error", retries, dones)
			}
		})
	})
	t.Run("resumed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			var h hookCount
			e := logEnv(t, 6, []interceptor.Option{noBudget(secondsPolicy(), retry.WithHooks(h.hooks()))},
				sandboxtest.StreamLogsScript{Entries: 2, Err: unavailable()})
			st, err := e.sb.StreamLogs(context.Background(), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
			if err != nil {
				t.Fatal(err)
			}
			got, err := recvLogs(st)
			if err != nil || len(got) != 6 {
				t.Fatalf("stream = %q, %v; want 6 lines", got, err)
			}
			retries, dones := h.counts()
			if retries != 1 || len(dones) != 1 || dones[0].Attempts != 2 || dones[0].Err != nil {
				t.Errorf("retries, OnDone events = %d, %v; want 1, one with 2 attempts (the resume counted), succeeded", retries, dones)
			}
		})
	})
}

// TestStreamReplaysWhatWasSent (issue 16, instance 3): an upload that reuses one message,
// changing it between sends, is replayed as it was sent.
func TestStreamReplaysWhatWasSent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := &pingServer{failFirst: 1} // the first attempt reads everything, then fails before commit
		c := newPing(t, p, interceptor.DialOptions(noBudget(secondsPolicy(), retry.WithBudget(nil)))...)
		st, err := c.PingClientStream(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		m := &testpb.PingClientStreamRequest{}
		for _, v := range []string{"x", "y", "z"} {
			m.Value = v
			if err := st.Send(m); err != nil {
				t.Fatalf("Send(%s) = %v", v, err)
			}
		}
		res, err := st.CloseAndRecv()
		if err != nil || res.GetCounter() != 3 {
			t.Fatalf("CloseAndRecv = %v, %v; want a count of 3 after the retry", res, err)
		}
		if got, _ := p.Received(); fmt.Sprint(got) != "[[x y z] [x y z]]" {
			t.Errorf("server received %v, want [[x y z] [x y z]]: the retry replays what was sent", got)
		}
	})
}

// headerEcho serves Echo's Do and Read: the first fail calls of each send response headers,
// then fail with a bare UNAVAILABLE (the handler ran); the others echo. With noHeader the
// failures come without headers.
type headerEcho struct {
	testpbe.UnimplementedEchoServer
	fail     int
	noHeader bool

	mu   sync.Mutex
	runs map[string]int
}

func (h *headerEcho) serve(ctx context.Context, method string, req *testpbe.EchoRequest) (*testpbe.EchoResponse, error) {
	h.mu.Lock()
	if h.runs == nil {
		h.runs = map[string]int{}
	}
	h.runs[method]++
	n := h.runs[method]
	h.mu.Unlock()
	if n <= h.fail {
		if !h.noHeader {
			if err := grpc.SendHeader(ctx, metadata.Pairs("served-by", "replica-2")); err != nil {
				return nil, err
			}
		}
		return nil, status.Error(codes.Unavailable, "replica lost its backend")
	}
	return &testpbe.EchoResponse{Text: req.GetText()}, nil
}

func (h *headerEcho) Do(ctx context.Context, req *testpbe.EchoRequest) (*testpbe.EchoResponse, error) {
	return h.serve(ctx, "Do", req)
}

func (h *headerEcho) Read(ctx context.Context, req *testpbe.EchoRequest) (*testpbe.EchoResponse, error) {
	return h.serve(ctx, "Read", req)
}

func (h *headerEcho) ran(method string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.runs[method]
}

// TestUnaryHeadersCommit (issue 16, instance 4): response headers commit a unary call of
// unknown idempotency (Echo.Do declares no idempotency_level and is in no table): a bare
// UNAVAILABLE after them is not retried, and the handler runs once. A method without side
// effects (Echo.Read) is retried by policy; a failure without headers is retried for both.
func TestUnaryHeadersCommit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		method   string
		noHeader bool
		runs     int // handler runs
		stop     retry.StopReason
	}{
		{name: "unknown idempotency, headers then UNAVAILABLE", method: "Do", runs: 1, stop: retry.StopUnsafe},
		{name: "no side effects, headers then UNAVAILABLE", method: "Read", runs: 2},
		{name: "unknown idempotency, UNAVAILABLE without headers", method: "Do", noHeader: true, runs: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				srv := &headerEcho{fail: 1, noHeader: tc.noHeader}
				conn := faultlinetest.Serve(t, func(s *grpc.Server) { testpbe.RegisterEchoServer(s, srv) }, nil,
					interceptor.DialOptions(noBudget(secondsPolicy(), retry.WithBudget(nil)))...)
				c := testpbe.NewEchoClient(conn)
				var err error
				if tc.method == "Do" {
					_, err = c.Do(context.Background(), &testpbe.EchoRequest{Text: "hi"})
				} else {
					_, err = c.Read(context.Background(), &testpbe.EchoRequest{Text: "hi"})
				}
				if n := srv.ran(tc.method); n != tc.runs {
					t.Errorf("%s handler ran %d times, want %d (err %v)", tc.method, n, tc.runs, err)
				}
				if tc.stop == 0 {
					if err != nil {
						t.Errorf("%s = %v, want success after a retry", tc.method, err)
					}
					return
				}
				if stop, n := stopOf(err); status.Code(err) != codes.Unavailable || stop != tc.stop || n != 1 {
					t.Errorf("%s = %v (stop %v after %d attempts), want UNAVAILABLE, %v after 1", tc.method, err, stop, n, tc.stop)
				}
			})
		})
	}
}

// allClassified returns every *errs.Error in err's tree, depth first.
func allClassified(err error) []*errs.Error {
	var out []*errs.Error
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if e, ok := err.(*errs.Error); ok {
			out = append(out, e)
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return out
}

// TestEarlierCauseSurvivesDeadline (issue 16, instance 6): attempt 1 fails with the runner
// unavailable, attempt 2 stalls until the caller's deadline (3 s, virtual): the final error's
// status is DEADLINE_EXCEEDED and errors.Is(err, context.DeadlineExceeded) holds, and the
// first attempt's failure stays reachable: errors.Is(err, ErrSandboxUnavailable), an
// *errs.Error in the tree with its reason, and its message in Error().
func TestEarlierCauseSurvivesDeadline(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, interceptor.DialOptions(noBudget(secondsPolicy(), retry.WithBudget(nil))))
		drained := faultlinetest.Status(codes.Unavailable, "runner pool drained",
			faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_RUNNER_UNAVAILABLE", nil))
		e.srv.Script(getSandbox, sandboxtest.Fail(drained), sandboxtest.Stall())
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := e.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
		if status.Code(err) != codes.DeadlineExceeded || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("GetSandbox = %v (code %v), want DEADLINE_EXCEEDED matching context.DeadlineExceeded", err, status.Code(err))
		}
		if n := e.srv.Calls(getSandbox); n != 2 {
			t.Errorf("server calls = %d, want 2", n)
		}
		if !errors.Is(err, errs.ErrSandboxUnavailable) {
			t.Errorf("errors.Is(%v, ErrSandboxUnavailable) = false, want true: attempt 1's failure is reachable", err)
		}
		found := false
		for _, ce := range allClassified(err) {
			found = found || ce.Reason() == "CWSANDBOX_RUNNER_UNAVAILABLE"
		}
		if !found {
			t.Errorf("no *errs.Error with reason CWSANDBOX_RUNNER_UNAVAILABLE in the tree of %v", err)
		}
		if err == nil || !strings.Contains(err.Error(), "runner pool drained") {
			t.Errorf("Error() = %q, want it to name attempt 1's failure (runner pool drained)", err)
		}
	})
}

// refusingDialer refuses its first refusals dials as a TCP dial to a closed port does, then
// dials the listener.
type refusingDialer struct {
	dial     func(context.Context) (net.Conn, error)
	refusals int

	mu    sync.Mutex
	dials int
}

func (d *refusingDialer) DialContext(ctx context.Context, _ string) (net.Conn, error) {
	d.mu.Lock()
	d.dials++
	refuse := d.dials <= d.refusals
	d.mu.Unlock()
	if refuse {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1},
			Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	}
	return d.dial(ctx)
}

// TestRefusedDialRetriedForEveryMethod (issue 16, instance 8): a StreamExec whose first dial
// was refused never reached a transport, so it ran nothing: it is retried (after the
// policy's wait, on the connection grpc-go makes next) and runs its command once.
func TestRefusedDialRetriedForEveryMethod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
		lis, stop := srv.StartBufconn()
		defer stop()
		d := &refusingDialer{refusals: 1, dial: lis.DialContext}
		conn, err := sandboxtest.DialBufconn(lis, append(interceptor.DialOptions(noBudget(secondsPolicy(), retry.WithBudget(nil))), grpc.WithContextDialer(d.DialContext))...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		st, err := sandboxpb.NewSandboxServiceClient(conn).StreamExec(context.Background())
		if err != nil {
			t.Fatalf("StreamExec = %v, want the stream retried past the refused dial", err)
		}
		if err := st.Send(&sandboxpb.ExecStreamRequest{Request: &sandboxpb.ExecStreamRequest_Init{
			Init: &sandboxpb.ExecStreamInit{SandboxId: "sb-1", Command: []string{"true"}}}}); err != nil {
			t.Fatalf("Send(init) = %v", err)
		}
		if err := st.CloseSend(); err != nil {
			t.Fatalf("CloseSend = %v", err)
		}
		var exit *sandboxpb.ExecStreamExit
		for {
			m, err := st.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("Recv = %v", err)
			}
			if x := m.GetExit(); x != nil {
				exit = x
			}
		}
		if exit == nil || exit.GetExitCode() != 0 {
			t.Errorf("exit = %v, want code 0", exit)
		}
		if n := srv.Calls(streamExec); n != 1 {
			t.Errorf("server StreamExec calls = %d, want 1", n)
		}
		if d.dials < 2 {
			t.Errorf("dials = %d, want the refused one and another", d.dials)
		}
	})
}
