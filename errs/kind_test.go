package errs_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/details"
)

// class is one class of the tree in spec/taxonomy.md, copied by hand: the kind, the class
// name and the direct parents. The tests compute the ancestor relation from this table, not
// from the package's own.
type class struct {
	kind    errs.Kind
	name    string
	parents []errs.Kind
}

var taxonomy = []class{
	{errs.ErrCWSandbox, "CWSandboxError", nil},
	{errs.ErrCWSandboxAuthentication, "CWSandboxAuthenticationError", []errs.Kind{errs.ErrCWSandbox}},
	{errs.ErrCWSandboxValidation, "CWSandboxValidationError", []errs.Kind{errs.ErrCWSandbox}},
	{errs.ErrSandbox, "SandboxError", []errs.Kind{errs.ErrCWSandbox}},
	{errs.ErrSandboxValidation, "SandboxValidationError", []errs.Kind{errs.ErrSandbox, errs.ErrCWSandboxValidation}},
	{errs.ErrSandboxNotRunning, "SandboxNotRunningError", []errs.Kind{errs.ErrSandbox}},
	{errs.ErrSandboxUnavailable, "SandboxUnavailableError", []errs.Kind{errs.ErrSandboxNotRunning}},
	{errs.ErrSnapshotBackendThrottled, "SnapshotBackendThrottledError", []errs.Kind{errs.ErrSandboxUnavailable}},
	{errs.ErrSandboxTimeout, "SandboxTimeoutError", []errs.Kind{errs.ErrSandbox}},
	{errs.ErrSandboxRequestTimeout, "SandboxRequestTimeoutError", []errs.Kind{errs.ErrSandboxTimeout}},
	{errs.ErrSandboxCommandTimeout, "SandboxCommandTimeoutError", []errs.Kind{errs.ErrSandboxTimeout}},
	{errs.ErrSnapshotWaitTimeout, "SnapshotWaitTimeoutError", []errs.Kind{errs.ErrSandboxTimeout}},
	{errs.ErrSandboxTerminated, "SandboxTerminatedError", []errs.Kind{errs.ErrSandbox}},
	{errs.ErrSandboxFailed, "SandboxFailedError", []errs.Kind{errs.ErrSandbox}},
	{errs.ErrSandboxNotFound, "SandboxNotFoundError", []errs.Kind{errs.ErrSandbox}},
	{errs.ErrSandboxExecution, "SandboxExecutionError", []errs.Kind{errs.ErrSandbox}},
	{errs.ErrSandboxStreamBackpressure, "SandboxStreamBackpressureError", []errs.Kind{errs.ErrSandboxExecution}},
	{errs.ErrSandboxStreamTruncated, "SandboxStreamTruncatedError", []errs.Kind{errs.ErrSandboxExecution}},
	{errs.ErrSandboxFile, "SandboxFileError", []errs.Kind{errs.ErrSandbox}},
	{errs.ErrSandboxResourceExhausted, "SandboxResourceExhaustedError", []errs.Kind{errs.ErrSandbox}},
	{errs.ErrSandboxTerminalStateUnavailable, "SandboxTerminalStateUnavailableError", []errs.Kind{errs.ErrSandbox}},
	{errs.ErrSandboxSnapshot, "SandboxSnapshotError", []errs.Kind{errs.ErrSandbox}},
	{errs.ErrSnapshotNotFound, "SnapshotNotFoundError", []errs.Kind{errs.ErrSandboxSnapshot}},
	{errs.ErrSnapshotNotReady, "SnapshotNotReadyError", []errs.Kind{errs.ErrSandboxSnapshot}},
	{errs.ErrSnapshotNotSupported, "SnapshotNotSupportedError", []errs.Kind{errs.ErrSandboxSnapshot}},
	{errs.ErrSnapshotSizeExceeded, "SnapshotSizeExceededError", []errs.Kind{errs.ErrSandboxSnapshot}},
	{errs.ErrSnapshotQuotaExceeded, "SnapshotQuotaExceededError", []errs.Kind{errs.ErrSandboxSnapshot}},
	{errs.ErrSnapshotBucketMismatch, "SnapshotBucketMismatchError", []errs.Kind{errs.ErrSandboxSnapshot}},
	{errs.ErrSnapshotOnStopConflict, "SnapshotOnStopConflictError", []errs.Kind{errs.ErrSandboxSnapshot}},
	{errs.ErrDiscovery, "DiscoveryError", []errs.Kind{errs.ErrCWSandbox}},
	{errs.ErrDiscoveryValidation, "DiscoveryValidationError", []errs.Kind{errs.ErrDiscovery, errs.ErrCWSandboxValidation}},
	{errs.ErrRunnerNotFound, "RunnerNotFoundError", []errs.Kind{errs.ErrDiscovery}},
	{errs.ErrProfileNotFound, "ProfileNotFoundError", []errs.Kind{errs.ErrDiscovery}},
	{errs.ErrFunction, "FunctionError", []errs.Kind{errs.ErrCWSandbox}},
	{errs.ErrAsyncFunction, "AsyncFunctionError", []errs.Kind{errs.ErrFunction}},
	{errs.ErrFunctionSerialization, "FunctionSerializationError", []errs.Kind{errs.ErrFunction}},
}

