package interceptor_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

// TestUnaryRecovers: a call whose first k attempts fail with UNAVAILABLE succeeds on
// attempt k+1, with exactly k+1 calls on the server and the backoff waits on the clock;
// with k >= MaxAttempts it gives up after MaxAttempts attempts.
func TestUnaryRecovers(t *testing.T) {
	for _, tc := range []struct {
		failures    int
		maxAttempts int
		wantCalls   int
		wantWait    time.Duration // backoffs 1s, 2s, 4s, 8s
		wantErr     bool
	}{
		{failures: 0, maxAttempts: 5, wantCalls: 1},
		{failures: 1, maxAttempts: 5, wantCalls: 2, wantWait: 1 * time.Second},
		{failures: 2, maxAttempts: 5, wantCalls: 3, wantWait: 3 * time.Second},
		{failures: 4, maxAttempts: 5, wantCalls: 5, wantWait: 15 * time.Second},
		{failures: 5, maxAttempts: 5, wantCalls: 5, wantWait: 15 * time.Second, wantErr: true},
		{failures: 9, maxAttempts: 3, wantCalls: 3, wantWait: 3 * time.Second, wantErr: true},
		{failures: 9, maxAttempts: 1, wantCalls: 1, wantErr: true},
	} {
		t.Run(fmt.Sprintf("fail %d of max %d", tc.failures, tc.maxAttempts), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(attempts(secondsPolicy(), tc.maxAttempts), retry.WithBudget(nil)))))
				e.srv.FailNext(getSandbox, tc.failures, unavailable())
				start := time.Now()
				res, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
				elapsed := time.Since(start)
				if got := e.srv.Calls(getSandbox); got != tc.wantCalls {
					t.Errorf("server calls = %d, want %d", got, tc.wantCalls)
				}
				if elapsed != tc.wantWait {
					t.Errorf("elapsed = %v, want %v", elapsed, tc.wantWait)
				}
				if !tc.wantErr {
					if err != nil || res.GetSandboxId() != "sb-1" {
						t.Fatalf("GetSandbox = %v, %v; want sb-1, nil", res, err)
					}
					return
				}
				if !errors.Is(err, errs.ErrSandboxUnavailable) || status.Code(err) != codes.Unavailable {
					t.Fatalf("GetSandbox error = %v (code %v), want SandboxUnavailableError, UNAVAILABLE", err, status.Code(err))
				}
				if tc.maxAttempts == 1 {
					// A one-attempt policy returns the classified error itself.
					if _, ok := err.(*errs.Error); !ok {
						t.Errorf("GetSandbox error is %T, want *errs.Error", err)
					}
					return
				}
				var re *retry.Error
				if !errors.As(err, &re) {
					t.Fatalf("GetSandbox error %T is not a *retry.Error", err)
				}
				if re.Attempts() != tc.wantCalls || re.StopReason() != retry.StopExhausted || re.TotalWait() != tc.wantWait {
					t.Errorf("retry.Error = %d attempts, %v, waited %v; want %d, attempts exhausted, %v",
						re.Attempts(), re.StopReason(), re.TotalWait(), tc.wantCalls, tc.wantWait)
				}
			})
		})
	}
}

