package retry_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/retry"
)

// byCode returns noJitter(3) deciding by the given codes alone (Policy.RetryCodes).
func byCode(cs ...codes.Code) retry.Policy {
	p := noJitter(3)
	p.RetryOn, p.TransientCodes, p.RetryCodes = 0, 0, retry.Codes(cs...)
	return p
}

// TestRetryCodes checks Policy.RetryCodes: a failure is retried when its code is listed,
// whatever its kind (the kind stays what the classifier says), and not when it is not,
// whatever its kind or a trusted transient reason say; the safety rules still apply.
func TestRetryCodes(t *testing.T) {
	tests := []struct {
		name      string
		p         retry.Policy
		err       error
		level     retry.Idempotency
		kind      errs.Kind // the classification the case relies on; 0: not classified
		wantCalls int
		want      retry.StopReason
	}{
		{"listed code, its natural kind", byCode(codes.Unavailable), rpc(sandboxCall, codes.Unavailable), 0, errs.ErrSandboxUnavailable, 3, retry.StopExhausted},
		{"listed code, a specific kind outside any RetryOn", byCode(codes.NotFound), rpc(sandboxCall, codes.NotFound), 0, errs.ErrSandboxNotFound, 3, retry.StopExhausted},
		{"listed code, request timeout kind", byCode(codes.DeadlineExceeded), rpc(sandboxCall, codes.DeadlineExceeded), 0, errs.ErrSandboxRequestTimeout, 3, retry.StopExhausted},
		{"listed code, a kind chosen by a trusted reason", byCode(codes.Unavailable),
			rpc(sandboxCall, codes.Unavailable, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_FILE_IO_FAILED", nil)), 0, errs.ErrSandboxFile, 3, retry.StopExhausted},
		{"listed code, base kind", byCode(codes.Aborted), rpc(otherCall, codes.Aborted), 0, errs.ErrCWSandbox, 3, retry.StopExhausted},
		{"code not listed, a kind RetryOn would retry", byCode(codes.Aborted), rpc(sandboxCall, codes.Unavailable), 0, errs.ErrSandboxUnavailable, 1, retry.StopNotRetryable},
		{"code not listed, a trusted transient reason", byCode(codes.Unavailable),
			rpc(discoveryCall, codes.Internal, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_BACKEND_UNAVAILABLE", nil)), 0, errs.ErrDiscovery, 1, retry.StopNotRetryable},
		{"code not listed, a transient reason's kind", byCode(codes.Unavailable),
			rpc(sandboxCall, codes.FailedPrecondition, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_RUNNER_UNAVAILABLE", nil)), 0, errs.ErrSandboxUnavailable, 1, retry.StopNotRetryable},
		// safety.md section 3: the codes cannot make a quota retryable.
		{"bare resource exhausted, listed", byCode(codes.ResourceExhausted), rpc(sandboxCall, codes.ResourceExhausted), 0, errs.ErrSandboxResourceExhausted, 1, retry.StopNoServerSignal},
		{"resource exhausted with RetryInfo, listed", byCode(codes.ResourceExhausted),
			rpc(sandboxCall, codes.ResourceExhausted, faultlinetest.RetryInfo(time.Second)), 0, errs.ErrSandboxResourceExhausted, 3, retry.StopExhausted},
		// safety.md section 2: nor a call that must not be repeated.
		{"never retried", byCode(codes.Unavailable), rpc(sandboxCall, codes.Unavailable), retry.NeverRetry, errs.ErrSandboxUnavailable, 1, retry.StopUnsafe},
		{"not idempotent, ambiguous", byCode(codes.Unavailable), rpc(sandboxCall, codes.Unavailable), retry.NotIdempotent, errs.ErrSandboxUnavailable, 1, retry.StopUnsafe},
		{"not idempotent, server declined", byCode(codes.Unavailable),
			rpc(sandboxCall, codes.Unavailable, faultlinetest.RetryInfo(time.Second)), retry.NotIdempotent, errs.ErrSandboxUnavailable, 3, retry.StopExhausted},
		// Without a classification there is no code to match: Do has no classify function.
		{"raw status error", byCode(codes.Unavailable), status.Error(codes.Unavailable, "down"), 0, 0, 1, retry.StopNotRetryable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.p.Validate(); err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			var e *errs.Error
			if errors.As(tt.err, &e) != (tt.kind != 0) || e != nil && e.Kind() != tt.kind {
				t.Fatalf("%s: classified as %v, want %v", tt.name, e, tt.kind)
			}
			synctest.Test(t, func(t *testing.T) {
				op := failThen(10, tt.err)
				re := asRetryError(t, retry.Do(t.Context(), tt.p, op.op, retry.WithIdempotency(tt.level)))
				if op.calls() != tt.wantCalls || re.StopReason() != tt.want {
					t.Errorf("Do(%v) = %d calls, stop %v; want %d, %v", tt.err, op.calls(), re.StopReason(), tt.wantCalls, tt.want)
				}
				if e != nil && !errors.Is(re, tt.kind) {
					t.Errorf("final error %v does not match its kind %v", re, tt.kind)
				}
			})
		})
	}
}

// TestShrinkingBackoff checks a Multiplier below 1 (gRFC A6 allows any positive
// backoffMultiplier): the backoff before retry n is InitialBackoff*Multiplier^(n-1), never
// below 1ns.
func TestShrinkingBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := noJitter(6)
		p.InitialBackoff, p.MaxBackoff, p.Multiplier = time.Second, time.Second, 0.5
		op := failThen(10, unavailable())
		_ = retry.Do(context.Background(), p, op.op)
		want := []time.Duration{time.Second, 500 * time.Millisecond, 250 * time.Millisecond, 125 * time.Millisecond, 62500 * time.Microsecond}
		got := op.gaps()
		if len(got) != len(want) {
			t.Fatalf("waits = %v, want %v", got, want)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("wait %d = %v, want %v", i+1, got[i], want[i])
			}
		}
	})
	synctest.Test(t, func(t *testing.T) {
		p := noJitter(4)
		p.InitialBackoff, p.MaxBackoff, p.Multiplier = 3, 3, 1e-300
		op := failThen(10, unavailable())
		_ = retry.Do(context.Background(), p, op.op)
		for i, g := range op.gaps() {
			if want := []time.Duration{3, 1, 1}[i]; g != want {
				t.Errorf("wait %d = %v, want %v (never below 1ns)", i+1, g, want)
			}
		}
	})
}
