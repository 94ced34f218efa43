package otelfaultline

import (
	"context"
	"errors"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/retry"
)

// ScopeName is the instrumentation scope of the instruments: the package's import path.
const ScopeName = "github.com/faultline-go/faultline/otelfaultline"

// Instruments. The first two are gRFC A96's, with its units, attributes and default bucket
// boundaries; the others are faultline's own.
const (
	// MetricCallRetries is a histogram of the retries of each call that retried (unit
	// {retry}, buckets 1, 2, 3, 4, 5; a call without retries records nothing).
	MetricCallRetries = "grpc.client.call.retries"
	// MetricCallRetryDelay is a histogram of the total time each call that retried (or
	// began to wait for a retry) waited between attempts (unit s, gRFC A66 latency buckets).
	MetricCallRetryDelay = "grpc.client.call.retry_delay"
	// MetricRetries counts scheduled retries (unit {retry}).
	MetricRetries = "faultline.client.retries"
	// MetricRetryStops counts calls that ended with an error, by why retrying stopped (unit
	// {call}).
	MetricRetryStops = "faultline.client.retry.stops"
	// MetricBudgetRefusals counts retries the retry budget refused (unit {retry}).
	MetricBudgetRefusals = "faultline.client.retry.budget_refusals"
	// MetricThrottled counts attempts the client-side adaptive throttle shed, first
	// attempts and retries, told apart by faultline.throttle.first_attempt (unit
	// {attempt}).
	MetricThrottled = "faultline.client.throttled"
)

// Span events, added to the span in the caller's context.
const (
	// EventRetry is added when a retry is scheduled.
	EventRetry = "faultline.retry"
	// EventRetryStopped is added when a call ends with an error.
	EventRetryStopped = "faultline.retry.stopped"
)

// Attribute keys.
const (
	KeyMethod        = attribute.Key("grpc.method")                      // gRFC A66
	KeyTarget        = attribute.Key("grpc.target")                      // gRFC A66
	KeyErrorType     = attribute.Key("error.type")                       // the status code: "UNAVAILABLE"
	KeyKind          = attribute.Key("faultline.kind")                   // "SandboxUnavailableError"
	KeyStopReason    = attribute.Key("faultline.stop_reason")            // "budget"
	KeyRetrySource   = attribute.Key("faultline.retry.source")           // "retry_info" or "backoff"
	KeyAttempt       = attribute.Key("faultline.retry.attempt")          // the attempt that failed, 1 for the first
	KeyDelay         = attribute.Key("faultline.retry.delay")            // seconds
	KeyFromRetryInfo = attribute.Key("faultline.retry.from_retry_info")  // the delay is the server's
	KeyAttempts      = attribute.Key("faultline.retry.attempts")         // attempts made, the first included
	KeyTotalWait     = attribute.Key("faultline.retry.total_wait")       // seconds
	KeyFirstAttempt  = attribute.Key("faultline.throttle.first_attempt") // the throttle shed the call's first attempt
)

// other replaces a method or target the filters leave out (gRFC A66).
const other = "other"

// An Option configures [Hooks]. The last option for a setting wins.
type Option interface {
	apply(*config)
}

type config struct {
	mp       metric.MeterProvider
	methodOK func(string) bool
	targetOK func(string) bool
}

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

// WithMeterProvider sets where the instruments are created. Default: the global
// MeterProvider (otel.GetMeterProvider() when Hooks is called; OpenTelemetry's global
// forwards to a provider installed later).
func WithMeterProvider(mp metric.MeterProvider) Option {
	return optionFunc(func(c *config) { c.mp = mp })
}

// WithMethodFilter sets which full method names ("/pkg.Service/Method") grpc.method
// records; the others are recorded as "other", so that method names a client builds at run
// time cannot blow up the metrics' cardinality (gRFC A66). Default: the methods of the
// services whose descriptors are registered in protoregistry.GlobalFiles, as generated code
// registers them. f must be safe for concurrent use.
func WithMethodFilter(f func(fullMethod string) bool) Option {
	return optionFunc(func(c *config) { c.methodOK = f })
}

// WithTargetFilter sets which targets grpc.target records; the others are recorded as
// "other" (gRFC A66). Default: every target as it is. f must be safe for concurrent use.
func WithTargetFilter(f func(target string) bool) Option {
	return optionFunc(func(c *config) { c.targetOK = f })
}

// latencyBounds are gRFC A66's latency buckets, in seconds.
var latencyBounds = []float64{0, 0.00001, 0.00005, 0.0001, 0.0003, 0.0006, 0.0008, 0.001, 0.002,
	0.003, 0.004, 0.005, 0.006, 0.008, 0.01, 0.013, 0.016, 0.02, 0.025, 0.03, 0.04, 0.05, 0.065,
	0.08, 0.1, 0.13, 0.16, 0.2, 0.25, 0.3, 0.4, 0.5, 0.65, 0.8, 1, 2, 5, 10, 20, 50, 100}