// TestUnaryEveryCode: each of the 16 non-OK codes, sent by the server on every attempt,
// is classified into its kind, and only the kinds in the default RetryOn (UNAVAILABLE,
// RESOURCE_EXHAUSTED) are retried. A server's DEADLINE_EXCEEDED is a
// SandboxRequestTimeoutError and, the caller's context being alive, is not retried; a
// server's CANCELLED is a SandboxNotRunningError (the parent of SandboxUnavailableError),
// not retried either.
func TestUnaryEveryCode(t *testing.T) {
	const maxAttempts = 4
	for _, tc := range []struct {
		code      codes.Code
		kind      errs.Kind
		wantCalls int
	}{
		{codes.Canceled, errs.ErrSandboxNotRunning, 1},
		{codes.Unknown, errs.ErrSandbox, 1},
		{codes.InvalidArgument, errs.ErrSandbox, 1}, // no field violations
		{codes.DeadlineExceeded, errs.ErrSandboxRequestTimeout, 1},
		{codes.NotFound, errs.ErrSandboxNotFound, 1},
		{codes.AlreadyExists, errs.ErrSandbox, 1},
		{codes.PermissionDenied, errs.ErrCWSandboxAuthentication, 1},
		{codes.ResourceExhausted, errs.ErrSandboxResourceExhausted, 1}, // bare: no server signal
		{codes.FailedPrecondition, errs.ErrSandbox, 1},
		{codes.Aborted, errs.ErrSandbox, 1},
		{codes.OutOfRange, errs.ErrSandbox, 1},
		{codes.Unimplemented, errs.ErrSandbox, 1},
		{codes.Internal, errs.ErrSandbox, 1},
		{codes.Unavailable, errs.ErrSandboxUnavailable, maxAttempts},
		{codes.DataLoss, errs.ErrSandbox, 1},
		{codes.Unauthenticated, errs.ErrCWSandboxAuthentication, 1},
	} {
		t.Run(tc.code.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(attempts(secondsPolicy(), maxAttempts), retry.WithBudget(nil)))))
				sent := faultlinetest.Status(tc.code, "scripted "+tc.code.String())
				e.srv.FailAlways(getSandbox, sent)
				_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
				if got := e.srv.Calls(getSandbox); got != tc.wantCalls {
					t.Errorf("server calls = %d, want %d", got, tc.wantCalls)
				}
				var ee *errs.Error
				if !errors.As(err, &ee) || ee.Kind() != tc.kind {
					t.Fatalf("GetSandbox error = %v (%T), want kind %v", err, err, tc.kind)
				}
				if got := status.Code(err); got != tc.code {
					t.Errorf("status.Code = %v, want %v", got, tc.code)
				}
				var re *retry.Error
				if !errors.As(err, &re) {
					t.Fatalf("GetSandbox error %T is not a *retry.Error", err)
				}
				wantCause := retry.StopNotRetryable
				switch {
				case tc.wantCalls > 1:
					wantCause = retry.StopExhausted
				case tc.code == codes.ResourceExhausted:
					wantCause = retry.StopNoServerSignal
				}
				if re.Attempts() != tc.wantCalls || re.StopReason() != wantCause {
					t.Errorf("retry.Error = %d attempts, %v; want %d, %v", re.Attempts(), re.StopReason(), tc.wantCalls, wantCause)
				}
			})
		})
	}
}

// TestUnaryReasons: trusted ErrorInfo reasons override the code in both directions, an
// untrusted domain's reason does not, and RESOURCE_EXHAUSTED waits for its RetryInfo when it
// has one and backs off when it does not. Each status fails the first two attempts.
func TestUnaryReasons(t *testing.T) {
	for _, tc := range []struct {
		name      string
		st        *status.Status
		wantCalls int
		wantWait  time.Duration
		wantKind  errs.Kind // 0: the call succeeds
	}{
		{
			name: "INTERNAL + trusted BACKEND_UNAVAILABLE retried",
			st: faultlinetest.Status(codes.Internal, "backend down",
				faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_BACKEND_UNAVAILABLE", nil)),
			wantCalls: 3, wantWait: 3 * time.Second,
		},
		{
			name: "UNAVAILABLE + trusted COMMAND_TIMEOUT not retried",
			st: faultlinetest.Status(codes.Unavailable, "command timed out",
				faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_COMMAND_TIMEOUT", nil)),
			wantCalls: 1, wantKind: errs.ErrSandboxCommandTimeout,
		},
		{
			name:      "RESOURCE_EXHAUSTED without a server signal is not retried",
			st:        faultlinetest.Status(codes.ResourceExhausted, "quota"),
			wantCalls: 1, wantKind: errs.ErrSandboxResourceExhausted,
		},
		{
			name: "RESOURCE_EXHAUSTED with RetryInfo waits for the hint",
			st: faultlinetest.Status(codes.ResourceExhausted, "quota",
				faultlinetest.RetryInfo(7*time.Second)),
			wantCalls: 3, wantWait: 14 * time.Second,
		},
		{
			name: "INTERNAL + untrusted BACKEND_UNAVAILABLE not retried",
			st: faultlinetest.Status(codes.Internal, "backend down",
				faultlinetest.ErrorInfo("evil.example", "CWSANDBOX_BACKEND_UNAVAILABLE", nil)),
			wantCalls: 1, wantKind: errs.ErrSandbox,
		},
		{
			name: "UNAVAILABLE + untrusted COMMAND_TIMEOUT retried",
			st: faultlinetest.Status(codes.Unavailable, "backend down",
				faultlinetest.ErrorInfo("evil.example", "CWSANDBOX_COMMAND_TIMEOUT", nil)),
			wantCalls: 3, wantWait: 3 * time.Second,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))))
				e.srv.FailNext(getSandbox, 2, tc.st)
				start := time.Now()
				_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
				if elapsed := time.Since(start); elapsed != tc.wantWait {
					t.Errorf("elapsed = %v, want %v", elapsed, tc.wantWait)
				}
				if got := e.srv.Calls(getSandbox); got != tc.wantCalls {
					t.Errorf("server calls = %d, want %d", got, tc.wantCalls)
				}
				if tc.wantKind == 0 {
					if err != nil {
						t.Fatalf("GetSandbox error = %v, want nil", err)
					}
					return
				}
				var ee *errs.Error
				if !errors.As(err, &ee) || ee.Kind() != tc.wantKind {
					t.Fatalf("GetSandbox error = %v, want kind %v", err, tc.wantKind)
				}
				// The reason stays attached, trusted or not.
				if d := tc.st.Details(); len(d) > 0 && ee.Reason() != d[0].(*errdetails.ErrorInfo).GetReason() {
					t.Errorf("Reason() = %q, want the server's", ee.Reason())
				}
				if status.Code(err) != tc.st.Code() {
					t.Errorf("status.Code = %v, want %v", status.Code(err), tc.st.Code())
				}
			})
		})
	}
}

