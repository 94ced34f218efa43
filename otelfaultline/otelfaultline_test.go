package otelfaultline_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/otelfaultline"
	"github.com/faultline-go/faultline/retry"
)

const (
	callAttrs = "grpc.method=coreweave.sandbox.v1.SandboxService/GetSandbox grpc.target=" + target
	unavail   = "error.type=UNAVAILABLE faultline.kind=SandboxUnavailableError"
)

// TestRetriedCall: a call that retried twice records one grpc.client.call.retries sample of
// 2 and one grpc.client.call.retry_delay sample equal to its waits, with gRFC A96's units,
// buckets and attributes; each retry is counted and is an event on the caller's span.
func TestRetriedCall(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := newTelemetry()
		e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(5), retry.WithHooks(tm.hooks()))))...)
		e.srv.FailNext(getSandbox, 1, withHint(1500*time.Millisecond)) // waits the hint: 1.5s
		e.srv.FailNext(getSandbox, 1, unavailable())                   // waits the second backoff: 2s

		ctx, span := tm.tp.Tracer("test").Start(context.Background(), "caller")
		start := time.Now()
		_, err := e.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
		elapsed := time.Since(start)
		span.End()
		if err != nil {
			t.Fatalf("GetSandbox: %v", err)
		}
		if elapsed != 3500*time.Millisecond {
			t.Fatalf("GetSandbox took %v on the virtual clock, want 3.5s", elapsed)
		}

		ms := tm.metrics(t)
		retries := ms[otelfaultline.MetricCallRetries]
		if retries.Unit != "{retry}" {
			t.Errorf("%s unit = %q, want {retry}", retries.Name, retries.Unit)
		}
		h, ok := retries.Data.(metricdata.Histogram[int64])
		if !ok || len(h.DataPoints) != 1 {
			t.Fatalf("%s data = %#v, want one int64 histogram point", otelfaultline.MetricCallRetries, retries.Data)
		}
		if got, want := h.DataPoints[0].Bounds, []float64{1, 2, 3, 4, 5}; !cmp.Equal(got, want) {
			t.Errorf("%s bounds = %v, want %v", otelfaultline.MetricCallRetries, got, want)
		}
		if got, want := points(t, retries), []string{callAttrs + ": count=1 sum=2"}; !cmp.Equal(got, want) {
			t.Errorf("%s = %q, want %q", otelfaultline.MetricCallRetries, got, want)
		}

		delay := ms[otelfaultline.MetricCallRetryDelay]
		if delay.Unit != "s" {
			t.Errorf("%s unit = %q, want s", delay.Name, delay.Unit)
		}
		if got, want := points(t, delay), []string{callAttrs + ": count=1 sum=3.5"}; !cmp.Equal(got, want) {
			t.Errorf("%s = %q, want %q", otelfaultline.MetricCallRetryDelay, got, want)
		}
		if d, ok := delay.Data.(metricdata.Histogram[float64]); !ok || len(d.DataPoints) != 1 || len(d.DataPoints[0].Bounds) != 41 || d.DataPoints[0].Bounds[40] != 100 {
			t.Errorf("%s data = %#v, want one point with gRFC A66's 41 latency bounds", otelfaultline.MetricCallRetryDelay, delay.Data)
		}

		want := []string{
			"error.type=UNAVAILABLE faultline.kind=SandboxUnavailableError faultline.retry.source=backoff " + callAttrs + ": 1",
			"error.type=UNAVAILABLE faultline.kind=SandboxUnavailableError faultline.retry.source=retry_info " + callAttrs + ": 1",
		}
		if got := points(t, ms[otelfaultline.MetricRetries]); !cmp.Equal(got, want) {
			t.Errorf("%s = %q, want %q", otelfaultline.MetricRetries, got, want)
		}
		for _, name := range []string{otelfaultline.MetricRetryStops, otelfaultline.MetricBudgetRefusals} {
			if m, ok := ms[name]; ok {
				t.Errorf("%s = %q after a call that succeeded, want nothing", name, points(t, m))
			}
		}

		wantEvents := []string{
			"faultline.retry " + unavail + " faultline.retry.attempt=1 faultline.retry.delay=1.5 faultline.retry.from_retry_info=true",
			"faultline.retry " + unavail + " faultline.retry.attempt=2 faultline.retry.delay=2 faultline.retry.from_retry_info=false",
		}
		if diff := cmp.Diff(wantEvents, tm.events("caller")); diff != "" {
			t.Errorf("caller's span events (-want +got):\n%s", diff)
		}
	})
}

