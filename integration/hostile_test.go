package integration_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/retry"
)

// statusProto builds a google.rpc.Status with the given details.
func statusProto(code codes.Code, msg string, details ...proto.Message) *spb.Status {
	st := &spb.Status{Code: int32(code), Message: msg}
	for _, d := range details {
		a, err := anypb.New(d)
		if err != nil {
			panic(err)
		}
		st.Details = append(st.Details, a)
	}
	return st
}

func errorInfo(domain, reason string, md map[string]string) *errdetails.ErrorInfo {
	return &errdetails.ErrorInfo{Domain: domain, Reason: reason, Metadata: md}
}

func retryInfo(d *durationpb.Duration) *errdetails.RetryInfo {
	return &errdetails.RetryInfo{RetryDelay: d}
}

// hugeStatus is an UNAVAILABLE status of about 2 MiB: an ErrorInfo with 1 MiB of
// metadata, 10,000 field violations and 300 debug details.
func hugeStatus() *spb.Status {
	md := make(map[string]string, 1024)
	for i := range 1024 {
		md[fmt.Sprintf("key-%04d", i)] = strings.Repeat("m", 1000)
	}
	br := &errdetails.BadRequest{}
	for i := range 10_000 {
		br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
			Field: fmt.Sprintf("items[%d].name", i), Description: strings.Repeat("d", 60)})
	}
	details := []proto.Message{errorInfo("cwsandbox.com", "CWSANDBOX_RUNNER_UNAVAILABLE", md), br}
	for range 300 {
		details = append(details, &errdetails.DebugInfo{Detail: strings.Repeat("x", 1000)})
	}
	return statusProto(codes.Unavailable, "huge details", details...)
}

// hostileCase is one way a server misbehaves, and what the client must make of it.
type hostileCase struct {
	name     string
	respond  func(*h2Call)
	policy   retry.Policy
	dialOpts []grpc.DialOption
	timeout  time.Duration // the caller's deadline; 0: hostileTimeout

	calls        int        // calls the server must receive
	callsAtLeast bool       // calls is a lower bound
	ok           bool       // the call must succeed
	code         codes.Code // status.Code of the error
	kind         errs.Kind
	msg          []string // substrings of Error()
	reason       string
	domain       string
	delay        time.Duration
	hasDelay     bool
	fromHint     bool // whether the retries waited on a server hint
	attempts     int  // attempts the error reports, when not calls
	checkMore    func(t *testing.T, e *errs.Error)
}