// TestUnaryTiming: server hints, the caller's deadline and cancellation, on the virtual
// clock, end to end through gRPC.
func TestUnaryTiming(t *testing.T) {
	for _, tc := range []struct {
		name       string
		policy     retry.Policy
		st         *status.Status
		failures   int
		deadline   time.Duration // 0: none
		cancelAt   time.Duration // 0: never
		wantCalls  int
		minElapsed time.Duration
		maxElapsed time.Duration
		wantCode   codes.Code
		wantCause  retry.StopReason // when wantCode != OK
	}{
		{
			name:   "hint 30s honoured twice, with up to 10% jitter",
			policy: retry.DefaultPolicy(), st: withHint(30 * time.Second), failures: 2,
			wantCalls: 3, minElapsed: 60 * time.Second, maxElapsed: 66 * time.Second,
		},
		{
			name:   "hint above MaxRetryDelay returns at once",
			policy: retry.DefaultPolicy(), st: withHint(31 * time.Second), failures: 1,
			wantCalls: 1, wantCode: codes.Unavailable, wantCause: retry.StopHintTooLong,
		},
		{
			name:   "deadline 10s before hint 20s returns at once",
			policy: secondsPolicy(), st: withHint(20 * time.Second), failures: 1, deadline: 10 * time.Second,
			wantCalls: 1, wantCode: codes.Unavailable, wantCause: retry.StopDeadline,
		},
		{
			name:   "deadline 40s allows one 30s wait, not a second",
			policy: secondsPolicy(), st: withHint(30 * time.Second), failures: 5, deadline: 40 * time.Second,
			wantCalls: 2, minElapsed: 30 * time.Second, maxElapsed: 30 * time.Second,
			wantCode: codes.Unavailable, wantCause: retry.StopDeadline,
		},
		{
			name:   "cancel during a 30s wait returns at the cancel",
			policy: secondsPolicy(), st: withHint(30 * time.Second), failures: 1, cancelAt: 5 * time.Second,
			wantCalls: 1, minElapsed: 5 * time.Second, maxElapsed: 5 * time.Second,
			wantCode: codes.Canceled, wantCause: retry.StopCancelled,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(tc.policy, retry.WithBudget(nil)))))
				e.srv.FailNext(getSandbox, tc.failures, tc.st)
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				if tc.deadline > 0 {
					ctx, cancel = context.WithTimeout(ctx, tc.deadline)
					defer cancel()
				}
				if tc.cancelAt > 0 {
					time.AfterFunc(tc.cancelAt, cancel)
				}
				start := time.Now()
				_, err := e.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
				elapsed := time.Since(start)
				if elapsed < tc.minElapsed || elapsed > tc.maxElapsed {
					t.Errorf("elapsed = %v, want in [%v, %v]", elapsed, tc.minElapsed, tc.maxElapsed)
				}
				if got := e.srv.Calls(getSandbox); got != tc.wantCalls {
					t.Errorf("server calls = %d, want %d", got, tc.wantCalls)
				}
				if got := status.Code(err); got != tc.wantCode {
					t.Fatalf("status.Code(%v) = %v, want %v", err, got, tc.wantCode)
				}
				if tc.wantCode == codes.OK {
					return
				}
				var re *retry.Error
				if !errors.As(err, &re) || re.Attempts() != tc.wantCalls || re.StopReason() != tc.wantCause {
					t.Fatalf("GetSandbox error = %v, want a *retry.Error of %d attempts, %v", err, tc.wantCalls, tc.wantCause)
				}
				// The last RPC's failure is reachable whatever ended the retrying.
				if !errors.Is(err, errs.ErrSandboxUnavailable) {
					t.Errorf("errors.Is(%v, ErrSandboxUnavailable) = false, want true", err)
				}
				switch tc.wantCause {
				case retry.StopCancelled:
					if !errors.Is(err, context.Canceled) {
						t.Errorf("errors.Is(%v, context.Canceled) = false, want true", err)
					}
				case retry.StopHintTooLong:
					var ee *errs.Error
					if d, ok := re.Unwrap()[0].(*errs.Error); !ok || !errors.As(err, &ee) || d != ee {
						t.Fatalf("Unwrap()[0] = %T, want the *errs.Error", re.Unwrap()[0])
					}
					if d, ok := ee.RetryDelay(); !ok || d != 31*time.Second {
						t.Errorf("RetryDelay() = %v, %v; want 31s, true", d, ok)
					}
				}
			})
		})
	}
}