// TestFirstTrySuccessRecordsNothing: a call that succeeds the first time records no
// sample and adds no span event.
func TestFirstTrySuccessRecordsNothing(t *testing.T) {
	tm := newTelemetry()
	e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithHooks(tm.hooks()))))...)
	ctx, span := tm.tp.Tracer("test").Start(context.Background(), "caller")
	if _, err := e.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}); err != nil {
		t.Fatalf("GetSandbox: %v", err)
	}
	span.End()
	if ms := tm.metrics(t); len(ms) != 0 {
		t.Errorf("metrics after a first-try success = %v, want none", ms)
	}
	if ev := tm.events("caller"); len(ev) != 0 {
		t.Errorf("span events after a first-try success = %q, want none", ev)
	}
}

// TestStops: a call that ends with an error is counted by why retrying stopped, with the
// last failure's status code and kind; a budget refusal is also counted on its own; the
// caller's span gets the stop reason.
func TestStops(t *testing.T) {
	tests := []struct {
		name      string
		policy    retry.Policy
		budget    retry.Budget
		script    func(*sandboxtest.Server)
		stops     string // the stops counter's one point
		refusals  []string
		retries   []string // grpc.client.call.retries
		stopEvent string
	}{
		{
			name:      "not retryable",
			policy:    secondsPolicy(3),
			script:    func(s *sandboxtest.Server) { s.FailNext(getSandbox, 1, faultlinetest.Status(codes.NotFound, "gone")) },
			stops:     "error.type=NOT_FOUND faultline.kind=SandboxNotFoundError faultline.stop_reason=not_retryable " + callAttrs + ": 1",
			stopEvent: "faultline.retry.stopped error.type=NOT_FOUND faultline.kind=SandboxNotFoundError faultline.retry.attempts=1 faultline.retry.total_wait=0 faultline.stop_reason=not_retryable",
		},
		{
			name:   "no server signal",
			policy: secondsPolicy(3),
			script: func(s *sandboxtest.Server) {
				s.FailNext(getSandbox, 1, faultlinetest.Status(codes.ResourceExhausted, "quota"))
			},
			stops:     "error.type=RESOURCE_EXHAUSTED faultline.kind=SandboxResourceExhaustedError faultline.stop_reason=no_server_signal " + callAttrs + ": 1",
			stopEvent: "faultline.retry.stopped error.type=RESOURCE_EXHAUSTED faultline.kind=SandboxResourceExhaustedError faultline.retry.attempts=1 faultline.retry.total_wait=0 faultline.stop_reason=no_server_signal",
		},
		{
			name:      "exhausted",
			policy:    secondsPolicy(3),
			script:    func(s *sandboxtest.Server) { s.FailNext(getSandbox, 3, unavailable()) },
			stops:     unavail + " faultline.stop_reason=exhausted " + callAttrs + ": 1",
			retries:   []string{callAttrs + ": count=1 sum=2"},
			stopEvent: "faultline.retry.stopped " + unavail + " faultline.retry.attempts=3 faultline.retry.total_wait=3 faultline.stop_reason=exhausted",
		},
		{
			name:      "hint too long",
			policy:    secondsPolicy(3),
			script:    func(s *sandboxtest.Server) { s.FailNext(getSandbox, 1, withHint(time.Hour)) },
			stops:     unavail + " faultline.stop_reason=hint_too_long " + callAttrs + ": 1",
			stopEvent: "faultline.retry.stopped " + unavail + " faultline.retry.attempts=1 faultline.retry.total_wait=0 faultline.stop_reason=hint_too_long",
		},
		{
			name:   "budget",
			policy: secondsPolicy(3),
			// A token bucket of 2 that takes 1 per retryable failure: after the first
			// failure one token is left, not more than half, so the retry is refused.
			budget:    mustBucket(t, 2, 0.1),
			script:    func(s *sandboxtest.Server) { s.FailNext(getSandbox, 1, unavailable()) },
			stops:     unavail + " faultline.stop_reason=budget " + callAttrs + ": 1",
			refusals:  []string{unavail + " " + callAttrs + ": 1"},
			stopEvent: "faultline.retry.stopped " + unavail + " faultline.retry.attempts=1 faultline.retry.total_wait=0 faultline.stop_reason=budget",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tm := newTelemetry()
				ropts := []retry.Option{retry.WithHooks(tm.hooks())}
				if tt.budget != nil {
					ropts = append(ropts, retry.WithBudget(tt.budget))
				}
				e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(tt.policy, ropts...)))...)
				tt.script(e.srv)
				ctx, span := tm.tp.Tracer("test").Start(context.Background(), "caller")
				_, err := e.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
				span.End()
				if err == nil {
					t.Fatal("GetSandbox = nil error, want a failure")
				}
				ms := tm.metrics(t)
				if got := points(t, ms[otelfaultline.MetricRetryStops]); !cmp.Equal(got, []string{tt.stops}) {
					t.Errorf("%s = %q, want %q", otelfaultline.MetricRetryStops, got, []string{tt.stops})
				}
				var refusals []string
				if m, ok := ms[otelfaultline.MetricBudgetRefusals]; ok {
					refusals = points(t, m)
				}
				if !cmp.Equal(refusals, tt.refusals) {
					t.Errorf("%s = %q, want %q", otelfaultline.MetricBudgetRefusals, refusals, tt.refusals)
				}
				var retries []string
				if m, ok := ms[otelfaultline.MetricCallRetries]; ok {
					retries = points(t, m)
				}
				if !cmp.Equal(retries, tt.retries) {
					t.Errorf("%s = %q, want %q", otelfaultline.MetricCallRetries, retries, tt.retries)
				}
				evs := tm.events("caller")
				if len(evs) == 0 || evs[len(evs)-1] != tt.stopEvent {
					t.Errorf("caller's span events = %q, want the last to be %q", evs, tt.stopEvent)
				}
			})
		})
	}
}

