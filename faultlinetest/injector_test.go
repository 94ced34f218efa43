package faultlinetest_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/testing/testpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/faultline-go/faultline/faultlinetest"
)

var (
	unavailable = faultlinetest.Status(codes.Unavailable, "backend restarting")
	aborted     = faultlinetest.Status(codes.Aborted, "lost after the work")
)

// clocks runs f on the real clock and inside a synctest bubble, as two subtests, or only
// in the bubble when virtualOnly (for cases that wait seconds).
func clocks(t *testing.T, virtualOnly bool, f func(t *testing.T)) {
	if !virtualOnly {
		t.Run("real clock", f)
	}
	t.Run("synctest", func(t *testing.T) { synctest.Test(t, f) })
}

// TestInjectorUnary checks each kind of step on unary calls: the code of each call, how
// long it took (exact, on the virtual clock), and how often the handler ran.
func TestInjectorUnary(t *testing.T) {
	tests := []struct {
		name        string
		script      func(*faultlinetest.Injector)
		deadline    time.Duration // per call; 0: none
		want        []codes.Code  // one call each
		wantTook    []time.Duration
		wantHandled int
	}{
		{name: "unscripted passes", script: func(*faultlinetest.Injector) {},
			want: []codes.Code{codes.OK, codes.OK}, wantHandled: 2},
		{name: "fail next two", script: func(in *faultlinetest.Injector) { in.FailNext(ping, 2, unavailable) },
			want: []codes.Code{codes.Unavailable, codes.Unavailable, codes.OK}, wantHandled: 1},
		{name: "fail next zero and negative", script: func(in *faultlinetest.Injector) {
			in.FailNext(ping, 0, unavailable)
			in.FailNext(ping, -3, unavailable)
		}, want: []codes.Code{codes.OK}, wantHandled: 1},
		{name: "script fail, fail, pass", script: func(in *faultlinetest.Injector) {
			in.Script(ping, faultlinetest.Fail(unavailable), faultlinetest.Fail(aborted), faultlinetest.Pass())
		}, want: []codes.Code{codes.Unavailable, codes.Aborted, codes.OK, codes.OK}, wantHandled: 2},
		{name: "scripts add up", script: func(in *faultlinetest.Injector) {
			in.Script(ping, faultlinetest.Pass())
			in.Script(ping, faultlinetest.Fail(aborted))
		}, want: []codes.Code{codes.OK, codes.Aborted, codes.OK}, wantHandled: 2},
		{name: "send then fail runs the handler", script: func(in *faultlinetest.Injector) {
			in.Script(ping, faultlinetest.SendThenFail(1, aborted))
		}, want: []codes.Code{codes.Aborted, codes.OK}, wantHandled: 2},
		{name: "always after the queue", script: func(in *faultlinetest.Injector) {
			in.Always(ping, faultlinetest.Fail(unavailable))
			in.Script(ping, faultlinetest.Pass())
		}, want: []codes.Code{codes.OK, codes.Unavailable, codes.Unavailable}, wantHandled: 1},
		{name: "always pass turns it off", script: func(in *faultlinetest.Injector) {
			in.Always(ping, faultlinetest.Fail(unavailable))
			in.Always(ping, faultlinetest.Pass())
		}, want: []codes.Code{codes.OK}, wantHandled: 1},
		{name: "other methods untouched", script: func(in *faultlinetest.Injector) {
			in.FailNext(pingList, 5, unavailable)
			in.FailNext("/testing.testpb.v1.TestService/Ping/", 5, unavailable)
			in.FailNext("Ping", 5, unavailable)
		}, want: []codes.Code{codes.OK}, wantHandled: 1},
		{name: "pass after a delay", script: func(in *faultlinetest.Injector) {
			in.Script(ping, faultlinetest.Pass().After(3*time.Second))
		}, want: []codes.Code{codes.OK, codes.OK}, wantTook: []time.Duration{3 * time.Second, 0}, wantHandled: 2},
		{name: "fail after a delay", script: func(in *faultlinetest.Injector) {
			in.Script(ping, faultlinetest.Fail(unavailable).After(2*time.Second).After(time.Second))
		}, want: []codes.Code{codes.Unavailable}, wantTook: []time.Duration{time.Second}, wantHandled: 0},
		{name: "negative delay", script: func(in *faultlinetest.Injector) {
			in.Script(ping, faultlinetest.Pass().After(-time.Second))
		}, want: []codes.Code{codes.OK}, wantTook: []time.Duration{0}, wantHandled: 1},
		{name: "slow server", script: func(in *faultlinetest.Injector) {
			in.Always(ping, faultlinetest.Pass().After(500*time.Millisecond))
		}, want: []codes.Code{codes.OK, codes.OK}, wantTook: []time.Duration{500 * time.Millisecond, 500 * time.Millisecond}, wantHandled: 2},
		{name: "delay past the deadline", deadline: time.Second, script: func(in *faultlinetest.Injector) {
			in.Script(ping, faultlinetest.Pass().After(10*time.Second))
		}, want: []codes.Code{codes.DeadlineExceeded, codes.OK}, wantTook: []time.Duration{time.Second, 0}, wantHandled: 1},
		{name: "stall until the deadline", deadline: 5 * time.Second, script: func(in *faultlinetest.Injector) {
			in.Script(ping, faultlinetest.Stall())
		}, want: []codes.Code{codes.DeadlineExceeded, codes.OK}, wantTook: []time.Duration{5 * time.Second, 0}, wantHandled: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clocks(t, tc.wantTook != nil, func(t *testing.T) {
				var inj faultlinetest.Injector
				p := &pingServer{}
				client := servePing(t, p, &inj)
				tc.script(&inj)
				var got []codes.Code
				var took []time.Duration
				for range tc.want {
					ctx, cancel := context.Background(), context.CancelFunc(func() {})
					if tc.deadline > 0 {
						ctx, cancel = context.WithTimeout(ctx, tc.deadline)
					}
					start := time.Now()
					_, err := client.Ping(ctx, &testpb.PingRequest{Value: "v"})
					took = append(took, time.Since(start))
					cancel()
					got = append(got, status.Code(err))
				}
				if !slices.Equal(got, tc.want) {
					t.Errorf("Ping codes = %v, want %v", got, tc.want)
				}
				if tc.wantTook != nil && !slices.Equal(took, tc.wantTook) {
					t.Errorf("Ping took %v, want %v", took, tc.wantTook)
				}
				if n := p.Handled(ping); n != tc.wantHandled {
					t.Errorf("handler ran %d times, want %d", n, tc.wantHandled)
				}
				if n := inj.Count(ping); n != len(tc.want) {
					t.Errorf("Count(Ping) = %d, want %d", n, len(tc.want))
				}
			})
		})
	}
}