// TestUnaryFinalError: what the caller gets when retrying gives up answers what the last
// attempt's error answered: status.FromError returns the server's status unmodified, the
// kind matches, the *retry.Error says how it ended, and the *errs.Error says what the call
// was about, read from the request and overridden by WithCall.
func TestUnaryFinalError(t *testing.T) {
	sent := faultlinetest.Status(codes.Unavailable, "backend restarting",
		faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_BACKEND_UNAVAILABLE", map[string]string{"region": "us-east-04"}),
		faultlinetest.RetryInfo(time.Second),
		&errdetails.DebugInfo{Detail: "shard 7"},
		&errdetails.LocalizedMessage{Locale: "en-US", Message: "The backend is restarting."})
	type call func(context.Context, *env) error
	for _, tc := range []struct {
		name        string
		method      string
		call        call
		noRetry     bool
		wantOp      string
		wantSandbox string
		wantPath    string
		wantSnap    string
	}{
		{
			name: "GetSandbox", method: getSandbox,
			call: func(ctx context.Context, e *env) error {
				_, err := e.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
				return err
			},
			wantOp: "GetSandbox", wantSandbox: "sb-1",
		},
		{
			name: "ReadFile", method: readFile,
			call: func(ctx context.Context, e *env) error {
				_, err := e.sb.ReadFile(ctx, &sandboxpb.ReadFileRequest{SandboxId: "sb-1", Path: "/data/in.txt"})
				return err
			},
			wantOp: "ReadFile", wantSandbox: "sb-1", wantPath: "/data/in.txt",
		},
		{
			name: "ReadFile with WithCall", method: readFile,
			call: func(ctx context.Context, e *env) error {
				_, err := e.sb.ReadFile(ctx, &sandboxpb.ReadFileRequest{SandboxId: "sb-1", Path: "/data/in.txt"},
					interceptor.WithResource(errs.Resource{SandboxID: "sb-other", FilePath: "/other"}))
				return err
			},
			wantOp: "ReadFile", wantSandbox: "sb-other", wantPath: "/other",
		},
		{
			name: "ReadFile with WithCall of the path only", method: readFile,
			call: func(ctx context.Context, e *env) error {
				_, err := e.sb.ReadFile(ctx, &sandboxpb.ReadFileRequest{SandboxId: "sb-1", Path: "/data/in.txt"},
					interceptor.WithResource(errs.Resource{FilePath: "/other"}))
				return err
			},
			wantOp: "ReadFile", wantSandbox: "sb-1", wantPath: "/other",
		},
		{
			name: "GetFileSystemSnapshot", method: getSnapshot,
			call: func(ctx context.Context, e *env) error {
				_, err := e.sb.GetFileSystemSnapshot(ctx, &sandboxpb.GetFileSystemSnapshotRequest{FileSystemSnapshotId: "fss-1"})
				return err
			},
			wantOp: "GetFileSystemSnapshot", wantSnap: "fss-1",
		},
		{
			name: "GetSandbox WithoutRetry", method: getSandbox, noRetry: true,
			call: func(ctx context.Context, e *env) error {
				_, err := e.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}, interceptor.WithoutRetry())
				return err
			},
			wantOp: "GetSandbox", wantSandbox: "sb-1",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))))
				// Attempts 1 to 4 fail with statuses of their own; the 5th and later with sent.
				var earlier []*status.Status
				for i := range 4 {
					st := faultlinetest.Status(codes.Unavailable, fmt.Sprintf("attempt %d", i+1),
						faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_BACKEND_UNAVAILABLE", nil), faultlinetest.RetryInfo(time.Second))
					earlier = append(earlier, st)
					e.srv.Script(tc.method, sandboxtest.Fail(st))
				}
				e.srv.FailAlways(tc.method, sent)
				err := tc.call(context.Background(), e)
				want := sent // the last attempt's status
				if tc.noRetry {
					want = earlier[0]
				}

				got, ok := status.FromError(err)
				if !ok {
					t.Fatalf("status.FromError(%v) = _, false", err)
				}
				if got.Code() != want.Code() || got.Message() != want.Message() || !proto.Equal(got.Proto(), want.Proto()) {
					t.Errorf("status.FromError = %v, want the last attempt's %v", got.Proto(), want.Proto())
				}
				if s := status.Convert(err); !proto.Equal(s.Proto(), want.Proto()) {
					t.Errorf("status.Convert = %v, want the last attempt's %v", s.Proto(), want.Proto())
				}
				if !errors.Is(err, errs.ErrSandboxUnavailable) {
					t.Errorf("errors.Is(%v, ErrSandboxUnavailable) = false, want true", err)
				}

				wantCalls := 5
				var re *retry.Error
				if tc.noRetry {
					wantCalls = 1
					if errors.As(err, &re) {
						t.Errorf("WithoutRetry error is a *retry.Error, want the *errs.Error alone")
					}
				} else {
					if !errors.As(err, &re) {
						t.Fatalf("error %T is not a *retry.Error", err)
					}
					if re.Attempts() != 5 || re.StopReason() != retry.StopExhausted || re.TotalWait() != 4*time.Second {
						t.Errorf("retry.Error = %d attempts, %v, waited %v; want 5, attempts exhausted, 4s",
							re.Attempts(), re.StopReason(), re.TotalWait())
					}
				}
				if n := e.srv.Calls(tc.method); n != wantCalls {
					t.Errorf("server calls = %d, want %d", n, wantCalls)
				}

				var ee *errs.Error
				if !errors.As(err, &ee) {
					t.Fatalf("error %T holds no *errs.Error", err)
				}
				wantRegion := "us-east-04"
				if tc.noRetry {
					wantRegion = ""
				}
				if ee.Kind() != errs.ErrSandboxUnavailable || ee.Reason() != "CWSANDBOX_BACKEND_UNAVAILABLE" ||
					ee.Domain() != sandboxtest.Domain || ee.Metadata()["region"] != wantRegion {
					t.Errorf("errs.Error = %v, %q, %q, %v; want SandboxUnavailableError with the server's ErrorInfo",
						ee.Kind(), ee.Reason(), ee.Domain(), ee.Metadata())
				}
				if d, ok := ee.RetryDelay(); !ok || d != time.Second {
					t.Errorf("RetryDelay() = %v, %v; want 1s, true", d, ok)
				}
				if ee.Resource().Operation != tc.wantOp || ee.Resource().SandboxID != tc.wantSandbox || ee.Resource().FilePath != tc.wantPath ||
					ee.Resource().SnapshotID != tc.wantSnap {
					t.Errorf("call context = (%q, %q, %q, %q), want (%q, %q, %q, %q)",
						ee.Resource().Operation, ee.Resource().SandboxID, ee.Resource().FilePath, ee.Resource().SnapshotID,
						tc.wantOp, tc.wantSandbox, tc.wantPath, tc.wantSnap)
				}
				if !proto.Equal(ee.GRPCStatus().Proto(), want.Proto()) {
					t.Errorf("errs.Error.GRPCStatus() differs from the last attempt's status")
				}
			})
		})
	}
}

