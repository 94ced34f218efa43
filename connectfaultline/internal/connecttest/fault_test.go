package connecttest_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/faultline-go/faultline/connectfaultline/internal/connecttest"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
)

var resets = []connecttest.Reset{connecttest.CloseConn, connecttest.AbortStream}

// resetCodes returns the codes connect-go v1.21.1 gives a reset: never a wire error, and
// never the code a server would send for it (UNAVAILABLE) everywhere. Measured on every
// protocol (the protocol makes no difference); where two codes are listed, the client's
// read races with the connection's teardown.
//
//   - UNAVAILABLE, "unexpected EOF": http.Client.Do failed (the request got no response;
//     connect-go codes every Do error it cannot otherwise code so).
//   - INTERNAL, "stream error: stream ID n; INTERNAL_ERROR; received from peer": an HTTP/2
//     RST_STREAM (connect-go maps RST_STREAM codes as gRPC's PROTOCOL-HTTP2 says).
//   - INTERNAL, "protocol error: incomplete envelope: unexpected EOF": the body ended
//     inside a stream's framing.
//   - CANCELED, "read: connection reset by peer": a read failed with ECONNRESET, which
//     connect-go codes as a client that went away, on the client too.
func resetCodes(tr transport, v connecttest.HTTP, how connecttest.Reset, stream bool) []connect.Code {
	switch {
	case how == connecttest.AbortStream && v == connecttest.HTTP2:
		return []connect.Code{connect.CodeInternal}
	case how == connecttest.AbortStream, tr.name == memory.name:
		if stream {
			return []connect.Code{connect.CodeInternal}
		}
		return []connect.Code{connect.CodeUnavailable}
	case v == connecttest.HTTP1: // CloseConn on TCP
		return []connect.Code{connect.CodeCanceled}
	case stream:
		return []connect.Code{connect.CodeCanceled, connect.CodeInternal}
	default:
		return []connect.Code{connect.CodeCanceled, connect.CodeUnavailable}
	}
}

// checkTransportError fails the test unless err is a client-synthesized *connect.Error
// with one of the codes want, without details.
func checkTransportError(t *testing.T, call string, err error, want []connect.Code) {
	t.Helper()
	ce := connectError(t, call, err)
	if !slices.Contains(want, ce.Code()) {
		t.Errorf("%s: code = %v (%v), want one of %v", call, ce.Code(), err, want)
	}
	if connect.IsWireError(err) {
		t.Errorf("%s: IsWireError = true (%v), want false: the server sent nothing", call, err)
	}
	if len(ce.Details()) != 0 {
		t.Errorf("%s: %d details, want none", call, len(ce.Details()))
	}
}

// TestResetBefore checks that a reset as the call arrives reaches the client as a local
// error, the service never sees the call, and the next call gets through.
func TestResetBefore(t *testing.T) {
	eachClient(t, bothPaths, func(t *testing.T, tr transport, v connecttest.HTTP, p connecttest.Protocol) {
		for _, how := range resets {
			t.Run(how.String(), func(t *testing.T) {
				e := newEnv(t, tr, v, p)
				e.srv.Inject(mGet, connecttest.ResetBefore(how))
				checkTransportError(t, "GetSandbox", getSandbox(callCtx(t), e, "sb-1"), resetCodes(tr, v, how, false))
				if a, c := e.srv.Arrived(mGet), e.srv.Calls(mGet); a != 1 || c != 0 {
					t.Errorf("Arrived, Calls(GetSandbox) = %d, %d, want 1, 0 (net/http did not send it again)", a, c)
				}
				if err := getSandbox(callCtx(t), e, "sb-1"); err != nil {
					t.Errorf("GetSandbox after the reset = %v, want nil", err)
				}
			})
		}
	})
}

// TestResetAfterCreate is the ambiguous failure: the create ran, its answer was lost.
func TestResetAfterCreate(t *testing.T) {
	eachClient(t, bothPaths, func(t *testing.T, tr transport, v connecttest.HTTP, p connecttest.Protocol) {
		for _, how := range resets {
			t.Run(how.String(), func(t *testing.T) {
				e := newEnv(t, tr, v, p)
				e.srv.Inject(mCreate, connecttest.ResetAfter(how, 0))
				_, err := e.sb.CreateSandbox(callCtx(t), connect.NewRequest(&sandboxpb.CreateSandboxRequest{}))
				checkTransportError(t, "CreateSandbox", err, resetCodes(tr, v, how, false))
				if got := e.srv.SandboxesCreated(); got != 1 {
					t.Errorf("SandboxesCreated() = %d, want 1: the create ran", got)
				}
				if a, c, h := e.srv.Arrived(mCreate), e.srv.Calls(mCreate), e.srv.Handled(mCreate); a != 1 || c != 1 || h != 1 {
					t.Errorf("Arrived, Calls, Handled(CreateSandbox) = %d, %d, %d, want 1, 1, 1", a, c, h)
				}
			})
		}
	})
}

