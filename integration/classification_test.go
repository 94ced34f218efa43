package integration_test

import (
	"context"
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

// rpc is one real call through the generated client: the method it is scripted by and the
// request it sends.
type rpc struct {
	method string
	invoke func(context.Context, clients) error
}

func getSandbox(id string) rpc {
	return rpc{mGet, func(ctx context.Context, c clients) error {
		_, err := c.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: id})
		return err
	}}
}

func readFile(id, path string) rpc {
	return rpc{mReadFile, func(ctx context.Context, c clients) error {
		_, err := c.sb.ReadFile(ctx, &sandboxpb.ReadFileRequest{SandboxId: id, Path: path})
		return err
	}}
}

func writeFile(id, path string) rpc {
	return rpc{mWrite, func(ctx context.Context, c clients) error {
		_, err := c.sb.WriteFile(ctx, &sandboxpb.WriteFileRequest{SandboxId: id, Path: path, Content: []byte("x")})
		return err
	}}
}

func getSnapshot(id string) rpc {
	return rpc{mSnapshot, func(ctx context.Context, c clients) error {
		_, err := c.sb.GetFileSystemSnapshot(ctx, &sandboxpb.GetFileSystemSnapshotRequest{FileSystemSnapshotId: id})
		return err
	}}
}

func getRunner(id string) rpc {
	return rpc{mRunner, func(ctx context.Context, c clients) error {
		_, err := c.disc.GetAvailableRunner(ctx, &sandboxpb.GetAvailableRunnerRequest{RunnerId: id})
		return err
	}}
}

// want is everything a classified error is checked for.
type want struct {
	kind       errs.Kind
	notKinds   []errs.Kind // kinds errors.Is must not match
	code       codes.Code
	reason     string
	domain     string
	md         map[string]string // nil: no ErrorInfo
	delay      time.Duration
	hasDelay   bool
	violations []errs.FieldViolation
	sandboxID  string
	filePath   string
	snapshotID string
	runnerID   string
	msg        []string // substrings of Error(), in order
}

type classRow struct {
	name string
	rpc  rpc
	st   *status.Status // scripted failure; nil: the server fails the call by itself
	want want
}

// fssRows are the trusted snapshot reasons on GetFileSystemSnapshot.
func fssRows() []classRow {
	reasons := []struct {
		reason string
		code   codes.Code
		kind   errs.Kind
	}{
		{"CWSANDBOX_FSS_NOT_FOUND", codes.NotFound, errs.ErrSnapshotNotFound},
		{"CWSANDBOX_FSS_NOT_READY", codes.FailedPrecondition, errs.ErrSnapshotNotReady},
		{"CWSANDBOX_FSS_NOT_SUPPORTED", codes.FailedPrecondition, errs.ErrSnapshotNotSupported},
		{"CWSANDBOX_FSS_SIZE_EXCEEDED", codes.FailedPrecondition, errs.ErrSnapshotSizeExceeded},
		{"CWSANDBOX_FSS_QUOTA_EXCEEDED", codes.ResourceExhausted, errs.ErrSnapshotQuotaExceeded},
		{"CWSANDBOX_FSS_BUCKET_MISMATCH", codes.FailedPrecondition, errs.ErrSnapshotBucketMismatch},
		{"CWSANDBOX_FSS_BUCKET_UNAVAILABLE", codes.Internal, errs.ErrSandboxSnapshot},
		{"CWSANDBOX_FSS_RESTORE_FAILED", codes.Internal, errs.ErrSandboxSnapshot},
		{"CWSANDBOX_FSS_CREATE_FAILED", codes.Internal, errs.ErrSandboxSnapshot},
		{"CWSANDBOX_FSS_CREATE_TIMED_OUT", codes.DeadlineExceeded, errs.ErrSandboxSnapshot},
		{"CWSANDBOX_FSS_AUTH_FAILED", codes.PermissionDenied, errs.ErrSandboxSnapshot},
		{"CWSANDBOX_FSS_TRANSPORT_FAILED", codes.Unavailable, errs.ErrSandboxSnapshot},
		{"CWSANDBOX_FSS_CANCELED", codes.Canceled, errs.ErrSandboxSnapshot},
		{"CWSANDBOX_FSS_WAIT_TIMEOUT", codes.DeadlineExceeded, errs.ErrSnapshotWaitTimeout},
		{"CWSANDBOX_FSS_BACKEND_THROTTLED", codes.ResourceExhausted, errs.ErrSnapshotBackendThrottled},
		{"CWSANDBOX_FSS_INFLIGHT_LIMIT", codes.Unavailable, errs.ErrSnapshotBackendThrottled},
	}
	var rows []classRow
	for _, r := range reasons {
		md := map[string]string{"file_system_snapshot_id": "fss-7"}
		rows = append(rows, classRow{
			name: "trusted " + r.reason + " on " + r.code.String(),
			rpc:  getSnapshot("fss-7"),
			st:   faultlinetest.Status(r.code, "snapshot trouble", faultlinetest.ErrorInfo(classify.DefaultDomain, r.reason, md)),
			want: want{kind: r.kind, code: r.code, reason: r.reason, domain: sandboxtest.Domain, md: md,
				snapshotID: "fss-7", msg: []string{"GetFileSystemSnapshot: ", "snapshot trouble", "(snapshot fss-7)"}},
		})
	}
	return rows
}

