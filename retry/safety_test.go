package retry_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/retry"
)

// Calls of each family, for classifying real statuses as the interceptor would.
var (
	sandboxCall   = classify.Call{Method: "/coreweave.sandbox.v1.SandboxService/GetSandbox", Resource: errs.Resource{SandboxID: "sb-1"}}
	discoveryCall = classify.Call{Method: "/coreweave.sandbox.v1.DiscoveryService/GetRunner", Resource: errs.Resource{RunnerID: "r-1"}}
	otherCall     = classify.Call{Method: "/acme.billing.v1.Billing/Charge"}
	healthCall    = classify.Call{Method: "/grpc.health.v1.Health/Check"}
)

// rpc returns the classified error of a status with code c and details, on call.
func rpc(call classify.Call, c codes.Code, details ...proto.Message) *errs.Error {
	return classify.New().Classify(faultlinetest.Status(c, "server message", details...).Err(), call)
}

// ErrorInfo domains: one the classifier trusts, one it does not.
const (
	trusted   = classify.DefaultDomain
	untrusted = "evil.example.com"
)

// firstFailure reports the first attempt's failure err to a fresh tracker of noJitter(3) and
// returns Failed's result: nil when the failure is to be retried (after its wait).
func firstFailure(t *testing.T, err error, f engine.Facts) *retry.Error {
	t.Helper()
	r, nerr := retry.New(noJitter(3), retry.WithBudget(nil))
	if nerr != nil {
		t.Fatal(nerr)
	}
	return final(t, track(r, "", nil).Failed(t.Context(), err, f))
}

