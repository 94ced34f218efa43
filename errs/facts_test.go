package errs_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/details"
	"github.com/faultline-go/faultline/internal/seam"
)

// classified builds an error the way a classifier does, through the seam errs keeps for its
// sibling packages.
func classified(kind errs.Kind, st *status.Status, facts seam.Facts) *errs.Error {
	build := seam.NewError.(func(errs.Kind, *status.Status, error, details.Info, errs.Resource, seam.Facts) *errs.Error)
	return build(kind, st, nil, details.Info{}, errs.Resource{Operation: "GetSandbox"}, facts)
}

// TestIsCallerContext checks that an error classified with the caller's context error matches
// that error with errors.Is (safety.md section 5, classification.md rule 6), whatever its
// kind and code, and that no other error does.
func TestIsCallerContext(t *testing.T) {
	tests := []struct {
		name     string
		kind     errs.Kind
		code     codes.Code
		ctxErr   error
		canceled bool // errors.Is(err, context.Canceled)
		deadline bool // errors.Is(err, context.DeadlineExceeded)
	}{
		{"cancelled by the caller", errs.ErrSandbox, codes.Canceled, context.Canceled, true, false},
		{"deadline of the caller", errs.ErrSandboxRequestTimeout, codes.DeadlineExceeded, context.DeadlineExceeded, false, true},
		{"unavailable after the caller cancelled", errs.ErrSandboxUnavailable, codes.Unavailable, context.Canceled, true, false},
		{"discovery, caller deadline", errs.ErrDiscovery, codes.Canceled, context.DeadlineExceeded, false, true},
		{"cancelled by the server", errs.ErrSandboxNotRunning, codes.Canceled, nil, false, false},
		{"deadline exceeded, caller alive", errs.ErrSandboxRequestTimeout, codes.DeadlineExceeded, nil, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := classified(tt.kind, status.New(tt.code, "m"), seam.Facts{ContextErr: tt.ctxErr})
			for _, err := range []error{e, fmt.Errorf("call: %w", e), errors.Join(errors.New("other"), e)} {
				if got := errors.Is(err, context.Canceled); got != tt.canceled {
					t.Errorf("errors.Is(%v, context.Canceled) = %v, want %v", err, got, tt.canceled)
				}
				if got := errors.Is(err, context.DeadlineExceeded); got != tt.deadline {
					t.Errorf("errors.Is(%v, context.DeadlineExceeded) = %v, want %v", err, got, tt.deadline)
				}
				if !errors.Is(err, tt.kind) || !errors.Is(err, errs.ErrCWSandbox) {
					t.Errorf("errors.Is(%v, %v) = false, want true: the kind still matches", err, tt.kind)
				}
			}
			if e.Is(nil) || e.Is(errors.New("context canceled")) {
				t.Errorf("(%v).Is(nil or a look-alike) = true, want false", e)
			}
			if status.Code(e) != tt.code {
				t.Errorf("status.Code(%v) = %v, want %v", e, status.Code(e), tt.code)
			}
			if got := seam.FactsOf.(func(*errs.Error) seam.Facts)(e); got.ContextErr != tt.ctxErr {
				t.Errorf("FactsOf(%v).ContextErr = %v, want %v", e, got.ContextErr, tt.ctxErr)
			}
		})
	}
	t.Run("client-made", func(t *testing.T) {
		e := errs.New(errs.ErrSandbox, "m", errs.WithCode(codes.Canceled))
		if errors.Is(e, context.Canceled) || errors.Is(e, context.DeadlineExceeded) {
			t.Errorf("errors.Is(New(code Canceled), a context error) = true, want false")
		}
		if got := seam.FactsOf.(func(*errs.Error) seam.Facts)(e); got != (seam.Facts{}) {
			t.Errorf("FactsOf(New(...)) = %+v, want none", got)
		}
		e = errs.New(errs.ErrSandbox, "m", errs.WithCause(context.Canceled))
		if !errors.Is(e, context.Canceled) {
			t.Errorf("errors.Is(New(WithCause(context.Canceled)), context.Canceled) = false, want true")
		}
	})
	t.Run("transient fact", func(t *testing.T) {
		e := classified(errs.ErrDiscovery, status.New(codes.Internal, "m"), seam.Facts{Transient: true})
		if got := seam.FactsOf.(func(*errs.Error) seam.Facts)(e); !got.Transient || got.ContextErr != nil {
			t.Errorf("FactsOf(...) = %+v, want transient, no context error", got)
		}
		if errors.Is(e, context.Canceled) {
			t.Errorf("errors.Is(transient, context.Canceled) = true, want false")
		}
	})
}
