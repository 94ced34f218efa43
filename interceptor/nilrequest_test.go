package interceptor_test

import (
	"context"
	"fmt"
	"testing"
	"testing/synctest"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/retry"
)

// cursorLogs serves StreamLogs for any request, a nil one included: entries "line N" from
// the request's resume_log_offset up to lines, each with the cursor (session "s", N+1).
type cursorLogs struct {
	sandboxpb.UnimplementedSandboxServiceServer
	lines uint64
}

func (c cursorLogs) StreamLogs(req *sandboxpb.StreamLogsRequest, st grpc.ServerStreamingServer[sandboxpb.LogEntry]) error {
	for off := req.GetResumeLogOffset(); off < c.lines; off++ {
		if err := st.Send(&sandboxpb.LogEntry{Data: fmt.Appendf(nil, "line %d\n", off), LogSessionId: "s", NextLogOffset: off + 1}); err != nil {
			return err
		}
	}
	return nil
}

// TestNilRequestGoesOutEmpty (issue 16, instance 1; safety.md 5, "Nil and odd input"): a nil
// request goes out as grpc-go sends it, an empty message: nothing panics, no idempotency key
// is set into it (so a create without one is not repeated after an ambiguous failure), and
// no resumer reads it (a nil StreamLogs request is not resumed; its stream ends with the
// failure).
func TestNilRequestGoesOutEmpty(t *testing.T) {
	unary := []struct {
		name   string
		method string
		fail   bool // the first attempt fails with a bare UNAVAILABLE
		call   func(e *env) error
		code   codes.Code
		stop   retry.StopReason
		calls  int
		empty  proto.Message // what the server must have received on every call
	}{
		{name: "CreateSandbox(nil)", method: createSandbox, code: codes.OK, calls: 1, empty: &sandboxpb.CreateSandboxRequest{},
			call: func(e *env) error { _, err := e.sb.CreateSandbox(context.Background(), nil); return err }},
		{name: "CreateSandbox(nil), ambiguous failure", method: createSandbox, fail: true, code: codes.Unavailable,
			stop: retry.StopUnsafe, calls: 1, empty: &sandboxpb.CreateSandboxRequest{},
			call: func(e *env) error { _, err := e.sb.CreateSandbox(context.Background(), nil); return err }},
		{name: "DeleteSandbox(nil)", method: sandboxpb.SandboxService_DeleteSandbox_FullMethodName, code: codes.NotFound,
			stop: retry.StopNotRetryable, calls: 1, empty: &sandboxpb.DeleteSandboxRequest{},
			call: func(e *env) error { _, err := e.sb.DeleteSandbox(context.Background(), nil); return err }},
		{name: "GetSandbox(nil), ambiguous failure", method: getSandbox, fail: true, code: codes.NotFound,
			stop: retry.StopNotRetryable, calls: 2, empty: &sandboxpb.GetSandboxRequest{},
			call: func(e *env) error { _, err := e.sb.GetSandbox(context.Background(), nil); return err }},
	}
	for _, tc := range unary {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				e := newEnv(t, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))))
				if tc.fail {
					e.srv.FailNext(tc.method, 1, unavailable())
				}
				err := tc.call(e)
				if status.Code(err) != tc.code {
					t.Errorf("%s = %v, want code %v", tc.name, err, tc.code)
				}
				if stop, _ := stopOf(err); stop != tc.stop {
					t.Errorf("%s stop = %v, want %v (err %v)", tc.name, stop, tc.stop, err)
				}
				reqs := e.srv.Requests(tc.method)
				if len(reqs) != tc.calls {
					t.Errorf("%s: server calls = %d, want %d", tc.name, len(reqs), tc.calls)
				}
				for i, r := range reqs {
					if !proto.Equal(r, tc.empty) {
						t.Errorf("%s: attempt %d sent %v, want an empty %T", tc.name, i+1, r, tc.empty)
					}
				}
			})
		})
	}

	streams := []struct {
		name string
		opts []interceptor.Option
	}{
		{name: "StreamLogs(nil), built-in resumer"},
		{name: "StreamLogs(nil), a resumer that reads its request", opts: []interceptor.Option{
			interceptor.WithResumer(streamLogs, func(req, last proto.Message) (proto.Message, bool) {
				next := proto.Clone(req) // panics on a nil request: it must never get one
				next.ProtoReflect().Set(next.ProtoReflect().Descriptor().Fields().ByName("resume_log_offset"),
					last.ProtoReflect().Get(last.ProtoReflect().Descriptor().Fields().ByName("next_log_offset")))
				return next, true
			})}},
	}
	for _, tc := range streams {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var inj faultlinetest.Injector
				inj.Script(streamLogs, faultlinetest.SendThenFail(2, unavailable()))
				opts := append([]interceptor.Option{interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil)))}, tc.opts...)
				conn := faultlinetest.Serve(t, func(s *grpc.Server) { sandboxpb.RegisterSandboxServiceServer(s, cursorLogs{lines: 5}) },
					inj.ServerOptions(), interceptor.DialOptions(opts...)...)
				st, err := sandboxpb.NewSandboxServiceClient(conn).StreamLogs(context.Background(), nil)
				if err != nil {
					t.Fatalf("StreamLogs(nil) = %v", err)
				}
				got, err := recvLogs(st)
				if fmt.Sprint(got) != fmt.Sprint(lines(0, 2)) || status.Code(err) != codes.Unavailable {
					t.Errorf("StreamLogs(nil) delivered %q, %v; want %q then the UNAVAILABLE, not resumed", got, err, lines(0, 2))
				}
				if n := inj.Count(streamLogs); n != 1 {
					t.Errorf("server calls = %d, want 1 (a nil request is never resumed)", n)
				}
			})
		})
	}

	t.Run("client stream of nil messages, replayed", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := &pingServer{failFirst: 1}
			c := newPing(t, p, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil))))...)
			st, err := c.PingClientStream(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				if err := st.Send(nil); err != nil {
					t.Fatalf("Send(nil) = %v", err)
				}
			}
			res, err := st.CloseAndRecv()
			if err != nil || res.GetCounter() != 2 {
				t.Fatalf("CloseAndRecv = %v, %v; want a count of 2 after the retry", res, err)
			}
			if got, _ := p.Received(); fmt.Sprint(got) != "[[ ] [ ]]" {
				t.Errorf("server received %q, want two empty messages on each attempt", got)
			}
		})
	})
}
