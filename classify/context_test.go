package classify_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
)

// families are the four kinds of call the rules tell apart.
var families = []struct {
	name string
	call classify.Call
	base errs.Kind
}{
	{"sandbox", sandboxCall, errs.ErrSandbox},
	{"discovery", discoveryCall, errs.ErrDiscovery},
	{"unknown service", otherCall, errs.ErrCWSandbox},
	{"no method", noMethodCall, errs.ErrSandbox},
}

// TestClassifyCallerContext checks classification.md section 2 rule 6: a failure that came
// back after the caller's own context ended is the caller's doing. CANCELLED is then the
// family base (not SandboxNotRunningError), DEADLINE_EXCEEDED is SandboxRequestTimeoutError in
// the sandbox family and the base elsewhere, and errors.Is(err, the context's error) holds.
// A CANCELLED the server sent while the context is alive stays SandboxNotRunningError.
func TestClassifyCallerContext(t *testing.T) {
	tests := []struct {
		name   string
		code   codes.Code
		ctxErr error
		want   [4]errs.Kind // sandbox, discovery, unknown service, no method
	}{
		{"cancelled by the caller", codes.Canceled, context.Canceled,
			[4]errs.Kind{errs.ErrSandbox, errs.ErrDiscovery, errs.ErrCWSandbox, errs.ErrSandbox}},
		{"cancelled, the caller's deadline passed", codes.Canceled, context.DeadlineExceeded,
			[4]errs.Kind{errs.ErrSandbox, errs.ErrDiscovery, errs.ErrCWSandbox, errs.ErrSandbox}},
		{"cancelled by the server, context alive", codes.Canceled, nil,
			[4]errs.Kind{errs.ErrSandboxNotRunning, errs.ErrDiscovery, errs.ErrCWSandbox, errs.ErrSandboxNotRunning}},
		{"deadline exceeded, the caller's deadline passed", codes.DeadlineExceeded, context.DeadlineExceeded,
			[4]errs.Kind{errs.ErrSandboxRequestTimeout, errs.ErrDiscovery, errs.ErrCWSandbox, errs.ErrSandboxRequestTimeout}},
		{"deadline exceeded, the caller cancelled", codes.DeadlineExceeded, context.Canceled,
			[4]errs.Kind{errs.ErrSandboxRequestTimeout, errs.ErrDiscovery, errs.ErrCWSandbox, errs.ErrSandboxRequestTimeout}},
		{"deadline exceeded, context alive", codes.DeadlineExceeded, nil,
			[4]errs.Kind{errs.ErrSandboxRequestTimeout, errs.ErrDiscovery, errs.ErrCWSandbox, errs.ErrSandboxRequestTimeout}},
	}
	c := classify.New()
	for _, tc := range tests {
		for i, fam := range families {
			t.Run(tc.name+"/"+fam.name, func(t *testing.T) {
				call := fam.call
				call.ContextErr = tc.ctxErr
				st := status.New(tc.code, "server message")
				e := c.Classify(st.Err(), call)
				if e.Kind() != tc.want[i] {
					t.Errorf("Classify(%v, ContextErr %v) on %s = %v, want %v", tc.code, tc.ctxErr, fam.name, e.Kind(), tc.want[i])
				}
				if tc.ctxErr != nil && errors.Is(e, errs.ErrSandboxNotRunning) {
					t.Errorf("errors.Is(Classify(%v, ContextErr %v), ErrSandboxNotRunning) = true, want false: the caller stopped waiting", tc.code, tc.ctxErr)
				}
				for _, target := range []error{context.Canceled, context.DeadlineExceeded} {
					want := tc.ctxErr != nil && target == tc.ctxErr
					if got := errors.Is(e, target); got != want {
						t.Errorf("errors.Is(Classify(%v, ContextErr %v), %v) = %v, want %v", tc.code, tc.ctxErr, target, got, want)
					}
				}
				if status.Code(e) != tc.code || e.GRPCStatus() != st {
					t.Errorf("Classify(%v, ContextErr %v): status.Code %v, status %p; want %v, %p (unmodified)", tc.code, tc.ctxErr, status.Code(e), e.GRPCStatus(), tc.code, st)
				}
				if !errors.Is(e, fam.base) {
					t.Errorf("errors.Is(Classify(%v, ContextErr %v) on %s, %v) = false, want true", tc.code, tc.ctxErr, fam.name, fam.base)
				}
			})
		}
	}
}

