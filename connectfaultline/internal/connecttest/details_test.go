package connecttest_test

import (
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/faultline-go/faultline/connectfaultline/internal/connecttest"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
)

// aip193 returns the status the tests script: ErrorInfo, RetryInfo and BadRequest, then
// a detail of a type no registry knows, with bytes that do not decode (a client must
// rebuild it from Type and Bytes; Value fails).
func aip193() *status.Status {
	return faultlinetest.Status(codes.Unavailable, "runner unavailable: ñ, 100% «busy»",
		faultlinetest.ErrorInfo(sandboxtest.Domain, "CWSANDBOX_RUNNER_UNAVAILABLE", map[string]string{"runner_id": "r-7"}),
		faultlinetest.RetryInfo(1500*time.Millisecond),
		faultlinetest.BadRequest(faultlinetest.FieldViolation("sandbox_id", "must not be empty"),
			faultlinetest.FieldViolation("command", "too long")),
		&anypb.Any{TypeUrl: "type.googleapis.com/example.v1.Unknown", Value: []byte{0xff, 0xff, 0x01}},
	)
}

// checkDetails fails the test unless err is a wire *connect.Error that rebuilds want.
func checkDetails(t *testing.T, call string, err error, want *status.Status) {
	t.Helper()
	ce := connectError(t, call, err)
	if got, w := ce.Code(), connect.Code(want.Code()); got != w {
		t.Errorf("%s: Code() = %v, want %v", call, got, w)
	}
	if got, w := ce.Message(), want.Message(); got != w {
		t.Errorf("%s: Message() = %q, want %q", call, got, w)
	}
	if !connect.IsWireError(err) {
		t.Errorf("%s: IsWireError = false, want true (the server sent it)", call)
	}
	if diff := cmp.Diff(want.Proto(), rebuild(ce), protocmp.Transform()); diff != "" {
		t.Errorf("%s: status rebuilt from Code, Message, Details mismatch (-want +got):\n%s", call, diff)
	}
	// Value decodes the known types, and only those.
	wantDetails := want.Proto().GetDetails()
	if len(ce.Details()) != len(wantDetails) {
		return
	}
	for i, d := range ce.Details() {
		v, verr := d.Value()
		wantV, werr := wantDetails[i].UnmarshalNew()
		if (verr == nil) != (werr == nil) {
			t.Errorf("%s: detail %d (%s) Value() error = %v, want error %v", call, i, d.Type(), verr, werr)
			continue
		}
		if werr == nil && !proto.Equal(v, wantV) {
			t.Errorf("%s: detail %d Value() = %v, want %v", call, i, v, wantV)
		}
	}
}

// TestErrorDetails checks that a scripted status with ErrorInfo, RetryInfo and
// BadRequest reaches a plain connect client, on every protocol and HTTP version, as a
// *connect.Error whose Code, Message and Details rebuild the same google.rpc.Status: on a
// unary call, on a stream failed before its first message, and on a stream failed after
// two.
func TestErrorDetails(t *testing.T) {
	eachClient(t, bothPaths, func(t *testing.T, tr transport, v connecttest.HTTP, p connecttest.Protocol) {
		e := newEnv(t, tr, v, p)
		ctx := callCtx(t)
		st := aip193()

		e.srv.FailNext(mGet, 1, st)
		checkDetails(t, "GetSandbox", getSandbox(ctx, e, "sb-1"), st)

		e.srv.FailNext(mLogs, 1, st)
		got, err := recvLogs(ctx, e, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
		checkDetails(t, "StreamLogs failed at once", err, st)
		if len(got) != 0 {
			t.Errorf("StreamLogs failed at once delivered %d entries, want 0", len(got))
		}

		e.srv.ScriptStreamLogs(sandboxtest.StreamLogsScript{Entries: 2, Err: st})
		got, err = recvLogs(ctx, e, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
		checkDetails(t, "StreamLogs failed after 2 entries", err, st)
		if diff := cmp.Diff([]*sandboxpb.LogEntry{entry(0), entry(1)}, got, protocmp.Transform()); diff != "" {
			t.Errorf("StreamLogs entries before the failure mismatch (-want +got):\n%s", diff)
		}

		// The service's own errors carry their details too.
		_, err = e.disc.GetAvailableRunner(ctx, connect.NewRequest(&sandboxpb.GetAvailableRunnerRequest{RunnerId: "nope"}))
		checkDetails(t, "GetAvailableRunner(nope)", err, faultlinetest.Status(codes.NotFound, `runner "nope" not found`,
			faultlinetest.ErrorInfo(sandboxtest.Domain, sandboxtest.ReasonRunnerNotFound, map[string]string{"runner_id": "nope"})))
	})
}

func TestErrorFromStatus(t *testing.T) {
	if got := connecttest.ErrorFromStatus(nil); got != nil {
		t.Errorf("ErrorFromStatus(nil) = %v, want nil", got)
	}
	if got := connecttest.ErrorFromStatus(status.New(codes.OK, "fine")); got != nil {
		t.Errorf("ErrorFromStatus(OK) = %v, want nil", got)
	}
	st := aip193()
	ce := connecttest.ErrorFromStatus(st)
	if ce.Code() != connect.CodeUnavailable || ce.Message() != st.Message() {
		t.Errorf("ErrorFromStatus(st) = %v, %q, want %v, %q", ce.Code(), ce.Message(), connect.CodeUnavailable, st.Message())
	}
	if diff := cmp.Diff(st.Proto(), rebuild(ce), protocmp.Transform()); diff != "" {
		t.Errorf("ErrorFromStatus(st) details mismatch (-want +got):\n%s", diff)
	}
	if connect.IsWireError(ce) {
		t.Errorf("IsWireError(ErrorFromStatus(st)) = true, want false (a server builds it; only a client's is a wire error)")
	}
	if got := connecttest.ErrorFromStatus(status.New(codes.Internal, "")); got.Message() != "" || got.Error() != "internal" {
		t.Errorf("ErrorFromStatus(INTERNAL, no message) = %q, %q, want %q, %q", got.Message(), got.Error(), "", "internal")
	}
	// A RetryInfo survives as a typed value.
	for _, d := range ce.Details() {
		if v, err := d.Value(); err == nil {
			if ri, ok := v.(*errdetails.RetryInfo); ok && ri.GetRetryDelay().AsDuration() != 1500*time.Millisecond {
				t.Errorf("RetryInfo delay = %v, want 1.5s", ri.GetRetryDelay().AsDuration())
			}
		}
	}
}