func mustBucket(t *testing.T, max, ratio float64) retry.Budget {
	t.Helper()
	b, err := retry.NewTokenBucket(max, ratio)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestEveryStopReasonIsNamed: every stop cause the retry package reports has a reason of
// its own, so none is counted as "_OTHER".
func TestEveryStopReasonIsNamed(t *testing.T) {
	tm := newTelemetry()
	h := tm.hooks()
	seen := map[string]bool{}
	causes := 0
	for c := retry.StopReason(1); c.String() != "StopReason("+strconv.Itoa(int(c))+")"; c++ {
		causes++
		h.OnDone(context.Background(), retry.DoneEvent{Method: getSandbox, Target: target, Attempts: 1, Reason: c,
			Err: errs.New(errs.ErrSandboxUnavailable, "x")})
	}
	m := tm.metrics(t)[otelfaultline.MetricRetryStops]
	sum, ok := m.Data.(metricdata.Sum[int64])
	if !ok {
		t.Fatalf("%s data = %T, want an int64 sum", otelfaultline.MetricRetryStops, m.Data)
	}
	for _, p := range sum.DataPoints {
		v, _ := p.Attributes.Value(otelfaultline.KeyStopReason)
		reason := v.AsString()
		if reason == "_OTHER" || reason == "" {
			t.Errorf("a stop cause is counted with faultline.stop_reason %q", reason)
		}
		if seen[reason] {
			t.Errorf("faultline.stop_reason %q names two causes", reason)
		}
		seen[reason] = true
	}
	if len(seen) != causes || causes < 10 {
		t.Errorf("%d distinct stop reasons for %d causes, want one for each (at least 10)", len(seen), causes)
	}
}

// TestFilters: grpc.method keeps the names of registered methods and records others as
// "other" (gRFC A66); the filters can say otherwise. A loop outside gRPC (no method) is
// counted by faultline's instruments without gRPC attributes, and not by gRFC A96's.
func TestFilters(t *testing.T) {
	failed := errs.New(errs.ErrSandboxUnavailable, "x")
	tests := []struct {
		name   string
		opts   []otelfaultline.Option
		method string
		want   string // the stops counter's attributes
	}{
		{name: "registered method", method: getSandbox,
			want: "error.type=UNAVAILABLE faultline.kind=SandboxUnavailableError faultline.stop_reason=exhausted grpc.method=coreweave.sandbox.v1.SandboxService/GetSandbox grpc.target=" + target},
		{name: "unregistered method", method: "/acme.Generic/Anything",
			want: "error.type=UNAVAILABLE faultline.kind=SandboxUnavailableError faultline.stop_reason=exhausted grpc.method=other grpc.target=" + target},
		{name: "method filter", method: "/acme.Generic/Anything",
			opts: []otelfaultline.Option{otelfaultline.WithMethodFilter(func(string) bool { return true })},
			want: "error.type=UNAVAILABLE faultline.kind=SandboxUnavailableError faultline.stop_reason=exhausted grpc.method=acme.Generic/Anything grpc.target=" + target},
		{name: "target filter", method: getSandbox,
			opts: []otelfaultline.Option{otelfaultline.WithTargetFilter(func(t string) bool { return t != target })},
			want: "error.type=UNAVAILABLE faultline.kind=SandboxUnavailableError faultline.stop_reason=exhausted grpc.method=coreweave.sandbox.v1.SandboxService/GetSandbox grpc.target=other"},
		{name: "outside gRPC", method: "",
			want: "error.type=UNAVAILABLE faultline.kind=SandboxUnavailableError faultline.stop_reason=exhausted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tm := newTelemetry()
			h := tm.hooks(tt.opts...)
			tgt := target
			if tt.method == "" {
				tgt = ""
			}
			h.OnDone(context.Background(), retry.DoneEvent{Method: tt.method, Target: tgt, Attempts: 2,
				TotalWait: time.Second, Reason: retry.StopExhausted, Err: failed})
			ms := tm.metrics(t)
			if got, want := points(t, ms[otelfaultline.MetricRetryStops]), []string{tt.want + ": 1"}; !cmp.Equal(got, want) {
				t.Errorf("%s = %q, want %q", otelfaultline.MetricRetryStops, got, want)
			}
			_, a96 := ms[otelfaultline.MetricCallRetries]
			if a96 != (tt.method != "") {
				t.Errorf("%s recorded = %v, want %v", otelfaultline.MetricCallRetries, a96, tt.method != "")
			}
		})
	}
}