// TestInjectorFailNeedsError checks that a step given no error still fails, visibly.
func TestInjectorFailNeedsError(t *testing.T) {
	for _, step := range []struct {
		name string
		step faultlinetest.Step
	}{
		{"Fail(nil)", faultlinetest.Fail(nil)},
		{"Fail(OK)", faultlinetest.Fail(status.New(codes.OK, "fine"))},
		{"SendThenFail(0, nil)", faultlinetest.SendThenFail(0, nil)},
	} {
		t.Run(step.name, func(t *testing.T) {
			var inj faultlinetest.Injector
			client := servePing(t, &pingServer{}, &inj)
			inj.Script(ping, step.step)
			_, err := client.Ping(context.Background(), &testpb.PingRequest{})
			st := status.Convert(err)
			if st.Code() != codes.Unknown || st.Message() != "faultlinetest: Fail needs a non-OK status" {
				t.Errorf("Ping after %s = %v, %q, want Unknown, %q", step.name, st.Code(), st.Message(),
					"faultlinetest: Fail needs a non-OK status")
			}
		})
	}
}

// TestInjectorSendsDetails checks that a scripted status reaches the client whole: code,
// message and every detail, including details repaired from invalid UTF-8 and raw Any
// details.
func TestInjectorSendsDetails(t *testing.T) {
	sts := []*status.Status{
		faultlinetest.Status(codes.Unavailable, "runner unavailable",
			faultlinetest.ErrorInfo("cwsandbox.com", "CWSANDBOX_RUNNER_UNAVAILABLE", map[string]string{"runner": "r-1"}),
			faultlinetest.RetryInfo(2*time.Second)),
		faultlinetest.Status(codes.InvalidArgument, "invalid sandbox",
			faultlinetest.BadRequest(faultlinetest.FieldViolation("a", "b"), faultlinetest.FieldViolation("c", "d")),
			faultlinetest.QuotaFailure(faultlinetest.QuotaViolation("s", "d")),
			faultlinetest.PreconditionFailure(faultlinetest.PreconditionViolation("TOS", "s", "d")),
			faultlinetest.ResourceInfo("sandbox", "sb-1", "", "gone"),
			faultlinetest.LocalizedMessage("en-US", "Invalid sandbox")),
		faultlinetest.Status(codes.Internal, "bad \xff bytes", faultlinetest.ErrorInfo("d\xff", "R\xfe", map[string]string{"k\xff": "v\xff"})),
	}
	for i, want := range sts {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			var inj faultlinetest.Injector
			client := servePing(t, &pingServer{}, &inj)
			inj.FailNext(ping, 1, want)
			_, err := client.Ping(context.Background(), &testpb.PingRequest{})
			if diff := cmp.Diff(want.Proto(), status.Convert(err).Proto(), protocmp.Transform()); diff != "" {
				t.Errorf("Ping error status differs from the scripted one (-want +got):\n%s", diff)
			}
		})
	}
}