// Hooks returns retry hooks that record faultline's retries with OpenTelemetry: the
// instruments named by the Metric constants, and span events on the span in the caller's
// context. Install them with interceptor.WithHooks (or retry.WithHooks); several sets of
// hooks combine. A call that succeeds the first time records nothing and costs nothing.
//
// An error creating an instrument (none is expected: the names are valid) goes to
// OpenTelemetry's error handler, otel.Handle, and that instrument records nothing.
func Hooks(opts ...Option) retry.Hooks {
	c := config{methodOK: registered}
	for _, o := range opts {
		if o != nil { // a nil Option sets nothing
			o.apply(&c)
		}
	}
	if c.mp == nil {
		c.mp = otel.GetMeterProvider()
	}
	m := c.mp.Meter(ScopeName)
	r := &recorder{methodOK: c.methodOK, targetOK: c.targetOK}

	var err error
	if r.retries, err = m.Int64Histogram(MetricCallRetries, metric.WithUnit("{retry}"),
		metric.WithDescription("Number of retries during the client call. If there were no retries, 0 is not reported."),
		metric.WithExplicitBucketBoundaries(1, 2, 3, 4, 5)); err != nil {
		otel.Handle(err)
		r.retries = noop.Int64Histogram{}
	}
	if r.retryDelay, err = m.Float64Histogram(MetricCallRetryDelay, metric.WithUnit("s"),
		metric.WithDescription("Total time of delay while there is no active attempt during the client call."),
		metric.WithExplicitBucketBoundaries(latencyBounds...)); err != nil {
		otel.Handle(err)
		r.retryDelay = noop.Float64Histogram{}
	}
	if r.scheduled, err = m.Int64Counter(MetricRetries, metric.WithUnit("{retry}"),
		metric.WithDescription("Retries scheduled, by the failure's status code and kind and where the delay came from.")); err != nil {
		otel.Handle(err)
		r.scheduled = noop.Int64Counter{}
	}
	if r.stops, err = m.Int64Counter(MetricRetryStops, metric.WithUnit("{call}"),
		metric.WithDescription("Calls that ended with an error, by why retrying stopped and the last failure's status code and kind.")); err != nil {
		otel.Handle(err)
		r.stops = noop.Int64Counter{}
	}
	if r.throttled, err = m.Int64Counter(MetricThrottled, metric.WithUnit("{attempt}"),
		metric.WithDescription("Attempts the client-side adaptive throttle shed.")); err != nil {
		otel.Handle(err)
		r.throttled = noop.Int64Counter{}
	}
	if r.refusals, err = m.Int64Counter(MetricBudgetRefusals, metric.WithUnit("{retry}"),
		metric.WithDescription("Retries the retry budget refused.")); err != nil {
		otel.Handle(err)
		r.refusals = noop.Int64Counter{}
	}
	return retry.Hooks{OnRetry: r.onRetry, OnDone: r.onDone}
}

type recorder struct {
	methodOK   func(string) bool
	targetOK   func(string) bool
	retries    metric.Int64Histogram
	retryDelay metric.Float64Histogram
	scheduled  metric.Int64Counter
	stops      metric.Int64Counter
	refusals   metric.Int64Counter
	throttled  metric.Int64Counter
}

// onRetry counts a scheduled retry and adds EventRetry to the caller's span.
func (r *recorder) onRetry(ctx context.Context, ev retry.RetryEvent) {
	failure := failureAttrs(ev.Err)
	source := "backoff"
	if ev.FromHint {
		source = "retry_info"
	}
	attrs := make([]attribute.KeyValue, 0, 5)
	attrs = append(r.callAttrs(attrs, ev.Method, ev.Target), failure...)
	r.scheduled.Add(ctx, 1, metric.WithAttributes(append(attrs, KeyRetrySource.String(source))...))

	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent(EventRetry, trace.WithAttributes(append([]attribute.KeyValue{
			KeyAttempt.Int(ev.Attempt),
			KeyDelay.Float64(ev.Delay.Seconds()),
			KeyFromRetryInfo.Bool(ev.FromHint),
		}, failure...)...))
	}
}