// fileRows are the trusted file reasons.
func fileRows() []classRow {
	phrases := map[string]string{
		"CWSANDBOX_FILE_NOT_FOUND":         "file not found",
		"CWSANDBOX_FILE_IS_DIRECTORY":      "file is a directory",
		"CWSANDBOX_FILE_IO_FAILED":         "file i/o failed",
		"CWSANDBOX_FILE_PERMISSION_DENIED": "file permission denied",
		"CWSANDBOX_FILE_TOO_LARGE":         "file too large",
		"CWSANDBOX_FILE_TRUNCATED":         "file truncated",
	}
	var rows []classRow
	for _, reason := range slices.Sorted(maps.Keys(phrases)) {
		md := map[string]string{"filepath": "/srv/from-metadata"}
		rows = append(rows, classRow{
			name: "trusted " + reason + " on WriteFile: path from the request wins over metadata",
			rpc:  writeFile("sb-1", "/work/out.txt"),
			st:   faultlinetest.Status(codes.FailedPrecondition, "cannot write", faultlinetest.ErrorInfo(classify.DefaultDomain, reason, md)),
			want: want{kind: errs.ErrSandboxFile, code: codes.FailedPrecondition, reason: reason, domain: sandboxtest.Domain, md: md,
				sandboxID: "sb-1", filePath: "/work/out.txt",
				msg: []string{"WriteFile: " + phrases[reason] + ": cannot write (sandbox sb-1, file /work/out.txt)"}},
		})
	}
	return rows
}