// isA reports whether k is a or has a among its ancestors, by the hand-written table.
func isA(k, a errs.Kind) bool {
	if k == a {
		return true
	}
	for _, c := range taxonomy {
		if c.kind == k {
			for _, p := range c.parents {
				if isA(p, a) {
					return true
				}
			}
		}
	}
	return false
}

func TestKindsCoverTaxonomy(t *testing.T) {
	var want []errs.Kind
	for _, c := range taxonomy {
		want = append(want, c.kind)
	}
	if len(want) != 36 {
		t.Fatalf("the hand-written taxonomy has %d classes, want the 36 of taxonomy.md", len(want))
	}
	if diff := cmp.Diff(want, errs.Kinds()); diff != "" {
		t.Errorf("Kinds() differs from taxonomy.md (-want +got):\n%s", diff)
	}
	for _, k := range errs.Kinds() {
		if !k.Valid() {
			t.Errorf("%v.Valid() = false, want true", k)
		}
	}
	for _, k := range []errs.Kind{0, errs.Kind(len(want) + 1), 255} {
		if k.Valid() {
			t.Errorf("Kind(%d).Valid() = true, want false", uint8(k))
		}
	}
}

func TestKindString(t *testing.T) {
	for _, c := range taxonomy {
		t.Run(c.name, func(t *testing.T) {
			if got := c.kind.String(); got != c.name {
				t.Errorf("String() = %q, want %q", got, c.name)
			}
			if got := c.kind.Error(); got != c.name {
				t.Errorf("Error() = %q, want %q", got, c.name)
			}
		})
	}
	for _, tc := range []struct {
		k    errs.Kind
		want string
	}{{0, "Kind(0)"}, {37, "Kind(37)"}, {255, "Kind(255)"}} {
		if got := tc.k.String(); got != tc.want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(tc.k), got, tc.want)
		}
	}
}

func TestKindParents(t *testing.T) {
	for _, c := range taxonomy {
		t.Run(c.name, func(t *testing.T) {
			got := c.kind.Parents()
			if diff := cmp.Diff(c.parents, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Parents() differs (-want +got):\n%s", diff)
			}
			if len(got) > 0 {
				got[0] = errs.ErrFunction // the slice is the caller's
				if again := c.kind.Parents(); again[0] != c.parents[0] {
					t.Errorf("Parents()[0] = %v after the caller changed its copy, want %v", again[0], c.parents[0])
				}
			}
		})
	}
	for _, k := range []errs.Kind{errs.ErrSandboxValidation, errs.ErrDiscoveryValidation} {
		if got := len(k.Parents()); got != 2 {
			t.Errorf("len(%v.Parents()) = %d, want 2", k, got)
		}
	}
	if got := errs.Kind(0).Parents(); got != nil {
		t.Errorf("Kind(0).Parents() = %v, want nil", got)
	}
}

