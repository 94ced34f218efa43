package retry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/retry"
)

// unavailable returns a retryable client-made error (kind SandboxUnavailableError).
func unavailable(opts ...errs.Option) *errs.Error {
	return errs.New(errs.ErrSandboxUnavailable, "backend restarting", opts...)
}

// withHint returns unavailable() carrying a server retry delay.
func withHint(d time.Duration) *errs.Error {
	return unavailable(errs.WithRetryDelay(d))
}

// rpcUnavailable returns a classified real gRPC status error: UNAVAILABLE, with a RetryInfo
// of hint when hint != 0.
func rpcUnavailable(hint time.Duration) *errs.Error {
	st := faultlinetest.Status(codes.Unavailable, "runner unavailable")
	if hint != 0 {
		st = faultlinetest.Status(codes.Unavailable, "runner unavailable", faultlinetest.RetryInfo(hint))
	}
	return classify.Classify(st.Err())
}

// notFound returns a non-retryable error.
func notFound() *errs.Error {
	return errs.New(errs.ErrSandboxNotFound, "no such sandbox", errs.WithResource(errs.Resource{SandboxID: "sb-1"}))
}

// noJitter returns DefaultPolicy without jitter, with MaxAttempts n: its waits (100 ms,
// 200 ms, ...) are exact on a synctest bubble's virtual clock.
func noJitter(n int) retry.Policy {
	p := retry.DefaultPolicy()
	p.MaxAttempts, p.Jitter, p.HintJitter = n, 0, 0
	return p
}

// script is an op for one goroutine: attempt i returns errs[i], and the last entry is
// repeated past the end. It records when each attempt started.
type script struct {
	errs  []error
	times []time.Time
	ctxs  []context.Context
}

func newScript(errs ...error) *script { return &script{errs: errs} }

// failThen returns a script that fails k times with err, then succeeds.
func failThen(k int, err error) *script {
	s := &script{}
	for range k {
		s.errs = append(s.errs, err)
	}
	s.errs = append(s.errs, nil)
	return s
}

func (s *script) op(ctx context.Context) error {
	s.times = append(s.times, time.Now())
	s.ctxs = append(s.ctxs, ctx)
	i := min(len(s.times)-1, len(s.errs)-1)
	return s.errs[i]
}

func (s *script) calls() int { return len(s.times) }

// gaps returns the time between consecutive attempts.
func (s *script) gaps() []time.Duration {
	var out []time.Duration
	for i := 1; i < len(s.times); i++ {
		out = append(out, s.times[i].Sub(s.times[i-1]))
	}
	return out
}

// asRetryError returns err as a *retry.Error, failing the test when it is not one.
func asRetryError(t *testing.T, err error) *retry.Error {
	t.Helper()
	var re *retry.Error
	if !errors.As(err, &re) {
		t.Fatalf("err = %v (%T), want a *retry.Error", err, err)
	}
	return re
}

// events records the hooks' calls: the retries, and the ends of calls that failed (stops).
type events struct {
	retries []retry.RetryEvent
	stops   []retry.DoneEvent
}

func (ev *events) hooks() retry.Hooks {
	return retry.Hooks{
		OnRetry: func(_ context.Context, e retry.RetryEvent) { ev.retries = append(ev.retries, e) },
		OnDone: func(_ context.Context, e retry.DoneEvent) {
			if e.Err != nil {
				ev.stops = append(ev.stops, e)
			}
		},
	}
}

// rpcHugeHint returns a classified UNAVAILABLE whose RetryInfo asks for 10^10 seconds: valid
// for protobuf, too long for time.Duration, so the parser clamps it to the longest duration.
func rpcHugeHint() *errs.Error {
	ri := &errdetails.RetryInfo{RetryDelay: &durationpb.Duration{Seconds: 1e10}}
	return classify.Classify(faultlinetest.Status(codes.Unavailable, "come back much later", ri).Err())
}

// oneAttempt is the default policy with one attempt: no retry.
func oneAttempt() retry.Policy {
	p := retry.DefaultPolicy()
	p.MaxAttempts = 1
	return p
}