// TestInjectorServerStream checks the steps on a server stream of five messages: what the
// client receives, how the stream ends, and whether the handler ran. A waiting handler
// sends its messages, then waits for its context, as grpc's health Watch does.
func TestInjectorServerStream(t *testing.T) {
	all := []int32{0, 1, 2, 3, 4}
	tests := []struct {
		name        string
		wait        bool
		step        faultlinetest.Step
		deadline    time.Duration
		want        []int32
		wantCode    codes.Code
		wantHandled int
	}{
		{name: "pass", step: faultlinetest.Pass(), want: all, wantCode: codes.OK, wantHandled: 1},
		{name: "fail", step: faultlinetest.Fail(unavailable), wantCode: codes.Unavailable},
		{name: "send 0 then fail", step: faultlinetest.SendThenFail(0, aborted), wantCode: codes.Aborted, wantHandled: 1},
		{name: "send -1 then fail", step: faultlinetest.SendThenFail(-1, aborted), wantCode: codes.Aborted, wantHandled: 1},
		{name: "send 2 then fail", step: faultlinetest.SendThenFail(2, aborted), want: all[:2], wantCode: codes.Aborted, wantHandled: 1},
		{name: "send 5 then fail", step: faultlinetest.SendThenFail(5, aborted), want: all, wantCode: codes.Aborted, wantHandled: 1},
		{name: "send 9 then fail", step: faultlinetest.SendThenFail(9, aborted), want: all, wantCode: codes.Aborted, wantHandled: 1},
		{name: "waiting handler, send 0 then fail", wait: true, step: faultlinetest.SendThenFail(0, aborted), wantCode: codes.Aborted, wantHandled: 1},
		{name: "waiting handler, send 2 then fail", wait: true, step: faultlinetest.SendThenFail(2, aborted), want: all[:2], wantCode: codes.Aborted, wantHandled: 1},
		{name: "waiting handler, send 5 then fail", wait: true, step: faultlinetest.SendThenFail(5, aborted), want: all, wantCode: codes.Aborted, wantHandled: 1},
		{name: "waiting handler, deadline", wait: true, deadline: time.Second, step: faultlinetest.Pass(), want: all, wantCode: codes.DeadlineExceeded, wantHandled: 1},
		{name: "stall", deadline: time.Second, step: faultlinetest.Stall(), wantCode: codes.DeadlineExceeded},
		{name: "fail after a delay", step: faultlinetest.Fail(unavailable).After(time.Second), wantCode: codes.Unavailable},
		{name: "delay past the deadline", deadline: time.Second, step: faultlinetest.Pass().After(time.Minute), wantCode: codes.DeadlineExceeded},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clocks(t, tc.deadline > 0 || tc.name == "fail after a delay", func(t *testing.T) {
				var inj faultlinetest.Injector
				p := &pingServer{listLen: 5, wait: tc.wait}
				client := servePing(t, p, &inj)
				inj.Script(pingList, tc.step)
				ctx := context.Background()
				if tc.deadline > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, tc.deadline)
					defer cancel()
				}
				stream, err := client.PingList(ctx, &testpb.PingListRequest{Value: "v"})
				if err != nil {
					t.Fatalf("PingList() error = %v", err)
				}
				got, err := recvList(stream)
				if !slices.Equal(got, tc.want) || status.Code(err) != tc.wantCode {
					t.Errorf("PingList received %v, %v; want %v, %v", got, err, tc.want, tc.wantCode)
				}
				if n := p.Handled(pingList); n != tc.wantHandled {
					t.Errorf("handler ran %d times, want %d", n, tc.wantHandled)
				}
			})
		})
	}
}

