package interceptor_test

import (
	"context"
	"testing"

	grpcretry "github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/retry"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/retry"
)

// okInv is okInvoker called through a function value, as grpc-go calls an invoker, so
// that the baseline is not inlined away.
var okInv grpc.UnaryInvoker = okInvoker

// peers are the unary interceptors compared: none, ours with default options, and
// go-grpc-middleware's retry configured like ours (5 attempts, UNAVAILABLE and
// RESOURCE_EXHAUSTED).
func peers() []struct {
	name string
	u    grpc.UnaryClientInterceptor
} {
	return []struct {
		name string
		u    grpc.UnaryClientInterceptor
	}{
		{"none", nil},
		{"faultline", interceptor.Unary()},
		{"middleware", grpcretry.UnaryClientInterceptor(grpcretry.WithMax(5), grpcretry.WithCodes(codes.Unavailable, codes.ResourceExhausted))},
	}
}

// BenchmarkUnaryFake: the cost of a successful call in each interceptor, against an invoker
// that does nothing. faultline-nobudget isolates the budget's deposit.
func BenchmarkUnaryFake(b *testing.B) {
	all := append(peers(), struct {
		name string
		u    grpc.UnaryClientInterceptor
	}{"faultline-nobudget", interceptor.Unary(interceptor.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithBudget(nil))))})
	for _, p := range all {
		b.Run(p.name, func(b *testing.B) {
			ctx := context.Background()
			req, reply := &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}, &sandboxpb.Sandbox{}
			b.ReportAllocs()
			if p.u == nil {
				for b.Loop() {
					_ = okInv(ctx, getSandbox, req, reply, nil)
				}
				return
			}
			for b.Loop() {
				_ = p.u(ctx, getSandbox, req, reply, nil, okInv)
			}
		})
	}
}

// BenchmarkUnaryBufconn: a successful GetSandbox through each interceptor, over bufconn to
// the sandboxtest server.
func BenchmarkUnaryBufconn(b *testing.B) {
	for _, p := range peers() {
		b.Run(p.name, func(b *testing.B) {
			var opts []grpc.DialOption
			if p.u != nil {
				opts = append(opts, grpc.WithChainUnaryInterceptor(p.u))
			}
			e := newEnv(b, opts)
			ctx := context.Background()
			req := &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.sb.GetSandbox(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStreamBufconn: a StreamLogs of three entries through no interceptor and through
// ours (go-grpc-middleware's retry does not retry server streams after they start).
func BenchmarkStreamBufconn(b *testing.B) {
	for _, p := range []struct {
		name string
		s    grpc.StreamClientInterceptor
	}{{"none", nil}, {"faultline", interceptor.Stream()}} {
		b.Run(p.name, func(b *testing.B) {
			var opts []grpc.DialOption
			if p.s != nil {
				opts = append(opts, grpc.WithChainStreamInterceptor(p.s))
			}
			e := newEnv(b, opts)
			ctx := context.Background()
			req := &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"}
			b.ReportAllocs()
			for b.Loop() {
				st, err := e.sb.StreamLogs(ctx, req)
				if err != nil {
					b.Fatal(err)
				}
				if got, err := recvLogs(st); err != nil || len(got) != 3 {
					b.Fatal(got, err)
				}
			}
		})
	}
}