// onDone records gRFC A96's per-call histograms for a call that retried (or waited to, and
// was cancelled), and for a call that failed counts why retrying stopped and adds
// EventRetryStopped to the caller's span.
func (r *recorder) onDone(ctx context.Context, ev retry.DoneEvent) {
	call := r.callAttrs(make([]attribute.KeyValue, 0, 5), ev.Method, ev.Target)
	if ev.Method != "" && (ev.Attempts > 1 || ev.TotalWait > 0) {
		set := metric.WithAttributeSet(attribute.NewSet(call...))
		if ev.Attempts > 1 {
			r.retries.Record(ctx, int64(ev.Attempts-1), set)
		}
		r.retryDelay.Record(ctx, ev.TotalWait.Seconds(), set)
	}
	if ev.Err == nil {
		return
	}
	failure := failureAttrs(ev.Err)
	reason := stopReason(ev.Reason)
	attrs := append(call, failure...)
	r.stops.Add(ctx, 1, metric.WithAttributes(append(attrs, KeyStopReason.String(reason))...))
	switch ev.Reason {
	case retry.StopBudget:
		r.refusals.Add(ctx, 1, metric.WithAttributes(attrs...))
	case retry.StopThrottled:
		r.throttled.Add(ctx, 1, metric.WithAttributes(append(attrs, KeyFirstAttempt.Bool(ev.Attempts == 0))...))
	}

	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent(EventRetryStopped, trace.WithAttributes(append([]attribute.KeyValue{
			KeyStopReason.String(reason),
			KeyAttempts.Int(ev.Attempts),
			KeyTotalWait.Float64(ev.TotalWait.Seconds()),
		}, failure...)...))
	}
}

// callAttrs appends grpc.method and grpc.target to attrs, for a gRPC call (method not "").
func (r *recorder) callAttrs(attrs []attribute.KeyValue, method, target string) []attribute.KeyValue {
	if method == "" {
		return attrs
	}
	m := other
	if r.methodOK == nil || r.methodOK(method) {
		m = strings.TrimPrefix(method, "/")
	}
	if r.targetOK != nil && !r.targetOK(target) {
		target = other
	}
	return append(attrs, KeyMethod.String(m), KeyTarget.String(target))
}

// failureAttrs returns error.type and, when err is classified, faultline.kind.
func failureAttrs(err error) []attribute.KeyValue {
	attrs := []attribute.KeyValue{KeyErrorType.String(errorType(err))}
	if e, ok := errors.AsType[*errs.Error](err); ok {
		attrs = append(attrs, KeyKind.String(e.Kind().String()))
	}
	return attrs
}

// codeNames are the status codes as the RPC semantic conventions and gRPC spell them.
var codeNames = [...]string{
	codes.OK:                 "OK",
	codes.Canceled:           "CANCELLED",
	codes.Unknown:            "UNKNOWN",
	codes.InvalidArgument:    "INVALID_ARGUMENT",
	codes.DeadlineExceeded:   "DEADLINE_EXCEEDED",
	codes.NotFound:           "NOT_FOUND",
	codes.AlreadyExists:      "ALREADY_EXISTS",
	codes.PermissionDenied:   "PERMISSION_DENIED",
	codes.ResourceExhausted:  "RESOURCE_EXHAUSTED",
	codes.FailedPrecondition: "FAILED_PRECONDITION",
	codes.Aborted:            "ABORTED",
	codes.OutOfRange:         "OUT_OF_RANGE",
	codes.Unimplemented:      "UNIMPLEMENTED",
	codes.Internal:           "INTERNAL",
	codes.Unavailable:        "UNAVAILABLE",
	codes.DataLoss:           "DATA_LOSS",
	codes.Unauthenticated:    "UNAUTHENTICATED",
}

// errorType returns the error.type attribute of a failure: its status code as the RPC
// semantic conventions spell it ("UNAVAILABLE", "DEADLINE_EXCEEDED"; status.Code's
// UNKNOWN for an error without a status), or "_OTHER" for nil and codes outside gRPC's
// seventeen.
func errorType(err error) string {
	c := status.Code(err)
	if err == nil || c == codes.OK || int(c) >= len(codeNames) {
		return "_OTHER"
	}
	return codeNames[c]
}

// stopReason returns the faultline.stop_reason attribute of c: its name
// (retry.StopReason.MarshalText), "_OTHER" for a reason this version does not know.
func stopReason(c retry.StopReason) string {
	if b, err := c.MarshalText(); err == nil {
		return string(b)
	}
	return "_OTHER"
}

// registered reports whether fullMethod ("/pkg.Service/Method") is a method of a service
// registered in protoregistry.GlobalFiles.
func registered(fullMethod string) bool {
	name := strings.TrimPrefix(fullMethod, "/")
	i := strings.LastIndexByte(name, '/')
	if i <= 0 {
		return false
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name[:i]))
	if err != nil {
		return false
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	return ok && sd.Methods().ByName(protoreflect.Name(name[i+1:])) != nil
}