// TestInjectorBidiStream checks SendThenFail on a bidirectional echo stream: the client
// gets the first n echoes and the status; the server still received what the client sent
// until the handler stopped.
func TestInjectorBidiStream(t *testing.T) {
	tests := []struct {
		step         faultlinetest.Step
		wantEchoes   int
		wantCode     codes.Code
		wantRequests int
	}{
		{faultlinetest.Pass(), 5, codes.OK, 5},
		{faultlinetest.Fail(unavailable), 0, codes.Unavailable, 0},
		{faultlinetest.SendThenFail(2, aborted), 2, codes.Aborted, 3},
		{faultlinetest.SendThenFail(0, aborted), 0, codes.Aborted, 1},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			clocks(t, false, func(t *testing.T) {
				var inj faultlinetest.Injector
				client := servePing(t, &pingServer{}, &inj)
				inj.Script(pingStream, tc.step)
				stream, err := client.PingStream(context.Background())
				if err != nil {
					t.Fatalf("PingStream() error = %v", err)
				}
				for i := range 5 {
					if err := stream.Send(&testpb.PingStreamRequest{Value: fmt.Sprint(i)}); err != nil {
						break // io.EOF: the stream ended; Recv says how
					}
				}
				_ = stream.CloseSend()
				echoes := 0
				for {
					_, err = stream.Recv()
					if err != nil {
						break
					}
					echoes++
				}
				if errors.Is(err, io.EOF) {
					err = nil
				}
				if echoes != tc.wantEchoes || status.Code(err) != tc.wantCode {
					t.Errorf("PingStream got %d echoes, %v; want %d, %v", echoes, err, tc.wantEchoes, tc.wantCode)
				}
				calls := inj.Calls(pingStream)
				if len(calls) != 1 || len(calls[0].Requests) != tc.wantRequests {
					t.Fatalf("Calls(PingStream) = %v, want 1 call with %d requests", calls, tc.wantRequests)
				}
				for i, m := range calls[0].Requests {
					if v := m.(*testpb.PingStreamRequest).GetValue(); v != fmt.Sprint(i) {
						t.Errorf("request %d = %q, want %q", i, v, fmt.Sprint(i))
					}
				}
			})
		})
	}
}

// TestInjectorClientStream checks a client stream: SendThenFail(0) lets the handler read
// everything and drops its response.
func TestInjectorClientStream(t *testing.T) {
	tests := []struct {
		step         faultlinetest.Step
		wantCode     codes.Code
		wantRequests int
		wantHandled  int
	}{
		{faultlinetest.Pass(), codes.OK, 4, 1},
		{faultlinetest.Fail(unavailable), codes.Unavailable, 0, 0},
		{faultlinetest.SendThenFail(0, aborted), codes.Aborted, 4, 1},
	}
	for i, tc := range tests {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			clocks(t, false, func(t *testing.T) {
				var inj faultlinetest.Injector
				p := &pingServer{}
				client := servePing(t, p, &inj)
				inj.Script(pingClientStream, tc.step)
				stream, err := client.PingClientStream(context.Background())
				if err != nil {
					t.Fatalf("PingClientStream() error = %v", err)
				}
				for range 4 {
					if err := stream.Send(&testpb.PingClientStreamRequest{Value: "v"}); err != nil {
						break
					}
				}
				res, err := stream.CloseAndRecv()
				if status.Code(err) != tc.wantCode || (err == nil && res.GetCounter() != 4) {
					t.Errorf("PingClientStream = %v, %v; want counter 4 or code %v", res, err, tc.wantCode)
				}
				if n := len(inj.Calls(pingClientStream)[0].Requests); n != tc.wantRequests {
					t.Errorf("recorded %d requests, want %d", n, tc.wantRequests)
				}
				if n := p.Handled(pingClientStream); n != tc.wantHandled {
					t.Errorf("handler ran %d times, want %d", n, tc.wantHandled)
				}
			})
		})
	}
}