// TestHostileServer sends a real gRPC client, with both interceptors, against a raw HTTP/2
// server that answers with trailers no well-behaved server would send. The client must
// never panic, never retry past its policy or deadline, and report what happened.
func TestHostileServer(t *testing.T) {
	respondAlways := func(fields func() [][2]string) func(*h2Call) {
		f := fields()
		return func(c *h2Call) { _ = c.trailersOnly(f...) }
	}
	huge := hugeStatus()
	hugeSize := proto.Size(huge)
	if hugeSize < 2<<20 {
		t.Fatalf("hugeStatus() is %d bytes, want at least 2 MiB", hugeSize)
	}
	// The answering attempt after two stalled ones must come back within 50ms, which a loaded
	// machine may miss: the policy then makes more attempts, and the case asks for at least
	// three, the third or a later one succeeding.
	perAttempt := fastPolicy(manyAttempts)
	perAttempt.PerAttemptTimeout = 50 * time.Millisecond

	tests := []hostileCase{
		{
			name:    "2 MiB of details",
			respond: respondAlways(func() [][2]string { return statusFields(14, "huge details", huge) }),
			policy:  fastPolicy(3),
			calls:   3, code: codes.Unavailable, kind: errs.ErrSandboxUnavailable,
			msg:    []string{"GetSandbox: unavailable: huge details (sandbox sb-1)", "field violations: items[0].name: ", "(+9992 more)"},
			reason: "CWSANDBOX_RUNNER_UNAVAILABLE", domain: "cwsandbox.com",
			checkMore: func(t *testing.T, e *errs.Error) {
				if n := len(e.Metadata()); n != 1024 {
					t.Errorf("len(Metadata()) = %d, want 1024", n)
				}
				if n := len(e.FieldViolations()); n != 10_000 {
					t.Errorf("len(FieldViolations()) = %d, want 10000", n)
				}
				if n := len(e.OtherDetails()); n != 300 {
					t.Errorf("len(OtherDetails()) = %d, want 300", n)
				}
			},
		},
		{
			// grpc-go's hpack decoder refuses a string longer than the header list limit and
			// closes the connection: UNAVAILABLE, retried by the policy, each attempt on a new
			// connection meeting the same trailer.
			name:     "2 MiB of details above the client's header list limit",
			respond:  respondAlways(func() [][2]string { return statusFields(14, "huge details", huge) }),
			policy:   fastPolicy(3),
			dialOpts: []grpc.DialOption{grpc.WithMaxHeaderListSize(64 << 10)},
			// grpc-go closes the connection on the oversized headers: a retry that finds
			// it still reconnecting waits for it, which spends one of the schedule's
			// attempts (overload.md, rule 2), so 2 or 3 attempts reach the server.
			calls: 2, callsAtLeast: true, code: codes.Unavailable, kind: errs.ErrSandboxUnavailable,
			msg: []string{"GetSandbox: unavailable: ", "connection error: COMPRESSION_ERROR"},
		},
		{
			name: "RetryInfo of 10^18 s counts as absent: backoff",
			respond: respondAlways(func() [][2]string {
				return statusFields(14, "forever", statusProto(codes.Unavailable, "forever", retryInfo(&durationpb.Duration{Seconds: 1e18})))
			}),
			policy: fastPolicy(3),
			calls:  3, code: codes.Unavailable, kind: errs.ErrSandboxUnavailable, msg: []string{"unavailable: forever"},
		},
		{
			name: "RetryInfo of -5 s is no hint: backoff",
			respond: respondAlways(func() [][2]string {
				return statusFields(14, "negative", statusProto(codes.Unavailable, "negative", retryInfo(durationpb.New(-5*time.Second))))
			}),
			policy: fastPolicy(3),
			calls:  3, code: codes.Unavailable, kind: errs.ErrSandboxUnavailable, delay: -5 * time.Second, hasDelay: true,
		},
		{
			name: "RetryInfo with 2 billion nanos is invalid: absent",
			respond: respondAlways(func() [][2]string {
				return statusFields(14, "nanos", statusProto(codes.Unavailable, "nanos", retryInfo(&durationpb.Duration{Seconds: 1, Nanos: 2e9})))
			}),
			policy: fastPolicy(2),
			calls:  2, code: codes.Unavailable, kind: errs.ErrSandboxUnavailable,
		},
		{
			name: "a 5 ms hint is honoured",
			respond: respondAlways(func() [][2]string {
				return statusFields(8, "slow down", statusProto(codes.ResourceExhausted, "slow down", retryInfo(durationpb.New(5*time.Millisecond))))
			}),
			policy: fastPolicy(3),
			calls:  3, code: codes.ResourceExhausted, kind: errs.ErrSandboxResourceExhausted, delay: 5 * time.Millisecond, hasDelay: true, fromHint: true,
		},
		{
			name: "garbage status details bytes: code and message kept",
			respond: respondAlways(func() [][2]string {
				return [][2]string{{"grpc-status", "14"}, {"grpc-message", "garbage follows"}, {"grpc-status-details-bin", "//////////8"}}
			}),
			policy: fastPolicy(3),
			calls:  3, code: codes.Unavailable, kind: errs.ErrSandboxUnavailable, msg: []string{"GetSandbox: unavailable: garbage follows"},
		},
		{
			name: "undecodable details inside a valid Status are skipped, the rest counts",
			respond: respondAlways(func() [][2]string {
				st := statusProto(codes.Unavailable, "partly broken", retryInfo(durationpb.New(time.Millisecond)))
				st.Details = append([]*anypb.Any{
					{TypeUrl: "type.googleapis.com/google.rpc.ErrorInfo", Value: []byte{0xff, 0xff, 0xff}},
					{TypeUrl: "type.googleapis.com/google.rpc.RetryInfo", Value: []byte{0x0a, 0x7f}},
				}, st.Details...)
				return statusFields(14, "partly broken", st)
			}),
			policy: fastPolicy(2),
			calls:  2, code: codes.Unavailable, kind: errs.ErrSandboxUnavailable, delay: time.Millisecond, hasDelay: true, fromHint: true,
		},
		{
			// grpc-go itself turns an undecodable -bin trailer into INTERNAL and drops the code
			// the server sent: not retried, and the error says why.
			name: "non-base64 grpc-status-details-bin",
			respond: respondAlways(func() [][2]string {
				return [][2]string{{"grpc-status", "14"}, {"grpc-message", "x"}, {"grpc-status-details-bin", "%%% not base64 %%%"}}
			}),
			policy: fastPolicy(3),
			calls:  1, code: codes.Internal, kind: errs.ErrSandbox, msg: []string{"GetSandbox: internal error: transport: malformed grpc-status-details-bin"},
		},
		{
			name: "non-base64 value in another -bin trailer",
			respond: respondAlways(func() [][2]string {
				return [][2]string{{"grpc-status", "14"}, {"grpc-message", "x"}, {"x-trace-bin", "not*base64"}}
			}),
			policy: fastPolicy(3),
			calls:  1, code: codes.Internal, kind: errs.ErrSandbox, msg: []string{"malformed x-trace-bin"},
		},
		{
			name: "details whose code contradicts grpc-status",
			respond: respondAlways(func() [][2]string {
				return statusFields(14, "mismatch", statusProto(codes.NotFound, "mismatch", errorInfo("cwsandbox.com", "CWSANDBOX_RUNNER_UNAVAILABLE", nil)))
			}),
			policy: fastPolicy(3),
			calls:  1, code: codes.Internal, kind: errs.ErrSandbox, msg: []string{"grpc-status-details-bin mismatch"},
		},
		{
			name: "spoofed domain with a transient reason on INTERNAL: not retried",
			respond: respondAlways(func() [][2]string {
				return statusFields(13, "trust me", statusProto(codes.Internal, "trust me",
					errorInfo("cwsandbox.com.evil", "CWSANDBOX_BACKEND_UNAVAILABLE", map[string]string{"k": "v"}), retryInfo(durationpb.New(time.Millisecond))))
			}),
			policy: fastPolicy(5),
			calls:  1, code: codes.Internal, kind: errs.ErrSandbox, msg: []string{"GetSandbox: internal error: trust me"},
			reason: "CWSANDBOX_BACKEND_UNAVAILABLE", domain: "cwsandbox.com.evil", delay: time.Millisecond, hasDelay: true,
		},
		{
			name: "the same reason from the trusted domain is retried",
			respond: respondAlways(func() [][2]string {
				return statusFields(13, "restarting", statusProto(codes.Internal, "restarting", errorInfo("cwsandbox.com", "CWSANDBOX_BACKEND_UNAVAILABLE", nil)))
			}),
			policy: fastPolicy(4),
			calls:  4, code: codes.Internal, kind: errs.ErrSandboxUnavailable, reason: "CWSANDBOX_BACKEND_UNAVAILABLE", domain: "cwsandbox.com",
		},
		{
			name:    "grpc-status out of range",
			respond: respondAlways(func() [][2]string { return [][2]string{{"grpc-status", "999"}, {"grpc-message", "odd"}} }),
			policy:  fastPolicy(3),
			calls:   1, code: codes.Code(999), kind: errs.ErrSandbox, msg: []string{"GetSandbox: failed (code 999): odd"},
		},
		{
			name:    "grpc-status not a number",
			respond: respondAlways(func() [][2]string { return [][2]string{{"grpc-status", "fourteen"}} }),
			policy:  fastPolicy(3),
			calls:   1, code: codes.Unknown, kind: errs.ErrSandbox, msg: []string{"malformed grpc-status"},
		},
		{
			name:    "no grpc-status at all",
			respond: respondAlways(func() [][2]string { return [][2]string{{"grpc-message", "forgot the status"}} }),
			policy:  fastPolicy(3),
			calls:   1, code: codes.Unknown, kind: errs.ErrSandbox,
		},
		{
			name: "1 MiB grpc-message of control characters and invalid UTF-8",
			respond: respondAlways(func() [][2]string {
				return statusFields(14, "line1\nline2\r\x00\x1b[31m\xff\xfe"+strings.Repeat("\u2028é\xc3", 300_000), nil)
			}),
			policy: fastPolicy(2),
			calls:  2, code: codes.Unavailable, kind: errs.ErrSandboxUnavailable, msg: []string{"GetSandbox: unavailable: line1 line2  "},
		},
		{
			name: "HTTP 503 from a proxy, not gRPC",
			respond: func(c *h2Call) {
				_ = c.headers([][2]string{{":status", "503"}, {"content-type", "text/html"}}, false)
				_ = c.data([]byte("<html>upstream connect error</html>"), true)
			},
			policy: fastPolicy(3),
			calls:  3, code: codes.Unavailable, kind: errs.ErrSandboxUnavailable, msg: []string{"unexpected HTTP status code received from server: 503"},
		},
		{
			name: "HTTP 200 that is not gRPC",
			respond: func(c *h2Call) {
				_ = c.headers([][2]string{{":status", "200"}, {"content-type", "text/plain"}}, false)
				_ = c.data([]byte("hello"), true)
			},
			policy: fastPolicy(3),
			calls:  1, code: codes.Unknown, kind: errs.ErrSandbox, msg: []string{"content-type"},
		},
		{
			name:    "RST_STREAM INTERNAL_ERROR",
			respond: func(c *h2Call) { _ = c.rst(http2.ErrCodeInternal) },
			policy:  fastPolicy(3),
			calls:   1, code: codes.Internal, kind: errs.ErrSandbox, msg: []string{"RST_STREAM"},
		},
		{
			// grpc-go retries a refused stream once, transparently, below the interceptor: the
			// server sees two streams per attempt.
			name:    "RST_STREAM REFUSED_STREAM",
			respond: func(c *h2Call) { _ = c.rst(http2.ErrCodeRefusedStream) },
			policy:  fastPolicy(3),
			calls:   6, attempts: 3, code: codes.Unavailable, kind: errs.ErrSandboxUnavailable,
		},
		{
			name: "a server that ignores deadlines: per-attempt timeout retries",
			respond: func(c *h2Call) {
				if c.n <= 2 {
					c.stall()
					return
				}
				_ = c.reply(&sandboxpb.Sandbox{SandboxId: "sb-1"})
			},
			policy: perAttempt,
			calls:  3, callsAtLeast: true, ok: true,
		},
		{
			name:    "a server that ignores deadlines: the caller's deadline ends the call",
			respond: func(c *h2Call) { c.stall() },
			policy:  fastPolicy(5),
			timeout: 150 * time.Millisecond,
			calls:   1, code: codes.DeadlineExceeded, kind: errs.ErrSandboxRequestTimeout,
		},
	}

	rows := []*stats{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, addr := startH2(t, tt.respond)
			var rec recorder
			c := dial(t, addr, []interceptor.Option{interceptor.WithRetrier(retry.MustNew(tt.policy, retry.WithBudget(nil), retry.WithHooks(rec.hooks())))}, tt.dialOpts...)
			timeout := tt.timeout
			if timeout == 0 {
				timeout = hostileTimeout
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			deadline, _ := ctx.Deadline()
			ctx, attempts := track(ctx)
			meter := startStallMeter()
			start := time.Now()
			_, err := c.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
			end := time.Now()
			meter.close()
			st := &stats{name: tt.name}
			st.add(attempts(), err == nil, end.Sub(start), end.Sub(deadline))
			st.addLate(meter, deadline, end)
			rows = append(rows, st)

			if got := srv.Calls(); got != tt.calls && !(tt.callsAtLeast && got > tt.calls) {
				t.Errorf("server calls = %d, want %d", got, tt.calls)
			}
			if st.late > maxOvershoot {
				t.Errorf("returned %v after the deadline while the process ran (%v in all), want at most %v",
					st.late, end.Sub(deadline), maxOvershoot)
			}
			retries, dones := rec.events()
			for _, ev := range retries {
				if ev.FromHint != tt.fromHint {
					t.Errorf("retry event %+v: FromHint = %v, want %v", ev, ev.FromHint, tt.fromHint)
				}
				if n := len(ev.Err.Error()); n > 2048 {
					t.Errorf("a retry event's error text is %d bytes, want it bounded", n)
				}
			}
			for _, ev := range dones {
				if ev.Err != nil && len(ev.Err.Error()) > 2048 {
					t.Errorf("a done event's error text is %d bytes, want it bounded", len(ev.Err.Error()))
				}
			}
			if tt.ok {
				if err != nil {
					t.Fatalf("GetSandbox() error = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("GetSandbox() error = nil, want %v", tt.kind)
			}
			wantAttempts := tt.attempts
			switch {
			case wantAttempts != 0:
			case tt.callsAtLeast:
				wantAttempts = srv.Calls()
			default:
				wantAttempts = tt.calls
			}
			if n := attemptsOf(err); n != wantAttempts || attempts() != wantAttempts {
				t.Errorf("attempts reported, counted by hooks = %d, %d, want %d", n, attempts(), wantAttempts)
			}
			e := asErrs(t, err)
			if e.Kind() != tt.kind || !errors.Is(err, tt.kind) {
				t.Errorf("kind = %v, want %v", e.Kind(), tt.kind)
			}
			if status.Code(err) != tt.code {
				t.Errorf("status.Code(err) = %v, want %v", status.Code(err), tt.code)
			}
			if e.Reason() != tt.reason || e.Domain() != tt.domain {
				t.Errorf("Reason(), Domain() = %q, %q, want %q, %q", e.Reason(), e.Domain(), tt.reason, tt.domain)
			}
			if d, ok := e.RetryDelay(); d != tt.delay || ok != tt.hasDelay {
				t.Errorf("RetryDelay() = %v, %v, want %v, %v", d, ok, tt.delay, tt.hasDelay)
			}
			msg := err.Error()
			for _, sub := range tt.msg {
				if !strings.Contains(msg, sub) {
					t.Errorf("Error() = %q, want it to contain %q", msg, sub)
				}
			}
			if strings.ContainsAny(msg, "\n\r\x00\x1b") || len(msg) > 1200 {
				t.Errorf("Error() = %q (%d bytes), want one clean line of about 1 KiB at most", msg, len(msg))
			}
			if tt.checkMore != nil {
				tt.checkMore(t, e)
			}
		})
	}
	t.Logf("hostile server, one call per case:%s", table(rows))
}

// hostileTimeout is the caller's deadline in the cases that do not test one: a bound on a
// call that hangs, not a measurement. Under -race, moving megabytes of header block
// through hpack and the transport is slow (3 attempts of the 2 MiB cases take 2-3s on an
// idle 2-core machine, over 5s when it is loaded), so it is far above that.
const hostileTimeout = time.Minute

// maxOvershoot is how long after its deadline a call may return, not counting the time
// the process was stalled (see stallMeter): the scheduling slack of a 2-core machine
// under -race.
const maxOvershoot = 150 * time.Millisecond

// TestHostileRetryStorm runs calls concurrently against a server that always answers
// UNAVAILABLE with a RetryInfo of 0: the retry budget keeps the retries within its ratio, and
// no call passes its deadline.
//
// The budget has no per-second floor and a window longer than any run, so its bound does not
// depend on how long the run takes (with a floor of 1/s over 10 s, a run slowed past 10 s by a
// loaded machine earned retries the bound did not count); the deadline bounds a hang.
func TestHostileRetryStorm(t *testing.T) {
	srv, addr := startH2(t, func(c *h2Call) {
		_ = c.trailersOnly(statusFields(14, "storm", statusProto(codes.Unavailable, "storm", retryInfo(durationpb.New(0))))...)
	})
	const (
		workers  = 6
		perWork  = 10
		calls    = workers * perWork
		ratio    = 0.2
		floor    = 0.0 // retries per second
		window   = time.Hour
		attempts = 5
	)
	budget, err := retry.NewRatioBudget(ratio, floor, window)
	if err != nil {
		t.Fatal(err)
	}
	var rec recorder
	c := dial(t, addr, []interceptor.Option{interceptor.WithRetrier(retry.MustNew(fastPolicy(attempts), retry.WithBudget(budget), retry.WithHooks(rec.hooks())))})

	var mu sync.Mutex
	st := &stats{name: "retry storm (RetryInfo 0)"}
	causes := map[retry.StopReason]int{}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range perWork {
				ctx, cancel := context.WithTimeout(context.Background(), hostileTimeout)
				deadline, _ := ctx.Deadline()
				ctx, attempts := track(ctx)
				start := time.Now()
				_, err := c.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
				end := time.Now()
				cancel()
				var re *retry.Error
				mu.Lock()
				if !attemptsAgree(err, attempts(), deadline, end) {
					t.Errorf("Attempts() = %d, hooks counted %d (%v)", attemptsOf(err), attempts(), err)
				}
				st.add(attempts(), err == nil, end.Sub(start), end.Sub(deadline))
				if errors.As(err, &re) {
					causes[re.StopReason()]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("retry storm, %d workers x %d calls, budget %.0f%% + %.0f/s over %v:%s", workers, perWork, 100*ratio, floor, window, table([]*stats{st}))
	t.Logf("stop causes: %v", causes)

	maxRetries := int(ratio*calls + floor*window.Seconds())
	if got := srv.Calls(); got < calls+1 || got > calls+maxRetries {
		t.Errorf("server calls = %d, want in [%d, %d] (calls plus at most the budget's retries)", got, calls+1, calls+maxRetries)
	}
	if st.successes != 0 || st.calls != calls {
		t.Errorf("calls, successes = %d, %d, want %d, 0", st.calls, st.successes, calls)
	}
	if st.overshoot > 0 {
		t.Errorf("a call returned %v after its deadline, want before it", st.overshoot)
	}
	if causes[retry.StopBudget] == 0 || causes[retry.StopExhausted]+causes[retry.StopBudget] != calls {
		t.Errorf("stop causes = %v, want every call stopped by the budget or attempts, some by the budget", causes)
	}
	retries, _ := rec.events()
	for _, ev := range retries {
		if ev.FromHint || ev.Delay <= 0 {
			t.Errorf("retry event %v: want a backoff wait (a zero hint is no hint)", ev)
			break
		}
	}
}