// TestIdempotencyOrigin checks the table of safety.md section 2 for every idempotency level,
// with the origins of section 1: an ambiguous failure (may have reached the handler), one the
// server declined (RetryInfo, or a trusted transient reason), one that was provably not sent
// (retried whatever the method: not sent means not run), and a deterministic local one
// (never retried).
func TestIdempotencyOrigin(t *testing.T) {
	failures := []struct {
		name     string
		err      error
		declined bool
	}{
		{"bare unavailable", rpc(sandboxCall, codes.Unavailable), false},
		{"client-made unavailable", unavailable(), false},
		{"unavailable with an untrusted transient reason", rpc(sandboxCall, codes.Unavailable, faultlinetest.ErrorInfo(untrusted, "CWSANDBOX_RUNNER_UNAVAILABLE", nil)), false},
		{"unavailable on a discovery call", rpc(discoveryCall, codes.Unavailable), false},
		{"RetryInfo", rpc(sandboxCall, codes.Unavailable, faultlinetest.RetryInfo(time.Second)), true},
		{"client-made hint", withHint(time.Second), true},
		{"trusted transient reason", rpc(sandboxCall, codes.Unavailable, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_RUNNER_UNAVAILABLE", nil)), true},
		{"trusted transient reason on a discovery call", rpc(discoveryCall, codes.Unavailable, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_BACKEND_UNAVAILABLE", nil)), true},
		{"resource exhausted, throttled", rpc(sandboxCall, codes.ResourceExhausted, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_FSS_BACKEND_THROTTLED", nil)), true},
	}
	// retried[level] = {ambiguous, server declined}: safety.md section 2.
	retried := map[retry.Idempotency][2]bool{
		retry.NoSideEffects:      {true, true},
		retry.Idempotent:         {true, true},
		retry.IdempotencyUnknown: {true, true},
		retry.NotIdempotent:      {false, true},
		retry.NeverRetry:         {false, false},
	}
	for level, row := range retried {
		for _, fl := range failures {
			for _, origin := range []origin{ambiguous, notSent, local} {
				name := fmt.Sprintf("%v/%s/origin %d", level, fl.name, origin)
				t.Run(name, func(t *testing.T) {
					var want retry.StopReason // 0: retried
					switch {
					case origin == local:
						want = retry.StopLocalFailure // section 1: never, whatever the method
					case origin == notSent:
						// Section 1: it ran nothing, so it is retried for every method.
					case fl.declined:
						// The server did not run it.
						if !row[1] {
							want = retry.StopUnsafe
						}
					case !row[0]:
						want = retry.StopUnsafe
					}
					synctest.Test(t, func(t *testing.T) {
						err := fl.err
						if origin == local {
							err = asLocal(err)
						}
						final := firstFailure(t, err, facts(level, origin))
						switch {
						case want == 0 && final != nil:
							t.Errorf("Failed(%s, %v, origin %d) = %v (cause %v), want nil (retried)", fl.name, level, origin, final, final.StopReason())
						case want != 0 && final == nil:
							t.Errorf("Failed(%s, %v, origin %d) = nil (retried), want a final error, cause %v", fl.name, level, origin, want)
						case want != 0 && (final.StopReason() != want || final.Attempts() != 1 || final.Last() != err):
							t.Errorf("Failed(%s, %v, origin %d) = cause %v, %d attempts, last %v; want %v, 1, the failure",
								fl.name, level, origin, final.StopReason(), final.Attempts(), final.Last(), want)
						}
					})
				})
			}
		}
	}
}

// TestWithIdempotency checks that the level given to Do and to a Retrier applies to every
// attempt of their operations.
func TestWithIdempotency(t *testing.T) {
	tests := []struct {
		name      string
		opts      []retry.Option
		err       error
		wantCalls int
		wantCause retry.StopReason
	}{
		{"default is unknown: retried", nil, unavailable(), 3, retry.StopExhausted},
		{"no side effects", []retry.Option{retry.WithIdempotency(retry.NoSideEffects)}, unavailable(), 3, retry.StopExhausted},
		{"idempotent", []retry.Option{retry.WithIdempotency(retry.Idempotent)}, rpc(sandboxCall, codes.Unavailable), 3, retry.StopExhausted},
		{"not idempotent, ambiguous", []retry.Option{retry.WithIdempotency(retry.NotIdempotent)}, rpc(sandboxCall, codes.Unavailable), 1, retry.StopUnsafe},
		{"not idempotent, server hint", []retry.Option{retry.WithIdempotency(retry.NotIdempotent)}, rpc(sandboxCall, codes.Unavailable, faultlinetest.RetryInfo(time.Second)), 3, retry.StopExhausted},
		{"not idempotent, transient reason", []retry.Option{retry.WithIdempotency(retry.NotIdempotent)},
			rpc(sandboxCall, codes.Unavailable, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_FSS_BUCKET_PROVISIONING", nil)), 3, retry.StopExhausted},
		{"never, server hint", []retry.Option{retry.WithIdempotency(retry.NeverRetry)}, rpc(sandboxCall, codes.Unavailable, faultlinetest.RetryInfo(time.Second)), 1, retry.StopUnsafe},
		{"never, transient reason", []retry.Option{retry.WithIdempotency(retry.NeverRetry)},
			rpc(sandboxCall, codes.Unavailable, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_RUNNER_UNAVAILABLE", nil)), 1, retry.StopUnsafe},
		{"last option wins", []retry.Option{retry.WithIdempotency(retry.NeverRetry), retry.WithIdempotency(retry.Idempotent)}, unavailable(), 3, retry.StopExhausted},
		{"last option wins, unsafe", []retry.Option{retry.WithIdempotency(retry.Idempotent), retry.WithIdempotency(retry.NotIdempotent)}, unavailable(), 1, retry.StopUnsafe},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var ev events
				op := failThen(10, tt.err)
				err := retry.Do(t.Context(), noJitter(3), op.op, append(tt.opts, retry.WithHooks(ev.hooks()))...)
				re := asRetryError(t, err)
				if op.calls() != tt.wantCalls || re.Attempts() != tt.wantCalls || re.StopReason() != tt.wantCause {
					t.Errorf("Do(%s) = %d calls, %d attempts, cause %v; want %d, %d, %v",
						tt.name, op.calls(), re.Attempts(), re.StopReason(), tt.wantCalls, tt.wantCalls, tt.wantCause)
				}
				if len(ev.stops) != 1 || ev.stops[0].Reason != tt.wantCause {
					t.Errorf("OnStop events = %v, want one with cause %v", ev.stops, tt.wantCause)
				}
				if status.Code(err) != status.Code(tt.err) {
					t.Errorf("status.Code(Do(%s)) = %v, want %v", tt.name, status.Code(err), status.Code(tt.err))
				}
			})
		})
	}
	t.Run("Retrier", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r, err := retry.New(noJitter(3), retry.WithBudget(nil), retry.WithIdempotency(retry.NotIdempotent))
			if err != nil {
				t.Fatal(err)
			}
			op := failThen(10, unavailable())
			if re := asRetryError(t, r.Do(t.Context(), op.op)); op.calls() != 1 || re.StopReason() != retry.StopUnsafe {
				t.Errorf("Retrier(NotIdempotent).Do(unavailable) = %d calls, cause %v; want 1, %v", op.calls(), re.StopReason(), retry.StopUnsafe)
			}
			r2, err := r.WithPolicy(noJitter(4))
			if err != nil {
				t.Fatal(err)
			}
			op = failThen(10, unavailable())
			if re := asRetryError(t, r2.Do(t.Context(), op.op)); op.calls() != 1 || re.StopReason() != retry.StopUnsafe {
				t.Errorf("WithPolicy kept another level: Do(unavailable) = %d calls, cause %v; want 1, %v", op.calls(), re.StopReason(), retry.StopUnsafe)
			}
		})
	})
	t.Run("own per-attempt timeout is ambiguous", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := noJitter(3)
			p.PerAttemptTimeout = time.Second
			calls := 0
			op := func(ctx context.Context) error {
				calls++
				<-ctx.Done()
				return status.FromContextError(ctx.Err()).Err()
			}
			err := retry.Do(t.Context(), p, op, retry.WithIdempotency(retry.NotIdempotent))
			if re := asRetryError(t, err); calls != 1 || re.StopReason() != retry.StopUnsafe {
				t.Errorf("Do(NotIdempotent, own timeout) = %d calls, cause %v; want 1, %v", calls, re.StopReason(), retry.StopUnsafe)
			}
		})
	})
}