// TestUnaryNotRetryableError: a failure that is not retried reads as the classified error
// alone, and a real handler's NOT_FOUND carries the handler's ErrorInfo.
func TestUnaryNotRetryableError(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy()))))
		_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-404"})
		var ee *errs.Error
		if !errors.As(err, &ee) || ee.Kind() != errs.ErrSandboxNotFound || ee.Resource().SandboxID != "sb-404" {
			t.Fatalf("GetSandbox(sb-404) = %v, want SandboxNotFoundError for sb-404", err)
		}
		if err.Error() != ee.Error() {
			t.Errorf("Error() = %q, want the classified error's %q", err.Error(), ee.Error())
		}
		if n := e.srv.Calls(getSandbox); n != 1 {
			t.Errorf("server calls = %d, want 1", n)
		}
	})
}

// TestMethodPolicies: an exact method's policy beats its service's, which beats the
// default; per-call options override all three.
func TestMethodPolicies(t *testing.T) {
	invalid := secondsPolicy()
	invalid.Multiplier = 0
	for _, tc := range []struct {
		name      string
		method    string
		call      func(*env, ...grpc.CallOption) error
		opts      []grpc.CallOption
		wantCalls int
	}{
		{name: "exact method", method: getSandbox, call: callGetSandbox, wantCalls: 4},
		{name: "service prefix", method: readFile, call: callReadFile, wantCalls: 3},
		{name: "default", method: getRunner, call: callGetRunner, wantCalls: 2},
		{name: "WithCallPolicy beats exact", method: getSandbox, call: callGetSandbox,
			opts: []grpc.CallOption{interceptor.WithCallPolicy(attempts(secondsPolicy(), 6))}, wantCalls: 6},
		{name: "WithCallPolicy beats prefix", method: readFile, call: callReadFile,
			opts: []grpc.CallOption{interceptor.WithCallPolicy(attempts(secondsPolicy(), 1))}, wantCalls: 1},
		{name: "WithCallPolicy beats default", method: getRunner, call: callGetRunner,
			opts: []grpc.CallOption{interceptor.WithCallPolicy(attempts(secondsPolicy(), 5))}, wantCalls: 5},
		{name: "invalid WithCallPolicy fails the call", method: getSandbox, call: callGetSandbox,
			opts: []grpc.CallOption{interceptor.WithCallPolicy(invalid)}, wantCalls: 0},
		{name: "WithoutRetry", method: getSandbox, call: callGetSandbox,
			opts: []grpc.CallOption{interceptor.WithoutRetry()}, wantCalls: 1},
		{name: "WithoutRetry beats WithCallPolicy", method: getSandbox, call: callGetSandbox,
			opts: []grpc.CallOption{interceptor.WithCallPolicy(attempts(secondsPolicy(), 6)), interceptor.WithoutRetry()}, wantCalls: 1},
		{name: "WithCall keeps the policy", method: getSandbox, call: callGetSandbox,
			opts: []grpc.CallOption{interceptor.WithResource(errs.Resource{SandboxID: "x"})}, wantCalls: 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(attempts(secondsPolicy(), 2), retry.WithBudget(nil))),
					interceptor.WithMethodPolicy(sandboxSvc, attempts(secondsPolicy(), 3)),
					interceptor.WithMethodPolicy(getSandbox, attempts(secondsPolicy(), 4))))
				e.srv.FailAlways(tc.method, unavailable())
				err := tc.call(e, tc.opts...)
				switch {
				case tc.wantCalls == 0:
					if status.Code(err) != codes.InvalidArgument || !errors.Is(err, retry.ErrInvalidPolicy) {
						t.Errorf("error = %v, want INVALID_ARGUMENT matching retry.ErrInvalidPolicy", err)
					}
				case tc.method == getRunner:
					if !errors.Is(err, errs.ErrDiscovery) || status.Code(err) != codes.Unavailable {
						t.Errorf("error = %v, want an UNAVAILABLE DiscoveryError", err)
					}
				case !errors.Is(err, errs.ErrSandboxUnavailable):
					t.Errorf("error = %v, want SandboxUnavailableError", err)
				}
				if n := e.srv.Calls(tc.method); n != tc.wantCalls {
					t.Errorf("server calls = %d, want %d", n, tc.wantCalls)
				}
			})
		})
	}
}

