package interceptor_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/testing/testpb"

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

// answerThenFail serves PingStream: its first attempt sends response headers (the handler
// ran, on the stream's opening alone) and fails with a bare UNAVAILABLE; later attempts end
// cleanly.
type answerThenFail struct {
	testpb.UnimplementedTestServiceServer
	attempts atomic.Int32
}

func (s *answerThenFail) PingStream(st testpb.TestService_PingStreamServer) error {
	if s.attempts.Add(1) == 1 {
		_ = st.SendHeader(metadata.Pairs("served-by", "first"))
		return status.Error(codes.Unavailable, "gone after answering")
	}
	return nil
}

// TestStreamAnsweredIsSent (safety.md 1): a stream whose server answered with response
// headers reached a transport, even if the caller had sent no message yet: it is not "not
// sent", so a method that must not be repeated is not, and one of unknown idempotency is
// committed by the headers (gRFC A6), whether or not the caller asked for them.
func TestStreamAnsweredIsSent(t *testing.T) {
	for _, level := range []retry.Idempotency{retry.IdempotencyUnknown, retry.NotIdempotent, retry.NeverRetry} {
		for _, askHeader := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/Header %v", level, askHeader), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					srv := &answerThenFail{}
					c := newPing(t, srv, interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil))),
						interceptor.WithIdempotency(testpb.TestService_PingStream_FullMethodName, level))...)
					st, err := c.PingStream(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					synctest.Wait() // the server has answered and failed the first attempt
					if askHeader {
						_, _ = st.Header()
					}
					_, err = st.Recv()
					if n := srv.attempts.Load(); n != 1 || status.Code(err) != codes.Unavailable {
						t.Errorf("Recv = %v after %d server attempts, want the UNAVAILABLE after 1", err, n)
					}
				})
			})
		}
	}
}