func TestIdempotencyString(t *testing.T) {
	tests := []struct {
		l    retry.Idempotency
		want string
	}{
		{retry.IdempotencyUnknown, "idempotency unknown"},
		{retry.NoSideEffects, "no side effects"},
		{retry.Idempotent, "idempotent"},
		{retry.NotIdempotent, "not idempotent"},
		{retry.NeverRetry, "never retried"},
		{200, "Idempotency(200)"},
	}
	for _, tt := range tests {
		if got := tt.l.String(); got != tt.want {
			t.Errorf("Idempotency(%d).String() = %q, want %q", uint8(tt.l), got, tt.want)
		}
	}
	var zero engine.Facts
	if retry.Idempotency(zero.Level) != retry.IdempotencyUnknown || zero.NotSent || zero.Headers || zero.Resume {
		t.Errorf("engine.Facts{} = %+v, want idempotency unknown, origin ambiguous", zero)
	}
}

// TestResourceExhaustedNeedsSignal checks safety.md section 3: a RESOURCE_EXHAUSTED is retried
// only with RetryInfo or a trusted transient reason, on every family and at every
// idempotency level; a bare one stops at once as "no server signal".
func TestResourceExhaustedNeedsSignal(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		opts      []retry.Option
		wantCalls int
		wantCause retry.StopReason
	}{
		{"client-made, bare", errs.New(errs.ErrSandboxResourceExhausted, "quota"), nil, 1, retry.StopNoServerSignal},
		{"client-made, hint", errs.New(errs.ErrSandboxResourceExhausted, "quota", errs.WithRetryDelay(time.Second)), nil, 3, retry.StopExhausted},
		{"sandbox, bare", rpc(sandboxCall, codes.ResourceExhausted), nil, 1, retry.StopNoServerSignal},
		{"sandbox, RetryInfo", rpc(sandboxCall, codes.ResourceExhausted, faultlinetest.RetryInfo(time.Second)), nil, 3, retry.StopExhausted},
		{"sandbox, trusted transient reason", rpc(sandboxCall, codes.ResourceExhausted, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_RUNNER_UNAVAILABLE", nil)), nil, 3, retry.StopExhausted},
		{"sandbox, inflight limit", rpc(sandboxCall, codes.ResourceExhausted, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_FSS_INFLIGHT_LIMIT", nil)), nil, 3, retry.StopExhausted},
		{"sandbox, trusted reason that is not transient", rpc(sandboxCall, codes.ResourceExhausted, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_PLACEMENT_FAILED", nil)), nil, 1, retry.StopNoServerSignal},
		{"sandbox, untrusted transient reason", rpc(sandboxCall, codes.ResourceExhausted, faultlinetest.ErrorInfo(untrusted, "CWSANDBOX_RUNNER_UNAVAILABLE", nil)), nil, 1, retry.StopNoServerSignal},
		{"sandbox, snapshot quota", rpc(sandboxCall, codes.ResourceExhausted, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_FSS_QUOTA_EXCEEDED", nil)), nil, 1, retry.StopNotRetryable},
		{"discovery, bare", rpc(discoveryCall, codes.ResourceExhausted), nil, 1, retry.StopNoServerSignal},
		{"discovery, RetryInfo", rpc(discoveryCall, codes.ResourceExhausted, faultlinetest.RetryInfo(time.Second)), nil, 3, retry.StopExhausted},
		{"discovery, trusted transient reason", rpc(discoveryCall, codes.ResourceExhausted, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_BACKEND_UNAVAILABLE", nil)), nil, 3, retry.StopExhausted},
		{"unknown service, bare", rpc(otherCall, codes.ResourceExhausted), nil, 1, retry.StopNoServerSignal},
		{"unknown service, RetryInfo", rpc(otherCall, codes.ResourceExhausted, faultlinetest.RetryInfo(time.Second)), nil, 3, retry.StopExhausted},
		{"raw status through the classifier, bare", status.Error(codes.ResourceExhausted, "quota"),
			[]retry.Option{retry.WithClassifyFunc(classify.Classify)}, 1, retry.StopNoServerSignal},
		{"raw status through the classifier, RetryInfo", faultlinetest.Status(codes.ResourceExhausted, "quota", faultlinetest.RetryInfo(time.Second)).Err(),
			[]retry.Option{retry.WithClassifyFunc(classify.Classify)}, 3, retry.StopExhausted},
		{"bare, no side effects", rpc(sandboxCall, codes.ResourceExhausted), []retry.Option{retry.WithIdempotency(retry.NoSideEffects)}, 1, retry.StopNoServerSignal},
		{"bare, idempotent", rpc(sandboxCall, codes.ResourceExhausted), []retry.Option{retry.WithIdempotency(retry.Idempotent)}, 1, retry.StopNoServerSignal},
		{"RetryInfo, not idempotent", rpc(sandboxCall, codes.ResourceExhausted, faultlinetest.RetryInfo(time.Second)), []retry.Option{retry.WithIdempotency(retry.NotIdempotent)}, 3, retry.StopExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var ev events
				op := failThen(10, tt.err)
				start := time.Now()
				err := retry.Do(t.Context(), noJitter(3), op.op, append(tt.opts, retry.WithHooks(ev.hooks()))...)
				re := asRetryError(t, err)
				if op.calls() != tt.wantCalls || re.Attempts() != tt.wantCalls || re.StopReason() != tt.wantCause {
					t.Errorf("Do(%s) = %d calls, %d attempts, cause %v; want %d, %d, %v",
						tt.name, op.calls(), re.Attempts(), re.StopReason(), tt.wantCalls, tt.wantCalls, tt.wantCause)
				}
				if tt.wantCalls == 1 && (time.Since(start) != 0 || len(ev.retries) != 0) {
					t.Errorf("Do(%s) waited %v with %d OnRetry calls, want it returned at once", tt.name, time.Since(start), len(ev.retries))
				}
				if status.Code(err) != codes.ResourceExhausted {
					t.Errorf("status.Code(Do(%s)) = %v, want ResourceExhausted", tt.name, status.Code(err))
				}
			})
		})
	}
	if got := retry.StopNoServerSignal.String(); got != "no server signal" {
		t.Errorf("StopNoServerSignal.String() = %q, want %q", got, "no server signal")
	}
}

// TestBaseKindTransient checks classification.md section 2 rule 5: a family base kind
// (CWSandboxError, SandboxError, DiscoveryError) is retried when its code is in
// TransientCodes or it carries a trusted transient reason; a specific kind outside RetryOn
// is never retried by its code (nor by its reason).
func TestBaseKindTransient(t *testing.T) {
	internalOnly := func(p *retry.Policy) { p.TransientCodes = retry.Codes(codes.Internal) }
	noCodes := func(p *retry.Policy) { p.TransientCodes = 0 }
	remap := classify.New(classify.WithRule(classify.DefaultDomain, "CWSANDBOX_RUNNER_UNAVAILABLE", errs.ErrSandboxFailed))
	tests := []struct {
		name      string
		err       *errs.Error
		kind      errs.Kind // the classification the case relies on
		policy    func(*retry.Policy)
		wantCalls int
	}{
		{"discovery unavailable", rpc(discoveryCall, codes.Unavailable), errs.ErrDiscovery, nil, 3},
		{"unknown service unavailable", rpc(otherCall, codes.Unavailable), errs.ErrCWSandbox, nil, 3},
		{"health check unavailable", rpc(healthCall, codes.Unavailable), errs.ErrCWSandbox, nil, 3},
		{"sandbox base kind unavailable", rpc(sandboxCall, codes.Unavailable, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_RUNNER_NOT_FOUND", nil)), errs.ErrSandbox, nil, 3},
		{"client-made base kind with a transient code", errs.New(errs.ErrDiscovery, "x", errs.WithCode(codes.Unavailable)), errs.ErrDiscovery, nil, 3},
		{"discovery internal", rpc(discoveryCall, codes.Internal), errs.ErrDiscovery, nil, 1},
		{"unknown service deadline", rpc(otherCall, codes.DeadlineExceeded), errs.ErrCWSandbox, nil, 1},
		{"discovery cancelled", rpc(discoveryCall, codes.Canceled), errs.ErrDiscovery, nil, 1},
		{"client-made base kind", errs.New(errs.ErrCWSandbox, "x"), errs.ErrCWSandbox, nil, 1},
		{"discovery internal, trusted transient reason", rpc(discoveryCall, codes.Internal, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_BACKEND_UNAVAILABLE", nil)), errs.ErrDiscovery, nil, 3},
		{"discovery, bucket provisioning on any code", rpc(discoveryCall, codes.FailedPrecondition, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_FSS_BUCKET_PROVISIONING", nil)), errs.ErrDiscovery, nil, 3},
		{"discovery internal, untrusted transient reason", rpc(discoveryCall, codes.Internal, faultlinetest.ErrorInfo(untrusted, "CWSANDBOX_BACKEND_UNAVAILABLE", nil)), errs.ErrDiscovery, nil, 1},
		{"discovery internal, trusted reason that is not transient", rpc(discoveryCall, codes.Internal, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_FILE_NOT_FOUND", nil)), errs.ErrDiscovery, nil, 1},
		{"unknown service, bucket provisioning", rpc(otherCall, codes.Internal, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_FSS_BUCKET_PROVISIONING", nil)), errs.ErrSandboxUnavailable, nil, 3},
		{"TransientCodes empty", rpc(discoveryCall, codes.Unavailable), errs.ErrDiscovery, noCodes, 1},
		{"TransientCodes empty, transient reason still counts", rpc(discoveryCall, codes.Unavailable, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_RUNNER_UNAVAILABLE", nil)), errs.ErrDiscovery, noCodes, 3},
		{"TransientCodes empty, RetryOn still counts", rpc(sandboxCall, codes.Unavailable), errs.ErrSandboxUnavailable, noCodes, 3},
		{"custom TransientCodes: internal", rpc(discoveryCall, codes.Internal), errs.ErrDiscovery, internalOnly, 3},
		{"custom TransientCodes: unavailable left out", rpc(otherCall, codes.Unavailable), errs.ErrCWSandbox, internalOnly, 1},
		// Specific kinds outside RetryOn.
		{"command timeout on unavailable", rpc(sandboxCall, codes.Unavailable, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_COMMAND_TIMEOUT", nil)), errs.ErrSandboxCommandTimeout, nil, 1},
		{"sandbox not running on unavailable", rpc(sandboxCall, codes.Unavailable, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_SANDBOX_NOT_RUNNING", nil)), errs.ErrSandboxNotRunning, nil, 1},
		{"runner not found on unavailable", rpc(discoveryCall, codes.Unavailable, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_RUNNER_NOT_FOUND", nil)), errs.ErrRunnerNotFound, nil, 1},
		{"client-made not found on unavailable", errs.New(errs.ErrSandboxNotFound, "x", errs.WithCode(codes.Unavailable)), errs.ErrSandboxNotFound, nil, 1},
		{"client-made specific kind on a custom transient code", errs.New(errs.ErrSandboxFailed, "x", errs.WithCode(codes.Internal)), errs.ErrSandboxFailed, internalOnly, 1},
		{"transient reason mapped to a specific kind", remap.Classify(faultlinetest.Status(codes.Unavailable, "m",
			faultlinetest.ErrorInfo(trusted, "CWSANDBOX_RUNNER_UNAVAILABLE", nil)).Err(), sandboxCall), errs.ErrSandboxFailed, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.err.Kind() != tt.kind {
				t.Fatalf("%s classified as %v, want %v", tt.name, tt.err.Kind(), tt.kind)
			}
			synctest.Test(t, func(t *testing.T) {
				p := noJitter(3)
				if tt.policy != nil {
					tt.policy(&p)
				}
				op := failThen(10, tt.err)
				re := asRetryError(t, retry.Do(t.Context(), p, op.op))
				wantCause := retry.StopExhausted
				if tt.wantCalls == 1 {
					wantCause = retry.StopNotRetryable
				}
				if op.calls() != tt.wantCalls || re.StopReason() != wantCause {
					t.Errorf("Do(%v %v) = %d calls, cause %v; want %d, %v", tt.err.Kind(), tt.err.Code(), op.calls(), re.StopReason(), tt.wantCalls, wantCause)
				}
			})
		})
	}
}

// TestLocalNeverRetried checks safety.md section 1: a deterministic local failure is never
// retried, whatever the method, the policy and the failure's kind or hint.
func TestLocalNeverRetried(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
		l    retry.Idempotency
	}{
		{"unavailable", unavailable(), retry.IdempotencyUnknown},
		{"no side effects", unavailable(), retry.NoSideEffects},
		{"server hint", rpc(sandboxCall, codes.Unavailable, faultlinetest.RetryInfo(time.Second)), retry.Idempotent},
		{"transient reason", rpc(sandboxCall, codes.Unavailable, faultlinetest.ErrorInfo(trusted, "CWSANDBOX_RUNNER_UNAVAILABLE", nil)), retry.Idempotent},
		{"resource exhausted over the receive limit", status.Error(codes.ResourceExhausted, "grpc: received message larger than max"), retry.Idempotent},
		{"not retryable kind", notFound(), retry.Idempotent},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := retry.DefaultPolicy()
				p.RetryOn = retry.On(errs.Kinds()...)
				var ev events
				r, err := retry.New(p, retry.WithBudget(nil), retry.WithHooks(ev.hooks()), retry.WithClassifyFunc(classify.Classify))
				if err != nil {
					t.Fatal(err)
				}
				tr := track(r, "", nil)
				// A retry first, so that the local failure comes on attempt 2.
				if f := tr.Failed(t.Context(), unavailable(), facts(tt.l, ambiguous)); f != nil {
					t.Fatalf("Failed(unavailable) = %v, want nil (retried)", f)
				}
				localErr := asLocal(tt.err)
				final := final(t, tr.Failed(t.Context(), localErr, facts(tt.l, local)))
				if final == nil || final.StopReason() != retry.StopLocalFailure || final.Attempts() != 2 || final.Last() != localErr {
					t.Fatalf("Failed(local %s) = %v, want a final error after 2 attempts, cause %v", tt.name, final, retry.StopLocalFailure)
				}
				if len(ev.retries) != 1 || len(ev.stops) != 1 || ev.stops[0].Reason != retry.StopLocalFailure {
					t.Errorf("hooks: %d OnRetry, OnStop %v; want 1, one with cause %v", len(ev.retries), ev.stops, retry.StopLocalFailure)
				}
				if status.Code(final) != status.Code(tt.err) {
					t.Errorf("status.Code(final) = %v, want %v", status.Code(final), status.Code(tt.err))
				}
			})
		})
	}
}

// TestNestedRetryError checks safety.md section 5: a failure that already is the final error
// of another retry loop is returned as it is: attempts never multiply and the outer loop's
// hooks are not called again.
func TestNestedRetryError(t *testing.T) {
	for _, tt := range []struct {
		name string
		wrap func(error) error
	}{
		{"as it is", func(err error) error { return err }},
		{"wrapped by an SDK", func(err error) error { return fmt.Errorf("sdk: get sandbox: %w", err) }},
		{"joined", func(err error) error { return errors.Join(errors.New("cleanup failed"), err) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var innerEv, outerEv events
				rpcErr := rpc(sandboxCall, codes.Unavailable)
				op := failThen(100, rpcErr)
				var inner *retry.Error
				outerCalls := 0
				err := retry.Do(t.Context(), noJitter(3), func(ctx context.Context) error {
					outerCalls++
					ierr := retry.Do(ctx, noJitter(3), op.op, retry.WithHooks(innerEv.hooks()))
					inner = asRetryError(t, ierr)
					return tt.wrap(ierr)
				}, retry.WithHooks(outerEv.hooks()))
				if outerCalls != 1 || op.calls() != 3 {
					t.Errorf("outer attempts %d, RPCs %d; want 1, 3 (attempts never multiply)", outerCalls, op.calls())
				}
				var re *retry.Error
				if !errors.As(err, &re) || re != inner {
					t.Fatalf("Do(nested) = %v, want the inner loop's *retry.Error itself", err)
				}
				if re.Attempts() != 3 || re.StopReason() != retry.StopExhausted || re.Last() != rpcErr {
					t.Errorf("nested result = %d attempts, cause %v, last %v; want 3, %v, the RPC error", re.Attempts(), re.StopReason(), re.Last(), retry.StopExhausted)
				}
				if len(outerEv.retries) != 0 || len(outerEv.stops) != 0 {
					t.Errorf("outer hooks: OnRetry %v, OnStop %v; want none", outerEv.retries, outerEv.stops)
				}
				if len(innerEv.retries) != 2 || len(innerEv.stops) != 1 {
					t.Errorf("inner hooks: %d OnRetry, %d OnStop; want 2, 1", len(innerEv.retries), len(innerEv.stops))
				}
				if status.Code(err) != codes.Unavailable || !errors.Is(err, errs.ErrSandboxUnavailable) {
					t.Errorf("Do(nested): status.Code %v, errors.Is(ErrSandboxUnavailable) %v; want Unavailable, true", status.Code(err), errors.Is(err, errs.ErrSandboxUnavailable))
				}
			})
		})
	}
	t.Run("Tracker", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			inner := asRetryError(t, retry.Do(t.Context(), noJitter(2), failThen(5, unavailable()).op))
			r, err := retry.New(noJitter(5), retry.WithBudget(nil))
			if err != nil {
				t.Fatal(err)
			}
			tr := track(r, "", nil)
			start := time.Now()
			for _, f := range []engine.Facts{{}, facts(retry.NoSideEffects, notSent)} {
				if got := tr.Failed(t.Context(), inner, f); got != inner {
					t.Errorf("Failed(a *retry.Error, %+v) = %v, want it returned as it is", f, got)
				}
			}
			if tr.Attempt() != 1 || time.Since(start) != 0 {
				t.Errorf("after a nested failure: Attempt() = %d, waited %v; want 1, 0", tr.Attempt(), time.Since(start))
			}
		})
	})
}

// TestInterrupt checks safety.md section 5: closing the connection (engine.Conn.Closed) ends a
// wait between attempts at once, with the last error and its status and stop reason
// cancelled; no call outlives the connection by a backoff.
func TestInterrupt(t *testing.T) {
	t.Run("during a wait", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			st := faultlinetest.Status(codes.Unavailable, "runner unavailable", faultlinetest.RetryInfo(30*time.Second))
			last := classify.Classify(st.Err())
			conn := newFakeConn(true)
			const closeAt = 5 * time.Second
			time.AfterFunc(closeAt, func() { close(conn.closed) })
			var ev events
			r, err := retry.New(noJitter(5), retry.WithBudget(nil), retry.WithHooks(ev.hooks()))
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			final := final(t, track(r, "", conn).Failed(t.Context(), last, engine.Facts{}))
			if got := time.Since(start); got != closeAt {
				t.Errorf("Failed returned after %v, want %v (when the connection closed)", got, closeAt)
			}
			if final == nil {
				t.Fatalf("Failed(interrupted) = nil, want a final error")
			}
			if final.StopReason() != retry.StopCancelled || final.Attempts() != 1 || final.Last() != last || final.TotalWait() != closeAt {
				t.Errorf("final = cause %v, %d attempts, last %v, waited %v; want %v, 1, the last error, %v",
					final.StopReason(), final.Attempts(), final.Last(), final.TotalWait(), retry.StopCancelled, closeAt)
			}
			if got, ok := status.FromError(final); !ok || got != st {
				t.Errorf("status.FromError(final) = %v, %v; want the last error's status %p", got, ok, st)
			}
			if errors.Is(final, context.Canceled) {
				t.Errorf("errors.Is(final, context.Canceled) = true, want false: the caller's context is alive")
			}
			if !errors.Is(final, errs.ErrSandboxUnavailable) {
				t.Errorf("errors.Is(final, ErrSandboxUnavailable) = false, want true")
			}
			if len(ev.retries) != 1 || len(ev.stops) != 1 || ev.stops[0].Reason != retry.StopCancelled {
				t.Errorf("hooks: %d OnRetry, OnStop %v; want 1, one with cause cancelled", len(ev.retries), ev.stops)
			}
		})
	})
	t.Run("already closed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			conn := newFakeConn(true)
			close(conn.closed)
			start := time.Now()
			r, err := retry.New(noJitter(3), retry.WithBudget(nil))
			if err != nil {
				t.Fatal(err)
			}
			final := final(t, track(r, "", conn).Failed(t.Context(), unavailable(), engine.Facts{}))
			if final == nil || final.StopReason() != retry.StopCancelled || time.Since(start) != 0 {
				t.Errorf("Failed(closed connection) = %v after %v, want cause cancelled at once", final, time.Since(start))
			}
		})
	})
	t.Run("wait completes", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			conn := newFakeConn(true)
			start := time.Now()
			r, err := retry.New(noJitter(3), retry.WithBudget(nil))
			if err != nil {
				t.Fatal(err)
			}
			if err := track(r, "", conn).Failed(t.Context(), unavailable(), engine.Facts{}); err != nil {
				t.Fatalf("Failed(unavailable) = %v, want nil (retried)", err)
			}
			if got := time.Since(start); got != 200*time.Millisecond {
				t.Errorf("waited %v, want the backoff 200ms", got)
			}
		})
	})
	t.Run("no wait, no question", func(t *testing.T) {
		conn := newFakeConn(true)
		r, err := retry.New(noJitter(3), retry.WithBudget(nil))
		if err != nil {
			t.Fatal(err)
		}
		if final := final(t, track(r, "", conn).Failed(t.Context(), notFound(), engine.Facts{})); final == nil || final.StopReason() != retry.StopNotRetryable {
			t.Errorf("Failed(notFound) = %v, want not retryable", final)
		}
		if conn.readies != 0 {
			t.Errorf("Ready asked %d times, want 0: nothing waits", conn.readies)
		}
	})
	t.Run("caller cancels first", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			time.AfterFunc(time.Second, cancel)
			conn := newFakeConn(true)
			time.AfterFunc(2*time.Second, func() { close(conn.closed) })
			r, err := retry.New(noJitter(5), retry.WithBudget(nil))
			if err != nil {
				t.Fatal(err)
			}
			final := final(t, track(r, "", conn).Failed(ctx, withHint(30*time.Second), engine.Facts{}))
			if final == nil || final.StopReason() != retry.StopCancelled || !errors.Is(final, context.Canceled) || status.Code(final) != codes.Canceled {
				t.Errorf("Failed(caller cancelled during the wait) = %v, want cancelled, matching context.Canceled, code Canceled", final)
			}
		})
	})
}

// TestHintTooLargeForDuration checks safety.md section 5: a server hint beyond
// time.Duration's range stops retrying as "hint too long", with the delay kept on the error,
// whatever the idempotency.
func TestHintTooLargeForDuration(t *testing.T) {
	for _, l := range []retry.Idempotency{retry.IdempotencyUnknown, retry.NoSideEffects, retry.NotIdempotent} {
		t.Run(l.String(), func(t *testing.T) {
			e := errs.New(errs.ErrSandboxUnavailable, "come back in a century", errs.WithRetryDelay(1<<63-1))
			final := firstFailure(t, e, facts(l, ambiguous))
			if final == nil || final.StopReason() != retry.StopHintTooLong || final.Attempts() != 1 {
				t.Fatalf("Failed(hint MaxInt64) = %v, want a final error after 1 attempt, hint too long", final)
			}
			var got *errs.Error
			if !errors.As(final, &got) {
				t.Fatalf("errors.As(final, *errs.Error) = false, want true")
			}
			if d, ok := got.RetryDelay(); !ok || d != 1<<63-1 {
				t.Errorf("RetryDelay() = %v, %v; want %v, true", d, ok, time.Duration(1<<63-1))
			}
		})
	}
}