// TestClassifyCallerContextAnyFailure checks that errors.Is(err, the context's error) holds
// for every failure classified with ContextErr set, whatever its code, details or type, and
// never without it.
func TestClassifyCallerContextAnyFailure(t *testing.T) {
	c := classify.New()
	inputs := []struct {
		name string
		err  error
	}{
		{"unavailable", status.Error(codes.Unavailable, "transport is closing")},
		{"internal", status.Error(codes.Internal, "stream reset")},
		{"trusted reason", faultlinetest.Error(codes.Unavailable, "m", faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_RUNNER_UNAVAILABLE", nil))},
		{"plain error", errors.New("connection reset")},
		{"the context error itself", context.Canceled},
		{"wrapped status", fmt.Errorf("get: %w", status.Error(codes.Canceled, "x"))},
	}
	for _, in := range inputs {
		for _, fam := range families {
			for _, ctxErr := range []error{context.Canceled, context.DeadlineExceeded} {
				t.Run(in.name+"/"+fam.name+"/"+ctxErr.Error(), func(t *testing.T) {
					call := fam.call
					call.ContextErr = ctxErr
					e := c.Classify(in.err, call)
					if !errors.Is(e, ctxErr) {
						t.Errorf("errors.Is(Classify(%v, ContextErr %v), %v) = false, want true", in.err, ctxErr, ctxErr)
					}
					if !errors.Is(e, in.err) {
						t.Errorf("errors.Is(Classify(%v), the original) = false, want true", in.err)
					}
				})
			}
		}
	}
	t.Run("without ContextErr", func(t *testing.T) {
		e := c.Classify(status.Error(codes.Canceled, "x"), sandboxCall)
		if errors.Is(e, context.Canceled) || errors.Is(e, context.DeadlineExceeded) {
			t.Errorf("errors.Is(Classify(Canceled) with the context alive, a context error) = true, want false")
		}
	})
}

// TestClassifyTruthfulFamilies checks classification.md section 2 rules 3-5 on the cases the
// old rules got wrong: a transient failure of a service outside the sandbox family keeps its
// family's base kind instead of borrowing a sandbox kind.
func TestClassifyTruthfulFamilies(t *testing.T) {
	health := classify.Call{Method: "/grpc.health.v1.Health/Check"}
	tests := []struct {
		name    string
		call    classify.Call
		code    codes.Code
		want    errs.Kind
		is      []errs.Kind
		isNot   []errs.Kind
		message string
	}{
		{"health check unavailable", health, codes.Unavailable, errs.ErrCWSandbox,
			[]errs.Kind{errs.ErrCWSandbox},
			[]errs.Kind{errs.ErrSandbox, errs.ErrSandboxNotRunning, errs.ErrSandboxUnavailable, errs.ErrDiscovery},
			"Check: unavailable: server message"},
		{"health check resource exhausted", health, codes.ResourceExhausted, errs.ErrCWSandbox,
			[]errs.Kind{errs.ErrCWSandbox},
			[]errs.Kind{errs.ErrSandbox, errs.ErrSandboxResourceExhausted},
			"Check: resource exhausted: server message"},
		{"health check deadline", health, codes.DeadlineExceeded, errs.ErrCWSandbox,
			[]errs.Kind{errs.ErrCWSandbox},
			[]errs.Kind{errs.ErrSandbox, errs.ErrSandboxTimeout},
			"Check: timed out: server message"},
		{"discovery unavailable", discoveryCall, codes.Unavailable, errs.ErrDiscovery,
			[]errs.Kind{errs.ErrDiscovery, errs.ErrCWSandbox},
			[]errs.Kind{errs.ErrSandbox, errs.ErrSandboxNotRunning, errs.ErrSandboxUnavailable},
			"GetRunner: unavailable: server message (runner r-1)"},
		{"discovery resource exhausted", discoveryCall, codes.ResourceExhausted, errs.ErrDiscovery,
			[]errs.Kind{errs.ErrDiscovery},
			[]errs.Kind{errs.ErrSandbox, errs.ErrSandboxResourceExhausted},
			"GetRunner: resource exhausted: server message (runner r-1)"},
		{"discovery cancelled by the server", discoveryCall, codes.Canceled, errs.ErrDiscovery,
			[]errs.Kind{errs.ErrDiscovery},
			[]errs.Kind{errs.ErrSandbox, errs.ErrSandboxNotRunning},
			"GetRunner: cancelled: server message (runner r-1)"},
		{"sandbox unavailable", sandboxCall, codes.Unavailable, errs.ErrSandboxUnavailable,
			[]errs.Kind{errs.ErrSandboxUnavailable, errs.ErrSandboxNotRunning, errs.ErrSandbox},
			[]errs.Kind{errs.ErrDiscovery},
			"GetSandbox: unavailable: server message (sandbox sb-1)"},
	}
	c := classify.New()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := c.Classify(status.Error(tc.code, "server message"), tc.call)
			if e.Kind() != tc.want {
				t.Errorf("Classify(%v) on %q = %v, want %v", tc.code, tc.call.Method, e.Kind(), tc.want)
			}
			for _, k := range tc.is {
				if !errors.Is(e, k) {
					t.Errorf("errors.Is(Classify(%v) on %q, %v) = false, want true", tc.code, tc.call.Method, k)
				}
			}
			for _, k := range tc.isNot {
				if errors.Is(e, k) {
					t.Errorf("errors.Is(Classify(%v) on %q, %v) = true, want false", tc.code, tc.call.Method, k)
				}
			}
			if e.Error() != tc.message {
				t.Errorf("Classify(%v) on %q.Error() = %q, want %q", tc.code, tc.call.Method, e.Error(), tc.message)
			}
			if strings.ContainsAny(e.Error(), "\n\r") {
				t.Errorf("Classify(%v).Error() = %q, want one line", tc.code, e.Error())
			}
		})
	}
}