func callGetSandbox(e *env, opts ...grpc.CallOption) error {
	_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}, opts...)
	return err
}

func callReadFile(e *env, opts ...grpc.CallOption) error {
	_, err := e.sb.ReadFile(context.Background(), &sandboxpb.ReadFileRequest{SandboxId: "sb-1", Path: "/data/in.txt"}, opts...)
	return err
}

func callGetRunner(e *env, opts ...grpc.CallOption) error {
	_, err := e.disc.GetAvailableRunner(context.Background(), &sandboxpb.GetAvailableRunnerRequest{RunnerId: "r-1"}, opts...)
	return err
}

// TestCallOptionsWithoutInterceptor: the call options are inert on a connection without
// the interceptors: calls succeed, failures come back as grpc-go returns them, once.
func TestCallOptionsWithoutInterceptor(t *testing.T) {
	e := newEnv(t, nil)
	opts := []grpc.CallOption{
		interceptor.WithCallPolicy(secondsPolicy()),
		interceptor.WithoutRetry(),
		interceptor.WithResource(errs.Resource{SandboxID: "x"}),
	}
	if err := callGetSandbox(e, opts...); err != nil {
		t.Fatalf("GetSandbox with call options, no interceptor = %v, want nil", err)
	}
	e.srv.FailAlways(getSandbox, unavailable())
	err := callGetSandbox(e, opts...)
	var ee *errs.Error
	if status.Code(err) != codes.Unavailable || errors.As(err, &ee) {
		t.Errorf("GetSandbox error = %v (%T), want grpc-go's own UNAVAILABLE", err, err)
	}
	if n := e.srv.Calls(getSandbox); n != 2 {
		t.Errorf("server calls = %d, want 2 (one per call)", n)
	}
	var stream grpc.ServerStreamingClient[sandboxpb.LogEntry]
	stream, err = e.sb.StreamLogs(context.Background(), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"}, opts...)
	if err != nil {
		t.Fatalf("StreamLogs = %v", err)
	}
	if got, err := recvLogs(stream); err != nil || len(got) != sandboxtest.DefaultLogEntries {
		t.Errorf("StreamLogs read %q, %v; want %d entries", got, err, sandboxtest.DefaultLogEntries)
	}
}

// TestAttemptHeader: the attempt header is absent on the first attempt and carries "1",
// "2", ... on the retries, under the configured key; "" sends none.
func TestAttemptHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts []interceptor.Option
		key  string
		want []string
	}{
		{name: "default", key: attemptHeader, want: []string{"", "1", "2", "3"}},
		{name: "custom key", opts: []interceptor.Option{interceptor.WithAttemptHeader("x-attempt")},
			key: "x-attempt", want: []string{"", "1", "2", "3"}},
		{name: "custom key sends no default", opts: []interceptor.Option{interceptor.WithAttemptHeader("x-attempt")},
			key: attemptHeader, want: []string{"", "", "", ""}},
		{name: "off", opts: []interceptor.Option{interceptor.WithAttemptHeader("")},
			key: attemptHeader, want: []string{"", "", "", ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				opts := append([]interceptor.Option{interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))}, tc.opts...)
				e := newEnv(t, interceptor.DialOptions(opts...))
				e.srv.FailNext(getSandbox, 3, unavailable())
				if err := callGetSandbox(e); err != nil {
					t.Fatalf("GetSandbox = %v", err)
				}
				// A second call starts again without the header.
				if err := callGetSandbox(e); err != nil {
					t.Fatalf("GetSandbox = %v", err)
				}
				got := headerValues(t, e.srv.Metadata(getSandbox), tc.key)
				want := append(tc.want, "")
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("%s per server call = %q, want %q", tc.key, got, want)
				}
			})
		})
	}
}

