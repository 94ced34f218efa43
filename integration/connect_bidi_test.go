package integration_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"connectrpc.com/connect"
	"github.com/faultline-go/faultline/internal/testpb"

	"github.com/faultline-go/faultline/connectfaultline"
	"github.com/faultline-go/faultline/retry"
)

// pingStreamProcedure is a bidi procedure of the test: it sums what the client sends.
const pingStreamProcedure = "/faultline.test.v1.Bidi/Sum"

// TestConnectBidiSendRecvNoDeadlock: a connect-go bidi stream whose first attempt fails at
// once, used by a sender and a receiver on two goroutines, goes on: the sender that learns
// of the failure from Send waits for a receiver on that attempt only, not for one already
// on the retry (whose server waits for the sender's messages). gRPC and Connect protocols
// over HTTP/2 (connect-go needs HTTP/2 for bidi), 100 runs each in virtual time; before the
// fix 22-34% of them hung until the deadline.
func TestConnectBidiSendRecvNoDeadlock(t *testing.T) {
	const msgs, runs = 200, 100
	for _, proto := range []struct {
		name string
		opt  connect.ClientOption
	}{{"grpc", connect.WithGRPC()}, {"connect", connect.WithClientOptions()}} {
		t.Run(proto.name, func(t *testing.T) {
			hung := 0
			for i := 0; i < runs; i++ {
				synctest.Test(t, func(t *testing.T) {
					var attempts atomic.Int32
					mux := http.NewServeMux()
					mux.Handle(pingStreamProcedure, connect.NewBidiStreamHandler(pingStreamProcedure,
						func(ctx context.Context, st *connect.BidiStream[testpb.EchoRequest, testpb.EchoResponse]) error {
							if attempts.Add(1) == 1 {
								return connect.NewError(connect.CodeUnavailable, errors.New("restarting"))
							}
							n := int32(0)
							for {
								_, err := st.Receive()
								if errors.Is(err, io.EOF) {
									return st.Send(&testpb.EchoResponse{Text: strconv.Itoa(int(n))})
								}
								if err != nil {
									return err
								}
								n++
							}
						}))
					hc := serveMemory(t, mux, true)
					ic, err := connectfaultline.New(connectfaultline.WithRetrier(retry.MustNew(secondPolicy(), retry.WithBudget(nil))),
						connectfaultline.WithIdempotency(pingStreamProcedure, retry.Idempotent))
					if err != nil {
						t.Fatal(err)
					}
					client := connect.NewClient[testpb.EchoRequest, testpb.EchoResponse](hc, "http://memory"+pingStreamProcedure,
						proto.opt, connect.WithInterceptors(ic))
					ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
					defer cancel()
					st := client.CallBidiStream(ctx)
					recvd := make(chan error, 1)
					go func() {
						m, err := st.Receive()
						if err == nil && m.GetText() != strconv.Itoa(msgs) {
							err = errors.New("wrong count")
						}
						recvd <- err
					}()
					start := time.Now()
					for j := 0; j < msgs; j++ {
						if err := st.Send(&testpb.EchoRequest{Text: "m"}); err != nil {
							break
						}
					}
					_ = st.CloseRequest()
					err = <-recvd
					_ = st.CloseResponse()
					if took := time.Since(start); took > 30*time.Second {
						hung++
						t.Logf("run %d: ended after %v (virtual): %v; server attempts %d", i, took, err, attempts.Load())
					}
				})
			}
			if hung > 0 {
				t.Errorf("%d of %d runs hung until the deadline on a healthy server", hung, runs)
			}
		})
	}
}
