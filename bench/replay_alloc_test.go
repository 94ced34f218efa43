//go:build !race

// Allocation ceilings are checked without the race detector only: under -race, sync.Pool
// drops a random share of what is put back (faultline's replay buffers and grpc-go's own
// among it), so counts vary from run to run. .ci/run runs these tests (go test -run Alloc)
// without -race.

package bench_test

import (
	"context"
	"strings"
	"testing"

	testpb "github.com/grpc-ecosystem/go-grpc-middleware/v2/testing/testpb"
	"google.golang.org/grpc"

	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
)

// replayCeiling is, for a client-streaming call that sends k messages and then commits
// (its response arrives), the most allocations faultline may add to a plain client's,
// per call. Measured on go1.26 with grpc-go v1.85 (allocations per call, faultline over a
// plain client): k = 1: 1, k = 10: 5, k = 100: 8. Most of it is the list of kept
// messages, which starts with room for one and grows by doubling (one allocation per
// doubling: 4 for 10 messages, 7 for 100); the encoded bytes go to a pooled buffer and
// cost nothing once it has grown; the retrying stream itself is one. A ceiling is the
// measured figure plus one, so that a change that costs an allocation per message (a
// copy, a decode on the success path, a buffer not pooled) fails at k = 10 already.
var replayCeiling = map[int]float64{1: 2, 10: 6, 100: 9}

// TestReplayAllocs measures what faultline's replay costs a client-streaming call that
// succeeds the first time: PingClientStream of go-grpc-middleware's testpb over bufconn,
// k messages of 64 bytes each, then CloseAndRecv, with and without
// interceptor.DialOptions(), on the same server. Every message sent before the stream
// commits is kept for replay (encoded, in a pooled buffer; decoded only for a replay,
// which does not happen here). The difference between the two is faultline's cost.
func TestReplayAllocs(t *testing.T) {
	srv := faultlinetest.NewServer(func(gs *grpc.Server) { testpb.RegisterTestServiceServer(gs, &testpb.TestPingService{}) })
	defer srv.Close()
	req := &testpb.PingClientStreamRequest{Value: strings.Repeat("v", 64)}
	measure := func(k int, opts ...grpc.DialOption) float64 {
		conn, err := srv.Dial(opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := testpb.NewTestServiceClient(conn)
		ctx := context.Background()
		call := func() {
			st, err := c.PingClientStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for range k {
				if err := st.Send(req); err != nil {
					t.Fatal(err)
				}
			}
			resp, err := st.CloseAndRecv()
			if err != nil {
				t.Fatal(err)
			}
			if resp.GetCounter() != int32(k) {
				t.Fatalf("PingClientStream after %d messages: the server counted %d", k, resp.GetCounter())
			}
		}
		for range 3 {
			call() // warm up the connection, and grpc-go's and faultline's pools
		}
		return testing.AllocsPerRun(200, call)
	}
	for _, k := range []int{1, 10, 100} {
		plain := measure(k)
		ours := measure(k, interceptor.DialOptions()...)
		extra := ours - plain
		t.Logf("k = %3d: allocations per call: plain %.1f, with faultline %.1f: %.1f more, %.2f per message",
			k, plain, ours, extra, extra/float64(k))
		if extra > replayCeiling[k] {
			t.Errorf("k = %d: faultline adds %.1f allocations to a client stream of %d messages, want <= %v",
				k, extra, k, replayCeiling[k])
		}
	}
}
