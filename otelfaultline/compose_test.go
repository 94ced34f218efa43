package otelfaultline_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"testing/synctest"

	"github.com/google/go-cmp/cmp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"google.golang.org/grpc"
	experimental "google.golang.org/grpc/experimental/opentelemetry"
	grpcotel "google.golang.org/grpc/stats/opentelemetry"

	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/retry"
)

// spanTree renders the ended spans as "name <- parent name [previous-rpc-attempts=N]
// events=M", sorted, with the events counted of ours only.
func spanTree(spans []sdktrace.ReadOnlySpan) []string {
	names := map[string]string{}
	for _, s := range spans {
		names[s.SpanContext().SpanID().String()] = s.Name()
	}
	var out []string
	for _, s := range spans {
		line := s.Name() + " <- " + names[s.Parent().SpanID().String()]
		for _, kv := range s.Attributes() {
			if kv.Key == "previous-rpc-attempts" {
				line += fmt.Sprintf(" previous-rpc-attempts=%d", kv.Value.AsInt64())
			}
		}
		n := 0
		for _, e := range s.Events() {
			if e.Name == "faultline.retry" {
				n++
			}
		}
		out = append(out, fmt.Sprintf("%s faultline.retry events=%d", line, n))
	}
	slices.Sort(out)
	return out
}

// TestComposeWithGRPCOpenTelemetry checks what the package doc says of grpc-go's
// stats/opentelemetry.DialOption: given to the connection before our interceptors, it
// makes one call span with a child span per attempt (previous-rpc-attempts 0, 1, 2), our
// events land on the call span, and grpc.client.call.duration counts one call; given after,
// every attempt is a call of its own, with a span and a grpc.client.call.duration sample.
func TestComposeWithGRPCOpenTelemetry(t *testing.T) {
	const (
		sent    = "Sent.coreweave.sandbox.v1.SandboxService.GetSandbox"
		attempt = "Attempt.coreweave.sandbox.v1.SandboxService.GetSandbox"
	)
	tests := []struct {
		name      string
		before    bool
		spans     []string
		callCount uint64 // grpc.client.call.duration samples
	}{
		{name: "before ours", before: true, callCount: 1, spans: []string{
			attempt + " <- " + sent + " previous-rpc-attempts=0 faultline.retry events=0",
			attempt + " <- " + sent + " previous-rpc-attempts=1 faultline.retry events=0",
			attempt + " <- " + sent + " previous-rpc-attempts=2 faultline.retry events=0",
			sent + " <- caller faultline.retry events=2",
			"caller <-  faultline.retry events=0",
		}},
		{name: "after ours", before: false, callCount: 3, spans: []string{
			attempt + " <- " + sent + " previous-rpc-attempts=0 faultline.retry events=0",
			attempt + " <- " + sent + " previous-rpc-attempts=0 faultline.retry events=0",
			attempt + " <- " + sent + " previous-rpc-attempts=0 faultline.retry events=0",
			sent + " <- caller faultline.retry events=0",
			sent + " <- caller faultline.retry events=0",
			sent + " <- caller faultline.retry events=0",
			"caller <-  faultline.retry events=2",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				tm := newTelemetry()
				grpcOTel := grpcotel.DialOption(grpcotel.Options{
					MetricsOptions: grpcotel.MetricsOptions{MeterProvider: tm.mp},
					TraceOptions:   experimental.TraceOptions{TracerProvider: tm.tp, TextMapPropagator: propagation.TraceContext{}},
				})
				ours := interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(3), retry.WithHooks(tm.hooks()))))
				var opts []grpc.DialOption
				if tt.before {
					opts = append([]grpc.DialOption{grpcOTel}, ours...)
				} else {
					opts = append(ours, grpcOTel)
				}
				e := newEnv(t, opts...)
				e.srv.FailNext(getSandbox, 2, unavailable())
				ctx, span := tm.tp.Tracer("test").Start(context.Background(), "caller")
				_, err := e.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
				span.End()
				if err != nil {
					t.Fatalf("GetSandbox: %v", err)
				}
				if diff := cmp.Diff(tt.spans, spanTree(tm.spans.Ended())); diff != "" {
					t.Errorf("spans (-want +got):\n%s", diff)
				}
				if n := callDurations(t, tm); n != tt.callCount {
					t.Errorf("grpc.client.call.duration samples = %d, want %d", n, tt.callCount)
				}
			})
		})
	}
}

// callDurations returns the samples of grpc-go's grpc.client.call.duration.
func callDurations(t *testing.T, tm *telemetry) uint64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := tm.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if h, ok := m.Data.(metricdata.Histogram[float64]); ok && m.Name == "grpc.client.call.duration" {
				for _, p := range h.DataPoints {
					n += p.Count
				}
			}
		}
	}
	return n
}
