package interceptor_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

// flakyServer fails GetSandbox of "sb-down" always, and of "sb-flaky" on its first two
// attempts (told apart by the attempt header), with UNAVAILABLE.
func flakyServer(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if r, ok := req.(*sandboxpb.GetSandboxRequest); ok {
		md, _ := metadata.FromIncomingContext(ctx)
		switch r.GetSandboxId() {
		case "sb-down":
			return nil, status.Error(codes.Unavailable, "down")
		case "sb-flaky":
			if a := md.Get(attemptHeader); len(a) == 0 || a[0] != "2" {
				return nil, status.Error(codes.Unavailable, "flaky")
			}
		}
	}
	return handler(ctx, req)
}

// TestConcurrentCalls: 100 goroutines make 100 calls each through one interceptor, a mix
// of calls that succeed, fail for good, recover on the third attempt and never recover,
// with per-call policies (more distinct ones than the interceptor caches), WithoutRetry
// and WithCall. Every call gets exactly its outcome and attempt count; run with -race.
func TestConcurrentCalls(t *testing.T) {
	const goroutines, calls = 100, 100
	var retries atomic.Int64
	hooks := retry.Hooks{OnRetry: func(context.Context, retry.RetryEvent) { retries.Add(1) }}
	p := attempts(millisecondPolicy(), 3)
	e := serve(t, sandboxtest.New(sandboxtest.WithSandboxes("sb-1", "sb-ok", "sb-flaky", "sb-down")),
		interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(p, retry.WithBudget(nil), retry.WithHooks(hooks)))),
		grpc.ChainUnaryInterceptor(flakyServer))
	// 80 distinct per-call policies of 3 attempts: more than the interceptor keeps.
	policies := make([]grpc.CallOption, 80)
	for i := range policies {
		q := p
		q.MaxBackoff += time.Duration(i) * time.Microsecond
		policies[i] = interceptor.WithCallPolicy(q)
	}
	type want struct {
		code     codes.Code
		attempts int
	}
	var wantCalls, wantRetries atomic.Int64
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for c := range calls {
				id, opts, w := "sb-ok", []grpc.CallOption(nil), want{codes.OK, 1}
				switch (g + c) % 6 {
				case 1:
					opts = []grpc.CallOption{policies[(g*calls+c)%len(policies)], interceptor.WithResource(errs.Resource{FilePath: "/x"})}
				case 2:
					id, w = "sb-missing", want{codes.NotFound, 1}
				case 3:
					id, opts, w = "sb-flaky", []grpc.CallOption{policies[(g*calls+c)%len(policies)]}, want{codes.OK, 3}
				case 4:
					id, w = "sb-down", want{codes.Unavailable, 3}
				case 5:
					id, opts, w = "sb-down", []grpc.CallOption{interceptor.WithoutRetry()}, want{codes.Unavailable, 1}
				}
				wantCalls.Add(int64(w.attempts))
				wantRetries.Add(int64(w.attempts - 1))
				_, err := e.sb.GetSandbox(context.Background(), &sandboxpb.GetSandboxRequest{SandboxId: id}, opts...)
				if got := status.Code(err); got != w.code {
					t.Errorf("GetSandbox(%s) = %v, want code %v", id, err, w.code)
					return
				}
				if err == nil {
					continue
				}
				var ee *errs.Error
				if !errors.As(err, &ee) || ee.Resource().SandboxID != id {
					t.Errorf("GetSandbox(%s) error = %v, want an *errs.Error about %s", id, err, id)
				}
				var re *retry.Error
				if errors.As(err, &re) != (len(opts) == 0) || re != nil && re.Attempts() != w.attempts {
					t.Errorf("GetSandbox(%s, %d options) error = %v (%T), want %d attempts", id, len(opts), err, err, w.attempts)
				}
			}
		})
	}
	wg.Wait()
	if got, want := int64(e.srv.Calls(getSandbox)), wantCalls.Load(); got != want {
		t.Errorf("server calls = %d, want %d", got, want)
	}
	if got, want := retries.Load(), wantRetries.Load(); got != want {
		t.Errorf("OnRetry calls = %d, want %d", got, want)
	}
}