// TestNewRejects: New reports invalid options as errors, and the package-level
// constructors panic on them; valid edge cases are accepted.
func TestNewRejects(t *testing.T) {
	bad := retry.DefaultPolicy()
	bad.MaxAttempts = 0
	nan := retry.DefaultPolicy()
	nan.Jitter = nanFloat()
	for _, tc := range []struct {
		name      string
		opts      []interceptor.Option
		wantErr   bool
		badPolicy bool // the error matches retry.ErrInvalidPolicy
	}{
		{name: "defaults"},
		{name: "bad method policy", opts: []interceptor.Option{interceptor.WithMethodPolicy(getSandbox, bad)}, wantErr: true, badPolicy: true},
		{name: "NaN jitter", opts: []interceptor.Option{interceptor.WithMethodPolicy(sandboxSvc, nan)}, wantErr: true, badPolicy: true},
		{name: "zero policy", opts: []interceptor.Option{interceptor.WithMethodPolicy(getSandbox, retry.Policy{})}, wantErr: true, badPolicy: true},
		{name: "nil retrier is the default", opts: []interceptor.Option{interceptor.WithRetrier(nil)}},
		{name: "method without slash", opts: []interceptor.Option{interceptor.WithMethodPolicy("GetSandbox", secondsPolicy())}, wantErr: true},
		{name: "service without trailing slash", opts: []interceptor.Option{interceptor.WithMethodPolicy("/coreweave.sandbox.v1.SandboxService", secondsPolicy())}, wantErr: true},
		{name: "empty service", opts: []interceptor.Option{interceptor.WithMethodPolicy("//GetSandbox", secondsPolicy())}, wantErr: true},
		{name: "empty method name", opts: []interceptor.Option{interceptor.WithMethodPolicy("", secondsPolicy())}, wantErr: true},
		{name: "slash only", opts: []interceptor.Option{interceptor.WithMethodPolicy("/", secondsPolicy())}, wantErr: true},
		{name: "extra path segment", opts: []interceptor.Option{interceptor.WithMethodPolicy(getSandbox+"/x", secondsPolicy())}, wantErr: true},
		{name: "service prefix", opts: []interceptor.Option{interceptor.WithMethodPolicy(sandboxSvc, secondsPolicy())}},
		{name: "exact method", opts: []interceptor.Option{interceptor.WithMethodPolicy(getSandbox, secondsPolicy())}},
		{name: "grpc- header", opts: []interceptor.Option{interceptor.WithAttemptHeader("grpc-foo")}, wantErr: true},
		{name: "-bin header", opts: []interceptor.Option{interceptor.WithAttemptHeader("x-attempt-bin")}, wantErr: true},
		{name: "upper-case header", opts: []interceptor.Option{interceptor.WithAttemptHeader("X-Retry-Attempt")}, wantErr: true},
		{name: "header with space", opts: []interceptor.Option{interceptor.WithAttemptHeader("x retry")}, wantErr: true},
		{name: "header off", opts: []interceptor.Option{interceptor.WithAttemptHeader("")}},
		{name: "header with _ and .", opts: []interceptor.Option{interceptor.WithAttemptHeader("x_retry.attempt-1")}},
		{name: "negative replay limit", opts: []interceptor.Option{interceptor.WithReplayLimit(-1)}, wantErr: true},
		{name: "zero replay limit", opts: []interceptor.Option{interceptor.WithReplayLimit(0)}},
		{name: "budget off", opts: []interceptor.Option{interceptor.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithBudget(nil)))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := interceptor.New(tc.opts...)
			if (err != nil) != tc.wantErr || (err == nil) != (s != nil) {
				t.Fatalf("New = %v, %v; want error %v", s, err, tc.wantErr)
			}
			if tc.badPolicy != errors.Is(err, retry.ErrInvalidPolicy) {
				t.Errorf("errors.Is(%v, ErrInvalidPolicy) = %v, want %v", err, !tc.badPolicy, tc.badPolicy)
			}
			// The constructors without an error result never panic: with bad options every
			// call fails with New's error, INVALID_ARGUMENT.
			u := interceptor.Unary(tc.opts...)
			uerr := u(context.Background(), getSandbox, &sandboxpb.GetSandboxRequest{}, &sandboxpb.Sandbox{}, nil, okInvoker)
			st := interceptor.Stream(tc.opts...)
			_, serr := st(context.Background(), &grpc.StreamDesc{ServerStreams: true}, nil, streamLogs,
				func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
					return nil, nil
				})
			if n := len(interceptor.DialOptions(tc.opts...)); n != 3 {
				t.Errorf("DialOptions returned %d options, want 3", n)
			}
			for name, got := range map[string]error{"Unary": uerr, "Stream": serr} {
				if !tc.wantErr {
					if got != nil {
						t.Errorf("%s call = %v, want nil", name, got)
					}
					continue
				}
				if status.Code(got) != codes.InvalidArgument || !errors.Is(got, err) && err.Error() != errors.Unwrap(got).Error() {
					t.Errorf("%s call = %v, want INVALID_ARGUMENT with New's error %v", name, got, err)
				}
				if tc.badPolicy != errors.Is(got, retry.ErrInvalidPolicy) {
					t.Errorf("%s call: errors.Is(%v, ErrInvalidPolicy) = %v, want %v", name, got, !tc.badPolicy, tc.badPolicy)
				}
			}
		})
	}
}

