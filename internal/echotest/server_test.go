package echotest_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/testing/protocmp"

	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/echotest"
	"github.com/faultline-go/faultline/internal/testpb"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	mRead   = testpb.Echo_Read_FullMethodName
	mPut    = testpb.Echo_Put_FullMethodName
	mDo     = testpb.Echo_Do_FullMethodName
	mCreate = testpb.Echo_Create_FullMethodName
)

var stReset = status.New(codes.Unavailable, "connection reset")

// callCtx returns a context that ends after a minute, so that a broken
// call fails the test instead of hanging it.
func callCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func start(t *testing.T) (*echotest.Server, testpb.EchoClient) {
	t.Helper()
	srv := echotest.New()
	conn := faultlinetest.Serve(t, func(gs *grpc.Server) { srv.Register(gs) }, nil)
	return srv, testpb.NewEchoClient(conn)
}

// call calls the full method with req.
func call(ctx context.Context, c testpb.EchoClient, method string, req *testpb.EchoRequest) (*testpb.EchoResponse, error) {
	switch method {
	case mRead:
		return c.Read(ctx, req)
	case mPut:
		return c.Put(ctx, req)
	case mDo:
		return c.Do(ctx, req)
	case mCreate:
		return c.Create(ctx, req)
	}
	panic("unknown method " + method)
}

func TestScripts(t *testing.T) {
	type result struct {
		code    codes.Code
		handled int // Handled(method) after the call
	}
	tests := []struct {
		name   string
		script func(*echotest.Server, string)
		want   []result
	}{
		{"no script", func(*echotest.Server, string) {}, []result{{codes.OK, 1}, {codes.OK, 2}}},
		{"fail before", func(s *echotest.Server, m string) { s.FailNext(m, 2, stReset) },
			[]result{{codes.Unavailable, 0}, {codes.Unavailable, 0}, {codes.OK, 1}}},
		{"fail after", func(s *echotest.Server, m string) { s.FailAfterNext(m, 2, stReset) },
			[]result{{codes.Unavailable, 1}, {codes.Unavailable, 2}, {codes.OK, 3}}},
		{"before, then after", func(s *echotest.Server, m string) {
			s.FailNext(m, 1, status.New(codes.ResourceExhausted, "quota"))
			s.FailAfterNext(m, 1, stReset)
		}, []result{{codes.ResourceExhausted, 0}, {codes.Unavailable, 1}, {codes.OK, 2}}},
		{"n = 0 queues nothing", func(s *echotest.Server, m string) { s.FailNext(m, 0, stReset) },
			[]result{{codes.OK, 1}}},
	}
	for _, method := range []string{mRead, mPut, mDo, mCreate} {
		for _, tt := range tests {
			t.Run(method+"/"+tt.name, func(t *testing.T) {
				srv, c := start(t)
				tt.script(srv, method)
				for i, w := range tt.want {
					res, err := call(callCtx(t), c, method, &testpb.EchoRequest{Text: "hi"})
					if got := status.Code(err); got != w.code {
						t.Errorf("call #%d code = %v (%v), want %v", i+1, got, err, w.code)
					}
					if err == nil && res.GetText() != "hi" {
						t.Errorf("call #%d text = %q, want %q", i+1, res.GetText(), "hi")
					}
					if got := srv.Handled(method); got != w.handled {
						t.Errorf("Handled() after call #%d = %d, want %d", i+1, got, w.handled)
					}
				}
				if got := srv.Calls(method); got != len(tt.want) {
					t.Errorf("Calls() = %d, want %d", got, len(tt.want))
				}
				// Other methods saw nothing.
				for _, other := range []string{mRead, mPut, mDo, mCreate} {
					if n := srv.Calls(other); other != method && n != 0 {
						t.Errorf("Calls(%s) = %d, want 0", other, n)
					}
				}
			})
		}
	}
}

func TestCreateDedup(t *testing.T) {
	srv, c := start(t)
	ctx := callCtx(t)
	srv.FailAfterNext(mCreate, 1, stReset)
	if _, err := c.Create(ctx, &testpb.EchoRequest{Text: "a", RequestId: "req-1"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("Create(req-1) #1 = %v, want Unavailable", err)
	}
	// The retry with the same request_id returns the first result.
	res, err := c.Create(ctx, &testpb.EchoRequest{Text: "changed", RequestId: "req-1"})
	if err != nil || res.GetText() != "a" {
		t.Errorf("Create(req-1) #2 = %v, %v, want text %q, nil", res, err, "a")
	}
	if got := srv.Created(); got != 1 {
		t.Errorf("Created() after two calls with req-1 = %d, want 1", got)
	}
	for range 2 {
		if _, err := c.Create(ctx, &testpb.EchoRequest{Text: "b"}); err != nil {
			t.Fatalf("Create(no request_id) = %v, want nil", err)
		}
	}
	if got := srv.Created(); got != 3 {
		t.Errorf("Created() after two more calls without request_id = %d, want 3", got)
	}
	srv.FailNext(mCreate, 1, stReset)
	if _, err := c.Create(ctx, &testpb.EchoRequest{RequestId: "req-2"}); status.Code(err) != codes.Unavailable {
		t.Fatalf("Create(req-2) failed before = %v, want Unavailable", err)
	}
	if got := srv.Created(); got != 3 {
		t.Errorf("Created() after a call failed before its handler = %d, want 3", got)
	}
	want := []*testpb.EchoRequest{
		{Text: "a", RequestId: "req-1"}, {Text: "changed", RequestId: "req-1"}, {Text: "b"}, {Text: "b"}, {RequestId: "req-2"},
	}
	if diff := cmp.Diff(want, srv.Requests(mCreate), protocmp.Transform()); diff != "" {
		t.Errorf("Requests(Create) mismatch (-want +got):\n%s", diff)
	}
	if got := srv.Requests(mRead); len(got) != 0 {
		t.Errorf("Requests(Read) = %v, want none", got)
	}
}

func TestPanics(t *testing.T) {
	srv := echotest.New()
	tests := []struct {
		name string
		f    func()
	}{
		{"unknown method", func() { srv.FailNext("/faultline.test.v1.Echo/Nope", 1, stReset) }},
		{"short method name", func() { srv.FailAfterNext("Read", 1, stReset) }},
		{"nil status", func() { srv.FailNext(mRead, 1, nil) }},
		{"OK status", func() { srv.FailAfterNext(mRead, 1, status.New(codes.OK, "")) }},
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