// TestResetMidStream checks that a stream reset after two messages delivers them, then
// a local error; and that a reset due after more messages than the handler sends replaces
// the stream's end.
func TestResetMidStream(t *testing.T) {
	eachClient(t, bothPaths, func(t *testing.T, tr transport, v connecttest.HTTP, p connecttest.Protocol) {
		for _, how := range resets {
			t.Run(how.String(), func(t *testing.T) {
				e := newEnv(t, tr, v, p)
				e.srv.Inject(mLogs, connecttest.ResetAfter(how, 2), connecttest.ResetAfter(how, 5))
				got, err := recvLogs(callCtx(t), e, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
				checkTransportError(t, "StreamLogs reset after 2", err, resetCodes(tr, v, how, true))
				if diff := cmp.Diff([]*sandboxpb.LogEntry{entry(0), entry(1)}, got, protocmp.Transform()); diff != "" {
					t.Errorf("StreamLogs reset after 2: entries mismatch (-want +got):\n%s", diff)
				}
				// The default log is 3 entries: all are delivered, then the reset.
				got, err = recvLogs(callCtx(t), e, &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
				checkTransportError(t, "StreamLogs reset after 5", err, resetCodes(tr, v, how, true))
				if len(got) != sandboxtest.DefaultLogEntries {
					t.Errorf("StreamLogs reset after 5: %d entries, want %d", len(got), sandboxtest.DefaultLogEntries)
				}
				if a, c := e.srv.Arrived(mLogs), e.srv.Calls(mLogs); a != 2 || c != 2 {
					t.Errorf("Arrived, Calls(StreamLogs) = %d, %d, want 2, 2", a, c)
				}
			})
		}
	})
}

// TestInjectPanics checks the misuses that panic.
func TestInjectPanics(t *testing.T) {
	srv := connecttest.New()
	tests := []struct {
		name string
		f    func()
	}{
		{"short procedure name", func() { srv.Inject("GetSandbox", connecttest.Delay(time.Second)) }},
		{"unknown procedure", func() { srv.Inject("/coreweave.sandbox.v1.SandboxService/Nope") }},
		{"ResetBefore(0)", func() { connecttest.ResetBefore(0) }},
		{"ResetAfter(3, 1)", func() { connecttest.ResetAfter(3, 1) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", tt.name)
				}
			}()
			tt.f()
		})
	}
}

// TestErrorOrigins records what a plain connect-go client returns for each way a call
// can fail, on every protocol, HTTP version and transport, and whether
// connect.IsWireError tells it from what the server sent:
//
//   - server-sent status: its code, IsWireError true;
//   - connection reset: see resetCodes, IsWireError false;
//   - refused dial: UNAVAILABLE, IsWireError false;
//   - deadline passed before the call was sent: DEADLINE_EXCEEDED, IsWireError false;
//   - deadline passed while the server held the call: DEADLINE_EXCEEDED, and IsWireError
//     either way: connect-go sends the deadline to the server (Connect-Timeout-Ms,
//     grpc-timeout), whose handler context ends at the same moment; whichever of the
//     client's timer and the server's answer comes first decides;
//   - response over the client's read limit (connect.WithReadMaxBytes):
//     RESOURCE_EXHAUSTED, IsWireError false, although the server handled the call.
func TestErrorOrigins(t *testing.T) {
	eachClient(t, bothPaths, func(t *testing.T, tr transport, v connecttest.HTTP, p connecttest.Protocol) {
		e := newEnv(t, tr, v, p)
		ctx := callCtx(t)
		type row struct {
			name string
			err  error
			code connect.Code
			wire []bool // the values IsWireError may take
		}
		var rows []row

		e.srv.FailNext(mGet, 1, faultlinetest.Status(codes.Unavailable, "restarting"))
		rows = append(rows, row{"server-sent status", getSandbox(ctx, e, "sb-1"), connect.CodeUnavailable, []bool{true}})

		for _, how := range resets {
			e.srv.Inject(mGet, connecttest.ResetBefore(how))
			err := getSandbox(ctx, e, "sb-1")
			rows = append(rows, row{"reset (" + how.String() + ")", err, connect.CodeOf(err), []bool{false}})
			checkTransportError(t, "reset", err, resetCodes(tr, v, how, false))
		}

		past, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
		defer cancel()
		arrived := e.srv.Arrived(mGet)
		rows = append(rows, row{"deadline before sending", getSandbox(past, e, "sb-1"), connect.CodeDeadlineExceeded, []bool{false}})
		if got := e.srv.Arrived(mGet); got != arrived {
			t.Errorf("a call whose deadline had passed arrived at the server")
		}

		e.srv.Script(mGet, sandboxtest.Stall())
		short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		rows = append(rows, row{"deadline while the server holds the call", getSandbox(short, e, "sb-1"),
			connect.CodeDeadlineExceeded, []bool{false, true}})

		small := e.ep.SandboxClient(p, connect.WithReadMaxBytes(5))
		handled := e.srv.Handled(mGet)
		_, err := small.GetSandbox(ctx, connect.NewRequest(&sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}))
		rows = append(rows, row{"response over the read limit", err, connect.CodeResourceExhausted, []bool{false}})
		if got := e.srv.Handled(mGet); got != handled+1 {
			t.Errorf("Handled(GetSandbox) = %d, want %d: the server answered", got, handled+1)
		}

		e.ep.Close()
		rows = append(rows, row{"refused dial", getSandbox(ctx, e, "sb-1"), connect.CodeUnavailable, []bool{false}})

		for _, r := range rows {
			if r.err == nil {
				t.Errorf("%s: error = nil", r.name)
				continue
			}
			ce := connectError(t, r.name, r.err)
			wire := connect.IsWireError(r.err)
			if ce.Code() != r.code || !slices.Contains(r.wire, wire) {
				t.Errorf("%s: code %v, IsWireError %v, want %v, one of %v (%v)", r.name, ce.Code(), wire, r.code, r.wire, r.err)
			}
			if errors.Is(r.err, context.DeadlineExceeded) != (r.code == connect.CodeDeadlineExceeded && !wire) {
				t.Errorf("%s: errors.Is(err, context.DeadlineExceeded) = %v", r.name, errors.Is(r.err, context.DeadlineExceeded))
			}
			t.Logf("%-42s %-18v wire=%-5v %v", r.name, ce.Code(), wire, r.err)
		}
	})
}