// TestClassificationEndToEnd reproduces every row of spec/classification.md through the
// real server over TCP: the server sends the status (scripted, or its own), the client's
// interceptor classifies it with the call context read from the real request message.
func TestClassificationEndToEnd(t *testing.T) {
	srv, addr := startServer(t, sandboxtest.WithSandboxes("sb-1"), sandboxtest.WithSnapshots("fss-ok"), sandboxtest.WithRunners("r-ok"))
	c := dial(t, addr, []interceptor.Option{interceptor.WithRetrier(retry.MustNew(oneAttempt()))})

	runnerMD := map[string]string{"runner_id": "r-9"}
	rows := []classRow{
		// Trusted reasons, sent by the server itself.
		{
			name: "server's own FILE_NOT_FOUND on ReadFile",
			rpc:  readFile("sb-1", "/etc/missing.conf"),
			want: want{kind: errs.ErrSandboxFile, code: codes.NotFound, reason: "CWSANDBOX_FILE_NOT_FOUND", domain: "cwsandbox.com",
				md: map[string]string{"filepath": "/etc/missing.conf"}, sandboxID: "sb-1", filePath: "/etc/missing.conf",
				msg: []string{"ReadFile: file not found: ", "(sandbox sb-1, file /etc/missing.conf)"}},
		},
		{
			name: "server's own SANDBOX_NOT_FOUND on GetSandbox",
			rpc:  getSandbox("sb-gone"),
			want: want{kind: errs.ErrSandboxNotFound, code: codes.NotFound, reason: "CWSANDBOX_SANDBOX_NOT_FOUND", domain: "cwsandbox.com",
				md: map[string]string{"sandbox_id": "sb-gone"}, sandboxID: "sb-gone",
				msg: []string{"GetSandbox: sandbox not found: ", "(sandbox sb-gone)"}},
		},
		{
			name: "server's own FSS_NOT_FOUND on GetFileSystemSnapshot",
			rpc:  getSnapshot("fss-gone"),
			want: want{kind: errs.ErrSnapshotNotFound, code: codes.NotFound, reason: "CWSANDBOX_FSS_NOT_FOUND", domain: "cwsandbox.com",
				md: map[string]string{"file_system_snapshot_id": "fss-gone"}, snapshotID: "fss-gone",
				msg: []string{"GetFileSystemSnapshot: snapshot not found: ", "(snapshot fss-gone)"}},
		},
		{
			name: "server's own RUNNER_NOT_FOUND on GetAvailableRunner",
			rpc:  getRunner("r-gone"),
			want: want{kind: errs.ErrRunnerNotFound, notKinds: []errs.Kind{errs.ErrSandbox}, code: codes.NotFound,
				reason: "CWSANDBOX_RUNNER_NOT_FOUND", domain: "cwsandbox.com", md: map[string]string{"runner_id": "r-gone"},
				runnerID: "r-gone", msg: []string{"GetAvailableRunner: runner not found: ", "(runner r-gone)"}},
		},
		{
			name: "server's own BadRequest on ReadFile with an empty path",
			rpc:  readFile("sb-1", ""),
			want: want{kind: errs.ErrSandboxValidation, code: codes.InvalidArgument, sandboxID: "sb-1",
				violations: []errs.FieldViolation{{Field: "path", Description: "must not be empty"}},
				msg:        []string{"ReadFile: invalid argument: ", "field violations: path: must not be empty"}},
		},
		{
			name: "file reason without a path in the request: path from metadata",
			rpc:  getSandbox("sb-1"),
			st: faultlinetest.Status(codes.NotFound, "no such file",
				faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_FILE_NOT_FOUND", map[string]string{"filepath": "/var/log/app.log"})),
			want: want{kind: errs.ErrSandboxFile, code: codes.NotFound, reason: "CWSANDBOX_FILE_NOT_FOUND", domain: "cwsandbox.com",
				md: map[string]string{"filepath": "/var/log/app.log"}, sandboxID: "sb-1", filePath: "/var/log/app.log",
				msg: []string{"GetSandbox: file not found: no such file (sandbox sb-1, file /var/log/app.log)"}},
		},
		{
			name: "COMMAND_TIMEOUT",
			rpc:  getSandbox("sb-1"),
			st:   faultlinetest.Status(codes.DeadlineExceeded, "command ran 30s", faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_COMMAND_TIMEOUT", nil)),
			want: want{kind: errs.ErrSandboxCommandTimeout, notKinds: []errs.Kind{errs.ErrSandboxRequestTimeout}, code: codes.DeadlineExceeded,
				reason: "CWSANDBOX_COMMAND_TIMEOUT", domain: "cwsandbox.com", md: map[string]string{}, sandboxID: "sb-1",
				msg: []string{"GetSandbox: command timed out: command ran 30s"}},
		},
		{
			name: "RUNNER_UNAVAILABLE on UNAVAILABLE with RetryInfo",
			rpc:  getSandbox("sb-1"),
			st: faultlinetest.Status(codes.Unavailable, "runner draining",
				faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_RUNNER_UNAVAILABLE", runnerMD), faultlinetest.RetryInfo(1500*time.Millisecond)),
			want: want{kind: errs.ErrSandboxUnavailable, code: codes.Unavailable, reason: "CWSANDBOX_RUNNER_UNAVAILABLE", domain: "cwsandbox.com",
				md: runnerMD, delay: 1500 * time.Millisecond, hasDelay: true, sandboxID: "sb-1",
				msg: []string{"GetSandbox: unavailable: runner draining (sandbox sb-1)"}},
		},
		{
			name: "BACKEND_UNAVAILABLE on INTERNAL is still transient",
			rpc:  getSandbox("sb-1"),
			st:   faultlinetest.Status(codes.Internal, "backend restarting", faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_BACKEND_UNAVAILABLE", nil)),
			want: want{kind: errs.ErrSandboxUnavailable, code: codes.Internal, reason: "CWSANDBOX_BACKEND_UNAVAILABLE", domain: "cwsandbox.com",
				md: map[string]string{}, sandboxID: "sb-1", msg: []string{"GetSandbox: unavailable: backend restarting"}},
		},
		{
			name: "RUNNER_NOT_FOUND on a sandbox call is not SandboxNotFound: the code decides",
			rpc:  getSandbox("sb-1"),
			st:   faultlinetest.Status(codes.FailedPrecondition, "runner went away", faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_RUNNER_NOT_FOUND", runnerMD)),
			want: want{kind: errs.ErrSandbox, notKinds: []errs.Kind{errs.ErrSandboxNotFound, errs.ErrRunnerNotFound}, code: codes.FailedPrecondition,
				reason: "CWSANDBOX_RUNNER_NOT_FOUND", domain: "cwsandbox.com", md: runnerMD, sandboxID: "sb-1",
				msg: []string{"GetSandbox: failed precondition: runner went away"}},
		},
		{
			name: "other trusted reason falls through to the code",
			rpc:  getSandbox("sb-1"),
			st:   faultlinetest.Status(codes.FailedPrecondition, "bad placement", faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_INVALID_REQUEST", nil)),
			want: want{kind: errs.ErrSandbox, code: codes.FailedPrecondition, reason: "CWSANDBOX_INVALID_REQUEST", domain: "cwsandbox.com",
				md: map[string]string{}, sandboxID: "sb-1"},
		},
		{
			name: "unknown future trusted reason on UNAVAILABLE: the code decides",
			rpc:  getSandbox("sb-1"),
			st:   faultlinetest.Status(codes.Unavailable, "new gate", faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_SERVERLESS_GATE_2030", nil)),
			want: want{kind: errs.ErrSandboxUnavailable, code: codes.Unavailable, reason: "CWSANDBOX_SERVERLESS_GATE_2030",
				domain: "cwsandbox.com", md: map[string]string{}, sandboxID: "sb-1"},
		},
		// Domain gate.
		{
			name: "spoofed domain: reason attached, code decides",
			rpc:  getSandbox("sb-1"),
			st: faultlinetest.Status(codes.Internal, "sidecar says so",
				faultlinetest.ErrorInfo("cwsandbox.com.evil", "CWSANDBOX_BACKEND_UNAVAILABLE", map[string]string{"k": "v"}),
				faultlinetest.RetryInfo(time.Second)),
			want: want{kind: errs.ErrSandbox, notKinds: []errs.Kind{errs.ErrSandboxUnavailable}, code: codes.Internal,
				reason: "CWSANDBOX_BACKEND_UNAVAILABLE", domain: "cwsandbox.com.evil", md: map[string]string{"k": "v"},
				delay: time.Second, hasDelay: true, sandboxID: "sb-1", msg: []string{"GetSandbox: internal error: sidecar says so"}},
		},
		{
			name: "domain match is case sensitive",
			rpc:  getSandbox("sb-1"),
			st:   faultlinetest.Status(codes.NotFound, "x", faultlinetest.ErrorInfo("CWSandbox.com", "CWSANDBOX_FILE_NOT_FOUND", nil)),
			want: want{kind: errs.ErrSandboxNotFound, notKinds: []errs.Kind{errs.ErrSandboxFile}, code: codes.NotFound,
				reason: "CWSANDBOX_FILE_NOT_FOUND", domain: "CWSandbox.com", md: map[string]string{}, sandboxID: "sb-1"},
		},
		{
			name: "empty domain is untrusted",
			rpc:  getSnapshot("fss-1"),
			st:   faultlinetest.Status(codes.Internal, "x", faultlinetest.ErrorInfo("", "CWSANDBOX_FSS_NOT_READY", nil)),
			want: want{kind: errs.ErrSandbox, notKinds: []errs.Kind{errs.ErrSandboxSnapshot}, code: codes.Internal,
				reason: "CWSANDBOX_FSS_NOT_READY", md: map[string]string{}, snapshotID: "fss-1"},
		},
		// Codes, sandbox family.
		{
			name: "NOT_FOUND about a snapshot id is SnapshotNotFound",
			rpc:  getSnapshot("fss-3"),
			st:   faultlinetest.Status(codes.NotFound, "no snapshot"),
			want: want{kind: errs.ErrSnapshotNotFound, code: codes.NotFound, snapshotID: "fss-3",
				msg: []string{"GetFileSystemSnapshot: snapshot not found: no snapshot (snapshot fss-3)"}},
		},
		{
			name: "NOT_FOUND otherwise is SandboxNotFound",
			rpc:  readFile("sb-1", "/a"),
			st:   faultlinetest.Status(codes.NotFound, "gone"),
			want: want{kind: errs.ErrSandboxNotFound, code: codes.NotFound, sandboxID: "sb-1", filePath: "/a",
				msg: []string{"ReadFile: sandbox not found: gone (sandbox sb-1, file /a)"}},
		},
		{
			name: "CANCELLED is SandboxNotRunning, not transient",
			rpc:  getSandbox("sb-1"),
			st:   faultlinetest.Status(codes.Canceled, "stopped"),
			want: want{kind: errs.ErrSandboxNotRunning, notKinds: []errs.Kind{errs.ErrSandboxUnavailable}, code: codes.Canceled,
				sandboxID: "sb-1", msg: []string{"GetSandbox: cancelled: stopped"}},
		},
		{
			name: "DEADLINE_EXCEEDED from the server is SandboxRequestTimeout",
			rpc:  getSandbox("sb-1"),
			st:   faultlinetest.Status(codes.DeadlineExceeded, "slow"),
			want: want{kind: errs.ErrSandboxRequestTimeout, code: codes.DeadlineExceeded, sandboxID: "sb-1", msg: []string{"GetSandbox: timed out: slow"}},
		},
		{
			name: "UNAVAILABLE",
			rpc:  getSandbox("sb-1"),
			st:   faultlinetest.Status(codes.Unavailable, "down"),
			want: want{kind: errs.ErrSandboxUnavailable, code: codes.Unavailable, sandboxID: "sb-1", msg: []string{"GetSandbox: unavailable: down"}},
		},
		{
			name: "RESOURCE_EXHAUSTED without RetryInfo",
			rpc:  getSandbox("sb-1"),
			st:   faultlinetest.Status(codes.ResourceExhausted, "quota"),
			want: want{kind: errs.ErrSandboxResourceExhausted, code: codes.ResourceExhausted, sandboxID: "sb-1",
				msg: []string{"GetSandbox: resource exhausted: quota"}},
		},
		{
			name: "RESOURCE_EXHAUSTED with RetryInfo",
			rpc:  getSandbox("sb-1"),
			st:   faultlinetest.Status(codes.ResourceExhausted, "quota", faultlinetest.RetryInfo(3*time.Second)),
			want: want{kind: errs.ErrSandboxResourceExhausted, code: codes.ResourceExhausted, delay: 3 * time.Second, hasDelay: true, sandboxID: "sb-1"},
		},
		{
			name: "INVALID_ARGUMENT with violations is SandboxValidation",
			rpc:  writeFile("sb-1", "/x"),
			st:   faultlinetest.Status(codes.InvalidArgument, "bad", faultlinetest.BadRequest(faultlinetest.FieldViolation("content", "too big"), faultlinetest.FieldViolation("path", "not absolute"))),
			want: want{kind: errs.ErrSandboxValidation, code: codes.InvalidArgument, sandboxID: "sb-1", filePath: "/x",
				violations: []errs.FieldViolation{{Field: "content", Description: "too big"}, {Field: "path", Description: "not absolute"}},
				msg:        []string{"field violations: content: too big; path: not absolute"}},
		},
		{
			name: "INVALID_ARGUMENT without violations is SandboxError",
			rpc:  getSandbox("sb-1"),
			st:   faultlinetest.Status(codes.InvalidArgument, "bad"),
			want: want{kind: errs.ErrSandbox, notKinds: []errs.Kind{errs.ErrCWSandboxValidation}, code: codes.InvalidArgument, sandboxID: "sb-1"},
		},
		{
			name: "UNAUTHENTICATED is an authentication error, not a SandboxError",
			rpc:  getSandbox("sb-1"),
			st:   faultlinetest.Status(codes.Unauthenticated, "who are you"),
			want: want{kind: errs.ErrCWSandboxAuthentication, notKinds: []errs.Kind{errs.ErrSandbox}, code: codes.Unauthenticated,
				sandboxID: "sb-1", msg: []string{"GetSandbox: authentication failed: who are you"}},
		},
		{
			name: "PERMISSION_DENIED is an authentication error",
			rpc:  getSandbox("sb-1"),
			st:   faultlinetest.Status(codes.PermissionDenied, "not yours"),
			want: want{kind: errs.ErrCWSandboxAuthentication, notKinds: []errs.Kind{errs.ErrSandbox}, code: codes.PermissionDenied,
				sandboxID: "sb-1", msg: []string{"GetSandbox: permission denied: not yours"}},
		},
		{
			name: "anything else is SandboxError",
			rpc:  getSandbox("sb-1"),
			st:   faultlinetest.Status(codes.Aborted, "conflict"),
			want: want{kind: errs.ErrSandbox, code: codes.Aborted, sandboxID: "sb-1", msg: []string{"GetSandbox: aborted: conflict"}},
		},
		// Discovery family.
		{
			name: "discovery NOT_FOUND without reason is RunnerNotFound",
			rpc:  getRunner("r-9"),
			st:   faultlinetest.Status(codes.NotFound, "no runner"),
			want: want{kind: errs.ErrRunnerNotFound, code: codes.NotFound, runnerID: "r-9", msg: []string{"GetAvailableRunner: runner not found: no runner (runner r-9)"}},
		},
		{
			name: "discovery INVALID_ARGUMENT with violations is DiscoveryValidation",
			rpc:  getRunner("r-9"),
			st:   faultlinetest.Status(codes.InvalidArgument, "bad", faultlinetest.BadRequest(faultlinetest.FieldViolation("runner_id", "malformed"))),
			want: want{kind: errs.ErrDiscoveryValidation, notKinds: []errs.Kind{errs.ErrSandbox}, code: codes.InvalidArgument, runnerID: "r-9",
				violations: []errs.FieldViolation{{Field: "runner_id", Description: "malformed"}}},
		},
		{
			name: "discovery UNAUTHENTICATED is an authentication error",
			rpc:  getRunner("r-9"),
			st:   faultlinetest.Status(codes.Unauthenticated, "no"),
			want: want{kind: errs.ErrCWSandboxAuthentication, notKinds: []errs.Kind{errs.ErrDiscovery}, code: codes.Unauthenticated, runnerID: "r-9"},
		},
		{
			name: "discovery INTERNAL is DiscoveryError",
			rpc:  getRunner("r-9"),
			st:   faultlinetest.Status(codes.Internal, "oops"),
			want: want{kind: errs.ErrDiscovery, notKinds: []errs.Kind{errs.ErrSandbox}, code: codes.Internal, runnerID: "r-9"},
		},
		{
			name: "discovery UNAVAILABLE is a DiscoveryError",
			rpc:  getRunner("r-9"),
			st:   faultlinetest.Status(codes.Unavailable, "down"),
			want: want{kind: errs.ErrDiscovery, notKinds: []errs.Kind{errs.ErrSandbox}, code: codes.Unavailable, runnerID: "r-9"},
		},
		{
			name: "discovery RESOURCE_EXHAUSTED is a DiscoveryError",
			rpc:  getRunner("r-9"),
			st:   faultlinetest.Status(codes.ResourceExhausted, "busy"),
			want: want{kind: errs.ErrDiscovery, notKinds: []errs.Kind{errs.ErrSandbox}, code: codes.ResourceExhausted, runnerID: "r-9"},
		},
		{
			name: "discovery DEADLINE_EXCEEDED is a DiscoveryError",
			rpc:  getRunner("r-9"),
			st:   faultlinetest.Status(codes.DeadlineExceeded, "slow"),
			want: want{kind: errs.ErrDiscovery, notKinds: []errs.Kind{errs.ErrSandbox}, code: codes.DeadlineExceeded, runnerID: "r-9"},
		},
		// Parsing rules.
		{
			name: "first ErrorInfo with a reason wins as a unit",
			rpc:  readFile("sb-1", "/f"),
			st: faultlinetest.Status(codes.NotFound, "x",
				faultlinetest.ErrorInfo("x", "", map[string]string{"skipped": "1"}),
				faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_FILE_NOT_FOUND", map[string]string{"filepath": "/f"}),
				faultlinetest.ErrorInfo("late.example", "LATE", nil)),
			want: want{kind: errs.ErrSandboxFile, code: codes.NotFound, reason: "CWSANDBOX_FILE_NOT_FOUND", domain: "cwsandbox.com",
				md: map[string]string{"filepath": "/f"}, sandboxID: "sb-1", filePath: "/f"},
		},
		{
			name: "RetryInfo without a delay is skipped",
			rpc:  getSandbox("sb-1"),
			st:   faultlinetest.Status(codes.Unavailable, "x", &errdetails.RetryInfo{}, faultlinetest.RetryInfo(7*time.Second)),
			want: want{kind: errs.ErrSandboxUnavailable, code: codes.Unavailable, delay: 7 * time.Second, hasDelay: true, sandboxID: "sb-1"},
		},
		{
			name: "RetryInfo of zero is present",
			rpc:  getSandbox("sb-1"),
			st:   faultlinetest.Status(codes.Unavailable, "x", faultlinetest.RetryInfo(0)),
			want: want{kind: errs.ErrSandboxUnavailable, code: codes.Unavailable, delay: 0, hasDelay: true, sandboxID: "sb-1"},
		},
		{
			name: "negative RetryInfo is kept as given",
			rpc:  getSandbox("sb-1"),
			st:   faultlinetest.Status(codes.Unavailable, "x", faultlinetest.RetryInfo(-5*time.Second)),
			want: want{kind: errs.ErrSandboxUnavailable, code: codes.Unavailable, delay: -5 * time.Second, hasDelay: true, sandboxID: "sb-1"},
		},
		{
			name: "RetryInfo of 10^18 s is absent",
			rpc:  getSandbox("sb-1"),
			st: faultlinetest.Status(codes.Unavailable, "x",
				&errdetails.RetryInfo{RetryDelay: &durationpb.Duration{Seconds: 1e18}}),
			want: want{kind: errs.ErrSandboxUnavailable, code: codes.Unavailable, sandboxID: "sb-1"},
		},
		{
			name: "RetryInfo valid as a proto but too long for time.Duration is clamped, present",
			rpc:  getSandbox("sb-1"),
			st: faultlinetest.Status(codes.Unavailable, "x",
				&errdetails.RetryInfo{RetryDelay: &durationpb.Duration{Seconds: 300_000_000_000}}, faultlinetest.RetryInfo(time.Second)),
			want: want{kind: errs.ErrSandboxUnavailable, code: codes.Unavailable, delay: math.MaxInt64, hasDelay: true, sandboxID: "sb-1"},
		},
		{
			name: "BadRequest violations collected in order with fallbacks",
			rpc:  getSandbox("sb-1"),
			st: faultlinetest.Status(codes.InvalidArgument, "x",
				&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
					{Field: "tags[0]", LocalizedMessage: &errdetails.LocalizedMessage{Locale: "en", Message: "Invalid tag"}, Reason: "TAG_INVALID"},
					{Field: "tags[1]", Reason: "TAG_TOO_LONG"},
					{}, // dropped: neither field nor description
				}},
				faultlinetest.BadRequest(faultlinetest.FieldViolation("name", "required"))),
			want: want{kind: errs.ErrSandboxValidation, code: codes.InvalidArgument, sandboxID: "sb-1",
				violations: []errs.FieldViolation{{Field: "tags[0]", Description: "Invalid tag"}, {Field: "tags[1]", Description: "TAG_TOO_LONG"}, {Field: "name", Description: "required"}},
				msg:        []string{"field violations: tags[0]: Invalid tag; tags[1]: TAG_TOO_LONG; name: required"}},
		},
	}
	rows = append(rows, fileRows()...)
	rows = append(rows, fssRows()...)

	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			srv.Reset()
			if row.st != nil {
				srv.FailNext(row.rpc.method, 1, row.st)
			}
			ctx, cancel := context.WithTimeout(context.Background(), hangBound)
			defer cancel()
			err := row.rpc.invoke(ctx, c)
			if n := srv.Calls(row.rpc.method); n != 1 {
				t.Errorf("server calls of %s = %d, want 1", row.rpc.method, n)
			}
			checkClassified(t, err, row.st, row.want)
		})
	}
}

// checkClassified checks err against w, and that it still answers as the status sent
// (scripted st when non-nil).
func checkClassified(t *testing.T, err error, st *status.Status, w want) {
	t.Helper()
	if err == nil {
		t.Fatalf("call error = nil, want %v", w.kind)
	}
	e := asErrs(t, err)
	if e.Kind() != w.kind {
		t.Errorf("Kind() = %v, want %v (err %q)", e.Kind(), w.kind, err)
	}
	if !errors.Is(err, w.kind) {
		t.Errorf("errors.Is(err, %v) = false, want true", w.kind)
	}
	for _, k := range w.notKinds {
		if errors.Is(err, k) {
			t.Errorf("errors.Is(err, %v) = true, want false", k)
		}
	}
	if got := status.Code(err); got != w.code {
		t.Errorf("status.Code(err) = %v, want %v", got, w.code)
	}
	if e.Code() != w.code {
		t.Errorf("Code() = %v, want %v", e.Code(), w.code)
	}
	if st != nil {
		got, ok := status.FromError(err)
		if !ok || !proto.Equal(got.Proto(), st.Proto()) {
			t.Errorf("status.FromError(err) = %v, %v, want the status sent %v, true", got.Proto(), ok, st.Proto())
		}
	}
	if e.Reason() != w.reason || e.Domain() != w.domain {
		t.Errorf("Reason(), Domain() = %q, %q, want %q, %q", e.Reason(), e.Domain(), w.reason, w.domain)
	}
	if diff := cmp.Diff(w.md, e.Metadata()); diff != "" || (w.md == nil) != (e.Metadata() == nil) {
		t.Errorf("Metadata() = %#v, want %#v", e.Metadata(), w.md)
	}
	if d, ok := e.RetryDelay(); d != w.delay || ok != w.hasDelay {
		t.Errorf("RetryDelay() = %v, %v, want %v, %v", d, ok, w.delay, w.hasDelay)
	}
	if diff := cmp.Diff(w.violations, e.FieldViolations()); diff != "" {
		t.Errorf("FieldViolations() mismatch (-want +got):\n%s", diff)
	}
	got := [4]string{e.Resource().SandboxID, e.Resource().FilePath, e.Resource().SnapshotID, e.Resource().RunnerID}
	if wantRes := [4]string{w.sandboxID, w.filePath, w.snapshotID, w.runnerID}; got != wantRes {
		t.Errorf("SandboxID, FilePath, SnapshotID, RunnerID = %q, want %q", got, wantRes)
	}
	msg := err.Error()
	rest := msg
	for _, sub := range w.msg {
		i := strings.Index(rest, sub)
		if i < 0 {
			t.Errorf("Error() = %q, want it to contain %q (in order)", msg, sub)
			break
		}
		rest = rest[i+len(sub):]
	}
	for k, v := range w.md {
		if slices.Contains(got[:], v) {
			continue // a resource id the call named: printed as the resource
		}
		if len(v) > 1 && strings.Contains(msg, v) {
			t.Errorf("Error() = %q contains metadata value %q of key %q", msg, v, k)
		}
	}
	if strings.ContainsAny(msg, "\n\r") || len(msg) > 1024 {
		t.Errorf("Error() = %q (%d bytes), want one line of at most 1 KiB", msg, len(msg))
	}
}

// TestClassificationConfiguredFamily checks the generic family through the real server: a
// classifier that puts DiscoveryService in no family classifies its calls as a service it
// does not know would be.
func TestClassificationConfiguredFamily(t *testing.T) {
	srv, addr := startServer(t)
	cl := classify.New(classify.WithService("coreweave.sandbox.v1.DiscoveryService", errs.ErrCWSandbox))
	c := dial(t, addr, []interceptor.Option{interceptor.WithRetrier(retry.MustNew(oneAttempt())), interceptor.WithClassifier(cl)})
	tests := []struct {
		name string
		st   *status.Status
		want want
	}{
		{"NOT_FOUND is the base", faultlinetest.Status(codes.NotFound, "x"),
			want{kind: errs.ErrCWSandbox, notKinds: []errs.Kind{errs.ErrDiscovery, errs.ErrSandbox}, code: codes.NotFound, runnerID: "r-1"}},
		{"validation", faultlinetest.Status(codes.InvalidArgument, "x", faultlinetest.BadRequest(faultlinetest.FieldViolation("f", "d"))),
			want{kind: errs.ErrCWSandboxValidation, notKinds: []errs.Kind{errs.ErrDiscovery}, code: codes.InvalidArgument, runnerID: "r-1",
				violations: []errs.FieldViolation{{Field: "f", Description: "d"}}}},
		{"a transient code alone is the base kind", faultlinetest.Status(codes.Unavailable, "x"),
			want{kind: errs.ErrCWSandbox, notKinds: []errs.Kind{errs.ErrSandbox, errs.ErrDiscovery}, code: codes.Unavailable, runnerID: "r-1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.Reset()
			srv.FailNext(mRunner, 1, tt.st)
			ctx, cancel := context.WithTimeout(context.Background(), hangBound)
			defer cancel()
			err := getRunner("r-1").invoke(ctx, c)
			checkClassified(t, err, tt.st, tt.want)
		})
	}
}