// TestInjectorRecords checks what Calls records (method, time, metadata, request clones),
// that it returns copies, that it records methods it was told nothing about, and Reset.
func TestInjectorRecords(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var inj faultlinetest.Injector
		client := servePing(t, &pingServer{listLen: 1}, &inj)
		inj.FailNext(ping, 1, unavailable)
		start := time.Now()
		for i, v := range []string{"a", "b"} {
			ctx := metadata.AppendToOutgoingContext(context.Background(), "x-attempt", fmt.Sprint(i))
			_, _ = client.Ping(ctx, &testpb.PingRequest{Value: v})
			time.Sleep(time.Second)
		}
		stream, err := client.PingList(context.Background(), &testpb.PingListRequest{Value: "list"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := recvList(stream); err != nil {
			t.Fatal(err)
		}

		calls := inj.Calls(ping)
		if len(calls) != 2 {
			t.Fatalf("Calls(Ping) = %d calls, want 2", len(calls))
		}
		for i, c := range calls {
			want := []proto.Message{&testpb.PingRequest{Value: []string{"a", "b"}[i]}}
			if diff := cmp.Diff(want, c.Requests, protocmp.Transform()); diff != "" {
				t.Errorf("call %d requests differ (-want +got):\n%s", i, diff)
			}
			if got := c.Metadata.Get("x-attempt"); !slices.Equal(got, []string{fmt.Sprint(i)}) {
				t.Errorf("call %d metadata x-attempt = %q, want [%d]", i, got, i)
			}
			if c.Method != ping || !c.Time.Equal(start.Add(time.Duration(i)*time.Second)) {
				t.Errorf("call %d = %s at %v, want %s at start+%ds", i, c.Method, c.Time.Sub(start), ping, i)
			}
		}
		// A stream's request is recorded as the handler reads it: PingList's one request.
		if list := inj.Calls(pingList); len(list) != 1 || len(list[0].Requests) != 1 {
			t.Errorf("Calls(PingList) = %v, want one call with one request", list)
		}

		// Calls returns copies.
		calls[0].Requests[0].(*testpb.PingRequest).Value = "changed"
		calls[0].Metadata.Set("x-attempt", "changed")
		again := inj.Calls(ping)
		if v := again[0].Requests[0].(*testpb.PingRequest).GetValue(); v != "a" {
			t.Errorf("after changing a returned request, Calls(Ping)[0] value = %q, want %q", v, "a")
		}
		if v := again[0].Metadata.Get("x-attempt"); !slices.Equal(v, []string{"0"}) {
			t.Errorf("after changing returned metadata, Calls(Ping)[0] x-attempt = %q, want [0]", v)
		}

		inj.Script(ping, faultlinetest.Fail(unavailable))
		inj.Always(ping, faultlinetest.Fail(unavailable))
		inj.Reset()
		if n := inj.Count(ping); n != 0 {
			t.Errorf("Count(Ping) after Reset = %d, want 0", n)
		}
		if _, err := client.Ping(context.Background(), &testpb.PingRequest{}); err != nil {
			t.Errorf("Ping after Reset = %v, want success", err)
		}
		if n, c := inj.Count(ping), inj.Calls("/no.Such/Method"); n != 1 || len(c) != 0 {
			t.Errorf("Count(Ping), Calls(unknown) = %d, %v; want 1, none", n, c)
		}
	})
}

// TestInjectorConcurrent checks that concurrent calls take each queued step exactly once
// while the script and the records are used from other goroutines (run with -race).
func TestInjectorConcurrent(t *testing.T) {
	clocks(t, false, func(t *testing.T) {
		var inj faultlinetest.Injector
		p := &pingServer{}
		client := servePing(t, p, &inj)
		const calls, failures = 40, 13
		inj.FailNext(ping, failures, unavailable)
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			failed int
		)
		for range calls {
			wg.Go(func() {
				_, err := client.Ping(context.Background(), &testpb.PingRequest{Value: "v"})
				if err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			})
		}
		for range 10 {
			wg.Go(func() {
				_ = inj.Calls(ping)
				_ = inj.Count(ping)
				inj.Script(pingList, faultlinetest.Pass())
				inj.Always(pingStream, faultlinetest.Pass())
			})
		}
		wg.Wait()
		if failed != failures || inj.Count(ping) != calls || p.Handled(ping) != calls-failures {
			t.Errorf("%d calls: %d failed, Count %d, handled %d; want %d, %d, %d",
				calls, failed, inj.Count(ping), p.Handled(ping), failures, calls, calls-failures)
		}
	})
}