// TestStreamRetried: a retried stream records gRFC A96's histograms like a unary call.
func TestStreamRetried(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := newTelemetry()
		e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(3), retry.WithHooks(tm.hooks()))))...)
		e.srv.FailNext(streamLogs, 1, unavailable())
		st, err := e.sb.StreamLogs(context.Background(), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
		if err != nil {
			t.Fatalf("StreamLogs: %v", err)
		}
		for {
			_, err := st.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("Recv: %v", err)
			}
		}
		const attrs = "grpc.method=coreweave.sandbox.v1.SandboxService/StreamLogs grpc.target=" + target
		ms := tm.metrics(t)
		if got, want := points(t, ms[otelfaultline.MetricCallRetries]), []string{attrs + ": count=1 sum=1"}; !cmp.Equal(got, want) {
			t.Errorf("%s = %q, want %q", otelfaultline.MetricCallRetries, got, want)
		}
		if got, want := points(t, ms[otelfaultline.MetricCallRetryDelay]), []string{attrs + ": count=1 sum=1"}; !cmp.Equal(got, want) {
			t.Errorf("%s = %q, want %q", otelfaultline.MetricCallRetryDelay, got, want)
		}
	})
}

// TestCancelledDuringWait: a call whose caller cancels it while it waits to retry is
// counted as stopped by "cancelled", with the status the caller got: CANCELLED.
func TestCancelledDuringWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := newTelemetry()
		e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(3), retry.WithHooks(tm.hooks()))))...)
		e.srv.FailNext(getSandbox, 1, unavailable())
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(500*time.Millisecond, cancel) // during the 1s wait
		_, err := e.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
		if status.Code(err) != codes.Canceled {
			t.Fatalf("GetSandbox = %v, want CANCELLED", err)
		}
		ms := tm.metrics(t)
		want := []string{"error.type=CANCELLED faultline.kind=SandboxUnavailableError faultline.stop_reason=cancelled " + callAttrs + ": 1"}
		if got := points(t, ms[otelfaultline.MetricRetryStops]); !cmp.Equal(got, want) {
			t.Errorf("%s = %q, want %q", otelfaultline.MetricRetryStops, got, want)
		}
		// One attempt was made and half a wait spent: no retries sample, a delay of 0.5s.
		if m, ok := ms[otelfaultline.MetricCallRetries]; ok {
			t.Errorf("%s = %q, want nothing for a call cancelled before its first retry", m.Name, points(t, m))
		}
		if got, want := points(t, ms[otelfaultline.MetricCallRetryDelay]), []string{callAttrs + ": count=1 sum=0.5"}; !cmp.Equal(got, want) {
			t.Errorf("%s = %q, want %q", otelfaultline.MetricCallRetryDelay, got, want)
		}
	})
}

