package interceptor_test

import (
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/testing/testpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/retry"
)

// summingServer: PingStream's first attempt fails with UNAVAILABLE after 1 s without
// reading anything; later attempts read every message until the client closes its side,
// then send one response with the count.
type summingServer struct {
	testpb.UnimplementedTestServiceServer
	attempts atomic.Int32
}

func (s *summingServer) PingStream(st testpb.TestService_PingStreamServer) error {
	if s.attempts.Add(1) == 1 {
		return status.Error(codes.Unavailable, "restarting")
	}
	n := int32(0)
	for {
		_, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return st.Send(&testpb.PingStreamResponse{Value: "done", Counter: n})
		}
		if err != nil {
			return err
		}
		n++
	}
}

// TestBidiSendRecvNoDeadlock: a bidi stream used the ordinary way (one goroutine sends,
// another receives) whose first attempt fails before commit while the sender is busy goes
// on: a SendMsg that finds its attempt ended waits for a receiver on that attempt only, not
// for one the retry already moved to the next attempt (whose server waits for the sender's
// remaining messages). Which goroutine takes the stream's lock first is a race, so the test
// makes 100 runs, in virtual time; before the fix 10-50% of them hung until the deadline.
func TestBidiSendRecvNoDeadlock(t *testing.T) {
	const msgs, runs = 200, 100
	hung := 0
	for i := 0; i < runs; i++ {
		synctest.Test(t, func(t *testing.T) {
			srv := &summingServer{}
			conn := faultlinetest.Serve(t, func(s *grpc.Server) { testpb.RegisterTestServiceServer(s, srv) }, nil,
				interceptor.DialOptions(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil))))...)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			st, err := testpb.NewTestServiceClient(conn).PingStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			recvd := make(chan error, 1)
			go func() { // the receiver
				m, err := st.Recv()
				if err == nil && m.GetCounter() != msgs {
					err = errors.New("wrong count")
				}
				recvd <- err
			}()
			start := time.Now()
			for j := 0; j < msgs; j++ { // the sender, busy while the first attempt fails
				if err := st.Send(&testpb.PingStreamRequest{Value: "m"}); err != nil {
					break
				}
			}
			_ = st.CloseSend()
			err = <-recvd
			if took := time.Since(start); took > 30*time.Second {
				hung++
				t.Logf("run %d: stream ended after %v (virtual) with %v; server attempts %d", i, took, err, srv.attempts.Load())
			}
		})
	}
	if hung > 0 {
		t.Errorf("%d of %d runs hung until the deadline on a healthy server", hung, runs)
	}
}