// TestIsMatrix checks errors.Is, errors.As and the status of an error of every kind against
// every kind, used directly, wrapped with %w and inside errors.Join.
func TestIsMatrix(t *testing.T) {
	other := errors.New("other")
	forms := []struct {
		name string
		wrap func(error) error
	}{
		{"direct", func(err error) error { return err }},
		{"wrapped", func(err error) error { return fmt.Errorf("op: %w", err) }},
		{"joined", func(err error) error { return errors.Join(other, err) }},
	}
	for _, form := range forms {
		for _, c := range taxonomy {
			t.Run(form.name+"/"+c.name, func(t *testing.T) {
				st := faultlinetest.Status(codes.Aborted, "server said no", faultlinetest.ErrorInfo("d", "R", nil))
				orig := errs.FromStatus(c.kind, st, nil, details.Info{}, errs.Resource{})
				err := form.wrap(orig)
				for _, target := range taxonomy {
					want := isA(c.kind, target.kind)
					if got := errors.Is(err, target.kind); got != want {
						t.Errorf("errors.Is(%v, %v) = %v, want %v", c.kind, target.kind, got, want)
					}
					if got := errors.Is(c.kind, target.kind); got != want {
						t.Errorf("errors.Is(Kind %v, %v) = %v, want %v", c.kind, target.kind, got, want)
					}
					if got := c.kind.IsA(target.kind); got != want {
						t.Errorf("%v.IsA(%v) = %v, want %v", c.kind, target.kind, got, want)
					}
				}
				if errors.Is(err, errs.Kind(0)) {
					t.Errorf("errors.Is(%v, Kind(0)) = true, want false", c.kind)
				}
				var e *errs.Error
				if !errors.As(err, &e) || e != orig {
					t.Errorf("errors.As(err, &e) = %v, %p, want true, %p", e != nil, e, orig)
				}
				if got := status.Code(err); got != codes.Aborted {
					t.Errorf("status.Code(err) = %v, want %v", got, codes.Aborted)
				}
				if !errors.Is(err, st.Err()) {
					t.Errorf("errors.Is(err, original status error) = false, want true")
				}
			})
		}
	}
}

// TestGRPCStatusUnmodified checks that status.FromError and status.Convert see the original
// status of the failed RPC, as the same pointer and with the same contents.
func TestGRPCStatusUnmodified(t *testing.T) {
	for _, c := range taxonomy {
		t.Run(c.name, func(t *testing.T) {
			st := faultlinetest.Status(codes.Unavailable, "backend is restarting",
				faultlinetest.ErrorInfo("cwsandbox.com", "CWSANDBOX_BACKEND_UNAVAILABLE", map[string]string{"k": "v"}),
				&errdetails.DebugInfo{Detail: "stack"})
			before := st.Proto()
			e := errs.FromStatus(c.kind, st, st.Err(), details.Info{Reason: "X"}, errs.Resource{Operation: "Op", SandboxID: "sb-1"})
			got, ok := status.FromError(e)
			if !ok || got != st {
				t.Fatalf("status.FromError(e) = %p, %v, want %p, true", got, ok, st)
			}
			if !proto.Equal(got.Proto(), before) {
				t.Errorf("status.FromError(e).Proto() = %v, want %v", got.Proto(), before)
			}
			if got.Message() != "backend is restarting" {
				t.Errorf("status.FromError(e).Message() = %q, want %q", got.Message(), "backend is restarting")
			}
			if got := status.Convert(e); got != st {
				t.Errorf("status.Convert(e) = %p, want %p", got, st)
			}
			if got := e.GRPCStatus(); got != st {
				t.Errorf("e.GRPCStatus() = %p, want %p", got, st)
			}
		})
	}
}