// TestThrottled: attempts the client-side throttle sheds are counted on their own counter,
// first attempts and retries apart, and not as budget refusals; each such call is also a
// stop with reason "throttled".
func TestThrottled(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tm := newTelemetry()
		r := retry.MustNew(secondsPolicy(2), retry.WithBudget(nil), retry.WithThrottle(retry.DefaultThrottle()), retry.WithHooks(tm.hooks()))
		e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(r))...)
		e.srv.FailAlways(getSandbox, unavailable()) // the server rejects every attempt
		// With no accepts, call i's first attempt is shed with probability about i/(i+1), and
		// every retry once any is: 40 calls see both kinds of shedding but with a chance
		// below 1e-30 (the first few calls' retries are shed once the first rejection is in).
		var first, retries int
		for range 40 {
			_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
			if re, ok := errors.AsType[*retry.Error](err); ok && re.StopReason() == retry.StopThrottled {
				if re.Attempts() == 0 {
					first++
				} else {
					retries++
				}
			}
		}
		if first == 0 || retries == 0 {
			t.Fatalf("shed first attempts, retries = %d, %d; want both", first, retries)
		}
		ms := tm.metrics(t)
		want := []string{
			unavail + " faultline.throttle.first_attempt=false " + callAttrs + ": " + strconv.Itoa(retries),
			"error.type=UNAVAILABLE faultline.kind=SandboxError faultline.throttle.first_attempt=true " + callAttrs + ": " + strconv.Itoa(first),
		}
		if got := points(t, ms[otelfaultline.MetricThrottled]); !cmp.Equal(sorted(got), sorted(want)) {
			t.Errorf("%s = %q, want %q", otelfaultline.MetricThrottled, got, want)
		}
		if m, ok := ms[otelfaultline.MetricBudgetRefusals]; ok {
			t.Errorf("%s = %q, want none: the throttle is not the budget", otelfaultline.MetricBudgetRefusals, points(t, m))
		}
	})
}

// sorted returns a sorted copy of s.
func sorted(s []string) []string { return slices.Sorted(slices.Values(s)) }
