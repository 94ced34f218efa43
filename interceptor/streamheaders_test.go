package interceptor_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/retry"
)

// TestStreamNotRetriedAfterHeaders: a method of unknown idempotency is retried only if the
// response headers had not arrived (gRFC A6 commits a call there; grpc-go's shouldRetry
// refuses any attempt that was not trailers-only): a server stream whose attempt got
// response headers and then failed before a message is not repeated, whether or not the
// caller asked for the headers, as a unary call is not.
func TestStreamNotRetriedAfterHeaders(t *testing.T) {
	p := retry.DefaultPolicy()
	p.InitialBackoff, p.MaxBackoff = time.Millisecond, time.Millisecond
	s, err := interceptor.New(interceptor.WithRetrier(retry.MustNew(p, retry.WithBudget(nil))))
	if err != nil {
		t.Fatal(err)
	}
	opened := 0
	streamer := func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
		opened++
		return &scriptStream{
			header: func() (metadata.MD, error) { return metadata.MD{"server": {"committed"}}, nil },
			recv:   func() error { return status.Error(codes.Unavailable, "reset after headers") },
		}, nil
	}
	cs, err := s.Stream()(context.Background(), &grpc.StreamDesc{ServerStreams: true}, nil, "/x.S/M", streamer)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg(&emptypb.Empty{}); err != nil {
		t.Fatal(err)
	}
	_ = cs.CloseSend()
	err = cs.RecvMsg(new(emptypb.Empty))
	if opened > 1 {
		t.Errorf("RecvMsg = %v after %d attempts, each of which had response headers; the unary path stops such a call of unknown idempotency (StopUnsafe)", err, opened)
	}
}
