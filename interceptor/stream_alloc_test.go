//go:build !race

// Without -race only: see alloc_test.go.

package interceptor_test

import (
	"context"
	"io"
	"testing"

	"google.golang.org/grpc"

	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
)

// maxStreamExtraAllocs is what a server stream that succeeds the first time may cost on top
// of a plain client (measured: 6): the retrying wrapper (1) and the attempt's own cancellable
// context, so that an abandoned attempt can be cancelled (the context and its cancel func,
// and grpc-go's registration of its own stream context under it: the other 5). The
// request is kept by reference for replay, not copied, and the retry state lives in the
// wrapper.
const maxStreamExtraAllocs = 6

// TestStreamSuccessAllocs measures a StreamLogs call read to io.EOF over bufconn with and
// without the interceptors, on the same server; the difference is what they add.
func TestStreamSuccessAllocs(t *testing.T) {
	srv := sandboxtest.New(sandboxtest.WithSandboxes("sb-1"))
	lis, stop := srv.StartBufconn()
	defer stop()
	measure := func(opts ...grpc.DialOption) float64 {
		conn, err := sandboxtest.DialBufconn(lis, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		c := sandboxpb.NewSandboxServiceClient(conn)
		ctx := context.Background()
		req := &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"}
		call := func() {
			st, err := c.StreamLogs(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			for {
				if _, err := st.Recv(); err == io.EOF {
					return
				} else if err != nil {
					t.Fatal(err)
				}
			}
		}
		call() // warm up the connection
		return testing.AllocsPerRun(200, call)
	}
	plain := measure()
	ours := measure(interceptor.DialOptions()...)
	t.Logf("allocations per StreamLogs call: plain %.1f, with faultline %.1f", plain, ours)
	if extra := ours - plain; extra > maxStreamExtraAllocs {
		t.Errorf("faultline adds %.1f allocations to a successful stream, want <= %d", extra, maxStreamExtraAllocs)
	}
}
