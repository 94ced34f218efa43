package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	otelcodes "go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	experimental "google.golang.org/grpc/experimental/opentelemetry"
	grpcotel "google.golang.org/grpc/stats/opentelemetry"

	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/otelfaultline"
	"github.com/faultline-go/faultline/retry"
)

const getSandbox = sandboxpb.SandboxService_GetSandbox_FullMethodName

// runOTel makes four calls, each under a span of its own, and prints what OpenTelemetry
// collected: a call that succeeds on its third attempt (RetryInfo 100ms), a NOT_FOUND, a
// RESOURCE_EXHAUSTED without RetryInfo (a quota: not retried), and an UNAVAILABLE whose
// retry the budget refuses (a gRFC A6 token bucket of 5 that the first call drained).
func runOTel(out io.Writer) error {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	ctx := context.Background()
	defer func() { _ = mp.Shutdown(ctx); _ = tp.Shutdown(ctx) }()

	srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
	lis, stop := srv.StartBufconn()
	defer stop()

	budget, err := retry.NewTokenBucket(5, 0.5)
	if err != nil {
		return err
	}
	opts := []grpc.DialOption{
		// grpc-go's instrumentation before ours: one call span, a child span per attempt.
		grpcotel.DialOption(grpcotel.Options{
			MetricsOptions: grpcotel.MetricsOptions{MeterProvider: mp},
			TraceOptions:   experimental.TraceOptions{TracerProvider: tp, TextMapPropagator: propagation.TraceContext{}},
		}),
	}
	opts = append(opts, interceptor.DialOptions(
		interceptor.WithRetrier(retry.MustNew(policy(), retry.WithBudget(budget), retry.WithHooks(otelfaultline.Hooks(otelfaultline.WithMeterProvider(mp))))))...)
	conn, err := sandboxtest.DialBufconn(lis, opts...)
	if err != nil {
		return err
	}
	defer conn.Close()
	client := sandboxpb.NewSandboxServiceClient(conn)

	calls := []struct {
		name   string
		id     string
		script func()
	}{
		{name: "flaky", id: "sb-1", script: func() {
			srv.FailNext(getSandbox, 2, faultlinetest.Status(codes.Unavailable, "runner is restarting",
				faultlinetest.RetryInfo(100*time.Millisecond)))
		}},
		{name: "gone", id: "sb-gone", script: func() {}},
		{name: "quota", id: "sb-1", script: func() {
			srv.FailNext(getSandbox, 1, faultlinetest.Status(codes.ResourceExhausted, "sandbox quota reached"))
		}},
		{name: "outage", id: "sb-1", script: func() {
			srv.FailNext(getSandbox, 1, faultlinetest.Status(codes.Unavailable, "runner is restarting"))
		}},
	}
	for _, c := range calls {
		c.script()
		cctx, span := tp.Tracer("example").Start(ctx, "call "+c.name)
		_, err := client.GetSandbox(cctx, &sandboxpb.GetSandboxRequest{SandboxId: c.id})
		span.End()
		fmt.Fprintf(out, "%-6s GetSandbox(%s): %v\n", c.name, c.id, err)
	}

	fmt.Fprintln(out, "\nspans (events of ours; grpc-go's attempt spans):")
	printSpans(out, spans.Ended())

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		return err
	}
	fmt.Fprintln(out, "\nmetrics:")
	printMetrics(out, rm)
	return nil
}

// printSpans prints each root span with its events and its children, in start order.
func printSpans(out io.Writer, spans []sdktrace.ReadOnlySpan) {
	slices.SortFunc(spans, func(a, b sdktrace.ReadOnlySpan) int { return a.StartTime().Compare(b.StartTime()) })
	children := map[string][]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		if s.Parent().IsValid() {
			p := s.Parent().SpanID().String()
			children[p] = append(children[p], s)
		}
	}
	var walk func(s sdktrace.ReadOnlySpan, depth int)
	walk = func(s sdktrace.ReadOnlySpan, depth int) {
		indent := strings.Repeat("  ", depth)
		line := indent + s.Name()
		for _, kv := range s.Attributes() {
			if kv.Key == "previous-rpc-attempts" {
				line += fmt.Sprintf(" previous-rpc-attempts=%d", kv.Value.AsInt64())
			}
		}
		if c := s.Status().Code; c != otelcodes.Unset {
			line += " [" + c.String() + "]"
		}
		fmt.Fprintln(out, line)
		for _, e := range s.Events() {
			if strings.HasPrefix(e.Name, "faultline.") {
				fmt.Fprintf(out, "%s  event %s %s\n", indent, e.Name, render(e.Attributes))
			}
		}
		for _, c := range children[s.SpanContext().SpanID().String()] {
			walk(c, depth+1)
		}
	}
	for _, s := range spans {
		if !s.Parent().IsValid() {
			walk(s, 1)
		}
	}
}

// printMetrics prints faultline's instruments with every data point, then grpc-go's
// count of calls and attempts.
func printMetrics(out io.Writer, rm metricdata.ResourceMetrics) {
	var ours, grpcs []metricdata.Metrics
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch {
			case sm.Scope.Name == otelfaultline.ScopeName:
				ours = append(ours, m)
			case m.Name == "grpc.client.call.duration" || m.Name == "grpc.client.attempt.started":
				grpcs = append(grpcs, m)
			}
		}
	}
	byName := func(a, b metricdata.Metrics) int { return strings.Compare(a.Name, b.Name) }
	slices.SortFunc(ours, byName)
	slices.SortFunc(grpcs, byName)
	for _, m := range ours {
		fmt.Fprintf(out, "  %s %s\n", m.Name, m.Unit)
		for _, p := range points(m) {
			fmt.Fprintf(out, "    %s\n", p)
		}
	}
	for _, m := range grpcs {
		fmt.Fprintf(out, "  %s (grpc-go, all calls): %s\n", m.Name, total(m))
	}
}

// points renders m's data points as "attributes: value", sorted.
func points(m metricdata.Metrics) []string {
	var out []string
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		for _, p := range d.DataPoints {
			out = append(out, fmt.Sprintf("%s: %d", render(p.Attributes.ToSlice()), p.Value))
		}
	case metricdata.Histogram[int64]:
		for _, p := range d.DataPoints {
			out = append(out, fmt.Sprintf("%s: count=%d sum=%d", render(p.Attributes.ToSlice()), p.Count, p.Sum))
		}
	case metricdata.Histogram[float64]:
		for _, p := range d.DataPoints {
			out = append(out, fmt.Sprintf("%s: count=%d sum=%g", render(p.Attributes.ToSlice()), p.Count, p.Sum))
		}
	}
	slices.Sort(out)
	return out
}

// total returns the sum of a counter's points or the count of a histogram's, over all
// attributes.
func total(m metricdata.Metrics) string {
	switch d := m.Data.(type) {
	case metricdata.Sum[int64]:
		var n int64
		for _, p := range d.DataPoints {
			n += p.Value
		}
		return fmt.Sprintf("%d", n)
	case metricdata.Histogram[float64]:
		var n uint64
		for _, p := range d.DataPoints {
			n += p.Count
		}
		return fmt.Sprintf("count=%d", n)
	}
	return fmt.Sprintf("%T", m.Data)
}

// render prints attributes as "k=v", sorted by key.
func render(kvs []attribute.KeyValue) string {
	parts := make([]string, 0, len(kvs))
	for _, kv := range kvs {
		parts = append(parts, string(kv.Key)+"="+kv.Value.String())
	}
	slices.Sort(parts)
	return strings.Join(parts, " ")
}
