package otelfaultline_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/otelfaultline"
	"github.com/faultline-go/faultline/retry"
)

const (
	getSandbox = sandboxpb.SandboxService_GetSandbox_FullMethodName
	streamLogs = sandboxpb.SandboxService_StreamLogs_FullMethodName
	target     = "passthrough:///bufconn" // faultlinetest.Serve's
)

// telemetry is an OpenTelemetry SDK that keeps what it records: metrics for a manual
// reader, ended spans in a recorder.
type telemetry struct {
	reader *sdkmetric.ManualReader
	mp     *sdkmetric.MeterProvider
	spans  *tracetest.SpanRecorder
	tp     *sdktrace.TracerProvider
}

func newTelemetry() *telemetry {
	tm := &telemetry{reader: sdkmetric.NewManualReader(), spans: tracetest.NewSpanRecorder()}
	tm.mp = sdkmetric.NewMeterProvider(sdkmetric.WithReader(tm.reader))
	tm.tp = sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(tm.spans))
	return tm
}

// hooks returns the adapter's hooks on tm's meter provider.
func (tm *telemetry) hooks(opts ...otelfaultline.Option) retry.Hooks {
	return otelfaultline.Hooks(append([]otelfaultline.Option{otelfaultline.WithMeterProvider(tm.mp)}, opts...)...)
}

// metrics collects what the adapter recorded, by instrument name.
func (tm *telemetry) metrics(t testing.TB) map[string]metricdata.Metrics {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := tm.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatalf("Collect: %v", err)
	}
	out := map[string]metricdata.Metrics{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != otelfaultline.ScopeName {
			continue
		}
		for _, m := range sm.Metrics {
			out[m.Name] = m
		}
	}
	return out
}

// attrs renders an attribute set as "k=v k=v", sorted by key.
func attrs(s attribute.Set) string {
	var parts []string
	for _, kv := range s.ToSlice() {
		parts = append(parts, string(kv.Key)+"="+kv.Value.String())
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}

// points renders each data point of m as "attrs: value", sorted: the sum of a counter,
// "count=N sum=S" of a histogram.
func points(t testing.TB, m metricdata.Metrics) []string {
	t.Helper()
	var out []string
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			out = append(out, fmt.Sprintf("%s: %d", attrs(p.Attributes), p.Value))
		}
	case metricdata.Histogram[int64]:
		for _, p := range d.DataPoints {
			out = append(out, fmt.Sprintf("%s: count=%d sum=%d", attrs(p.Attributes), p.Count, p.Sum))
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			out = append(out, fmt.Sprintf("%s: count=%d sum=%g", attrs(p.Attributes), p.Count, p.Sum))
		}
	default:
		t.Fatalf("metric %s has data %T", m.Name, m.Data)
	}
	slices.Sort(out)
	return out
}

// events renders the events of the recorded spans named name as "event k=v ...".
func (tm *telemetry) events(name string) []string {
	var out []string
	for _, s := range tm.spans.Ended() {
		if s.Name() != name {
			continue
		}
		for _, e := range s.Events() {
			out = append(out, e.Name+" "+attrs(attribute.NewSet(e.Attributes...)))
		}
	}
	return out
}

// env is a sandboxtest server on bufconn and a client with dialOpts.
type env struct {
	srv  *sandboxtest.Server
	conn *grpc.ClientConn
	sb   sandboxpb.SandboxServiceClient
}

func newEnv(t testing.TB, dialOpts ...grpc.DialOption) *env {
	t.Helper()
	srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
	conn := faultlinetest.Serve(t, func(gs *grpc.Server) { srv.Register(gs) }, srv.ServerOptions(), dialOpts...)
	return &env{srv: srv, conn: conn, sb: sandboxpb.NewSandboxServiceClient(conn)}
}

// secondsPolicy is the default policy with maxAttempts attempts and backoffs of whole
// seconds (1s, 2s, 4s, 8s) and no jitter, so that waits are exact and visible on a synctest
// bubble's virtual clock.
func secondsPolicy(maxAttempts int) retry.Policy {
	p := retry.DefaultPolicy()
	p.MaxAttempts, p.InitialBackoff, p.MaxBackoff, p.Jitter, p.HintJitter = maxAttempts, time.Second, 8*time.Second, 0, 0
	return p
}

func unavailable() *status.Status {
	return faultlinetest.Status(codes.Unavailable, "backend restarting")
}

func withHint(d time.Duration) *status.Status {
	return faultlinetest.Status(codes.Unavailable, "backend restarting", faultlinetest.RetryInfo(d))
}
