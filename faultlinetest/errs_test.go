package faultlinetest_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
)

// errsHealth is a fake health service whose Check returns err.
type errsHealth struct {
	healthpb.UnimplementedHealthServer
	err error
}

func (h errsHealth) Check(context.Context, *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	return nil, h.err
}

// TestErrsErrorFromServer checks what the package documentation promises: an *errs.Error
// a fake server returns reaches the client with its details, and classifies back to the
// same facts.
func TestErrsErrorFromServer(t *testing.T) {
	sent := errs.New(errs.ErrSandboxUnavailable, "runner restarting",
		errs.WithErrorInfo(classify.DefaultDomain, "CWSANDBOX_RUNNER_UNAVAILABLE", map[string]string{"runner": "r-1"}),
		errs.WithRetryDelay(3*time.Second),
		errs.WithFieldViolations(errs.FieldViolation{Field: "f", Description: "d"}))
	conn := faultlinetest.Serve(t, func(s *grpc.Server) { healthpb.RegisterHealthServer(s, errsHealth{err: sent}) }, nil)
	_, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	got := classify.Classify(err)
	type facts struct {
		Kind       errs.Kind
		Reason     string
		Domain     string
		Metadata   map[string]string
		Delay      time.Duration
		Violations []errs.FieldViolation
	}
	of := func(e *errs.Error) facts {
		d, _ := e.RetryDelay()
		return facts{e.Kind(), e.Reason(), e.Domain(), e.Metadata(), d, e.FieldViolations()}
	}
	if diff := cmp.Diff(of(sent), of(got)); diff != "" {
		t.Errorf("Classify(Check() error) differs from the *errs.Error the server returned (-sent +got):\n%s", diff)
	}
}
