package retry

import (
	"errors"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/engine"
)

// TestDecide is decide's table, without a clock: every rule of the decision order in
// doc.go, and which one wins when several apply.
func TestDecide(t *testing.T) {
	sandbox := classify.Call{Method: "/coreweave.sandbox.v1.SandboxService/GetSandbox"}
	classified := func(c codes.Code, msg string, details ...proto.Message) *errs.Error {
		return classify.New().Classify(faultlinetest.Error(c, msg, details...), sandbox)
	}
	var (
		unavailable = classified(codes.Unavailable, "backend restarting")
		transient   = classified(codes.Unavailable, "runner down",
			faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_RUNNER_UNAVAILABLE", nil))
		hinted    = classified(codes.Unavailable, "later", faultlinetest.RetryInfo(2*time.Second))
		longHint  = classified(codes.Unavailable, "much later", faultlinetest.RetryInfo(time.Minute))
		exhausted = classified(codes.ResourceExhausted, "quota")
		shedding  = classified(codes.ResourceExhausted, "slow down", faultlinetest.RetryInfo(time.Second))
		notFound  = classified(codes.NotFound, "gone")
		internal  = classified(codes.Internal, "bug")
	)
	p := DefaultPolicy()
	p.MaxElapsed = 10 * time.Second
	sent := func(l Idempotency) engine.Facts { return engine.Facts{Level: uint8(l)} }
	notSent := func(l Idempotency) engine.Facts { return engine.Facts{Level: uint8(l), NotSent: true} }
	at := func(attempt int) schedule {
		return schedule{attempt: attempt, backoff: 200 * time.Millisecond, jitter: 0.5, remaining: -1}
	}
	with := func(s schedule, f func(*schedule)) schedule { f(&s); return s }
	retry := func(wait time.Duration) decision { return decision{wait: wait, spend: true} }
	tests := []struct {
		name string
		fl   failure
		s    schedule
		want decision
	}{
		// Whether the failure may be repeated at all.
		{"a retryable kind is retried after the backoff, spending the budget",
			failure{e: unavailable, f: sent(Idempotent)}, at(1), retry(200 * time.Millisecond)},
		{"a local failure is never retried, whatever else holds",
			failure{e: unavailable, f: notSent(Idempotent), local: true}, at(1), decision{stop: StopLocalFailure}},
		{"a kind not in RetryOn", failure{e: notFound, f: sent(Idempotent)}, at(1), decision{stop: StopNotRetryable}},
		{"INTERNAL, a kind not in RetryOn",
			failure{e: internal, f: sent(Idempotent)}, at(1), decision{stop: StopNotRetryable}},
		{"the policy's own attempt timeout is retried whatever the kind",
			failure{e: classified(codes.DeadlineExceeded, "slow"), f: sent(Idempotent), own: true}, at(1), retry(200 * time.Millisecond)},
		{"RESOURCE_EXHAUSTED without a server signal", failure{e: exhausted, f: sent(Idempotent)}, at(1), decision{stop: StopNoServerSignal}},
		{"RESOURCE_EXHAUSTED with RetryInfo waits the hint, jittered up",
			failure{e: shedding, f: sent(Idempotent)}, at(1), decision{wait: 1050 * time.Millisecond, fromHint: true, spend: true}},
		{"NeverRetry: not even with a server signal", failure{e: transient, f: sent(NeverRetry)}, at(1), decision{stop: StopUnsafe}},
		{"NeverRetry, not sent: retried", failure{e: unavailable, f: notSent(NeverRetry)}, at(1),
			decision{wait: 200 * time.Millisecond}},
		{"NotIdempotent, may have reached the server", failure{e: unavailable, f: sent(NotIdempotent)}, at(1), decision{stop: StopUnsafe}},
		{"NotIdempotent, the server declined (trusted transient reason)",
			failure{e: transient, f: sent(NotIdempotent)}, at(1), retry(200 * time.Millisecond)},
		{"NotIdempotent, the server declined (RetryInfo)",
			failure{e: hinted, f: sent(NotIdempotent)}, at(1), decision{wait: 2100 * time.Millisecond, fromHint: true, spend: true}},
		{"unknown idempotency, no headers: retried", failure{e: unavailable, f: sent(IdempotencyUnknown)}, at(1),
			retry(200 * time.Millisecond)},
		{"unknown idempotency, the server sent headers (gRFC A6 commit)",
			failure{e: unavailable, f: engine.Facts{Headers: true}}, at(1), decision{stop: StopUnsafe}},
		{"a stream that cannot resume", failure{e: unavailable, f: engine.Facts{Level: uint8(Idempotent), NotResumable: true}}, at(1),
			decision{stop: StopNotResumable}},
		{"a kind that is not retried beats a stream that cannot resume",
			failure{e: notFound, f: engine.Facts{NotResumable: true}}, at(1), decision{stop: StopNotRetryable}},

		// Whether the schedule has room for it.
		{"the last attempt", failure{e: unavailable, f: sent(Idempotent)}, at(5), decision{stop: StopExhausted}},
		{"the last attempt, spent waiting for a connection that never became ready",
			failure{e: unavailable, f: notSent(Idempotent)}, with(at(5), func(s *schedule) { s.skipped = 3 }), decision{stop: StopNotReady}},
		{"the last attempt, not sent, without waiting for the connection",
			failure{e: unavailable, f: notSent(Idempotent)}, at(5), decision{stop: StopExhausted}},
		{"a hint above MaxRetryDelay", failure{e: longHint, f: sent(Idempotent)}, at(1), decision{stop: StopHintTooLong}},
		{"a wait that reaches the deadline", failure{e: unavailable, f: sent(Idempotent)},
			with(at(1), func(s *schedule) { s.remaining = 200 * time.Millisecond }), decision{stop: StopDeadline}},
		{"a wait that ends before the deadline", failure{e: unavailable, f: sent(Idempotent)},
			with(at(1), func(s *schedule) { s.remaining = 201 * time.Millisecond }), retry(200 * time.Millisecond)},
		{"a hinted wait that reaches the deadline", failure{e: hinted, f: sent(Idempotent)},
			with(at(1), func(s *schedule) { s.remaining = 2 * time.Second }), decision{stop: StopDeadline}},
		{"a wait that reaches MaxElapsed", failure{e: unavailable, f: sent(Idempotent)},
			with(at(2), func(s *schedule) { s.elapsed = 9900 * time.Millisecond }), decision{stop: StopMaxElapsed}},
		{"a retry that is not sent spends nothing", failure{e: unavailable, f: notSent(Idempotent)}, at(1),
			decision{wait: 200 * time.Millisecond}},
		{"a resume after progress spends nothing", failure{e: unavailable, f: engine.Facts{Level: uint8(Idempotent), Progressed: true}}, at(1),
			decision{wait: 200 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fl := tt.fl
			fl.err = fl.e
			if got := p.decide(fl, tt.s); got != tt.want {
				t.Errorf("decide() = %+v, want %+v", got, tt.want)
			}
		})
	}

	t.Run("RetryCodes decides by code alone", func(t *testing.T) {
		q := DefaultPolicy()
		q.RetryOn, q.TransientCodes, q.RetryCodes = 0, 0, Codes(codes.Internal)
		for _, tc := range []struct {
			e    *errs.Error
			want StopReason
		}{{internal, 0}, {unavailable, StopNotRetryable}, {notFound, StopNotRetryable}} {
			if got := q.decide(failure{err: tc.e, e: tc.e, f: sent(Idempotent)}, at(1)); got.stop != tc.want {
				t.Errorf("decide(%v) stops with %v, want %v", tc.e.Code(), got.stop, tc.want)
			}
		}
	})
	t.Run("an error without a classified form is matched as it is", func(t *testing.T) {
		err := errors.New("plain")
		if got := p.decide(failure{err: err, f: sent(Idempotent)}, at(1)); got.stop != StopNotRetryable {
			t.Errorf("decide(plain error) = %+v, want %v", got, StopNotRetryable)
		}
		kinded := errs.New(errs.ErrSandboxUnavailable, "down")
		if got := p.decide(failure{err: kinded, e: kinded, f: sent(Idempotent)}, at(1)); got.stop != 0 {
			t.Errorf("decide(errs.New(ErrSandboxUnavailable)) = %+v, want a retry", got)
		}
	})
}