func nanFloat() float64 {
	zero := 0.0
	return zero / zero
}

// TestUnaryPerAttemptTimeout: an attempt that runs out of the policy's PerAttemptTimeout
// while the caller's context is alive is retried, whatever its kind; the caller's own
// deadline is not.
func TestUnaryPerAttemptTimeout(t *testing.T) {
	for _, tc := range []struct {
		name      string
		stalls    int
		deadline  time.Duration // 0: none
		wantCalls int
		wantWait  time.Duration
		wantCode  codes.Code
	}{
		// 2s stall + 1s backoff + 2s stall + 2s backoff, then the third attempt succeeds.
		{name: "stalls twice, then succeeds", stalls: 2, wantCalls: 3, wantWait: 7 * time.Second},
		// Each attempt stops at the 2s attempt deadline; the backoffs are 1, 2, 4s.
		{name: "stalls always", stalls: 9, wantCalls: 5, wantWait: 5*2*time.Second + 15*time.Second, wantCode: codes.DeadlineExceeded},
		// The caller's 3s deadline: attempt 1 stops at 2s, the 1s backoff would end at the
		// deadline, so no second attempt.
		{name: "caller's deadline first", stalls: 9, deadline: 3 * time.Second, wantCalls: 1, wantWait: 2 * time.Second,
			wantCode: codes.DeadlineExceeded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := secondsPolicy()
				p.PerAttemptTimeout = 2 * time.Second
				e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(p, retry.WithBudget(nil)))))
				steps := make([]sandboxtest.Step, tc.stalls)
				for i := range steps {
					steps[i] = sandboxtest.Stall()
				}
				e.srv.Script(getSandbox, steps...)
				ctx := context.Background()
				if tc.deadline > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tc.deadline)
					defer cancel()
				}
				start := time.Now()
				_, err := e.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"})
				if elapsed := time.Since(start); elapsed != tc.wantWait {
					t.Errorf("elapsed = %v, want %v", elapsed, tc.wantWait)
				}
				if got := status.Code(err); got != tc.wantCode {
					t.Errorf("status.Code(%v) = %v, want %v", err, got, tc.wantCode)
				}
				if tc.wantCode != codes.OK && !errors.Is(err, errs.ErrSandboxRequestTimeout) {
					t.Errorf("errors.Is(%v, ErrSandboxRequestTimeout) = false, want true", err)
				}
				if n := e.srv.Calls(getSandbox); n != tc.wantCalls {
					t.Errorf("server calls = %d, want %d", n, tc.wantCalls)
				}
				want := []string{"", "1", "2", "3", "4"}[:tc.wantCalls]
				if h := headerValues(t, e.srv.Metadata(getSandbox), attemptHeader); fmt.Sprint(h) != fmt.Sprint(want) {
					t.Errorf("%s per attempt = %q, want %q", attemptHeader, h, want)
				}
			})
		})
	}
}
