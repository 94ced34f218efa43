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
// of a plain client (measured: 1): the retrying wrapper, which holds the retry state. The
// first attempt runs under the caller's context (a failed attempt is finished by grpc-go;
// only later attempts get contexts of their own), and the request is kept by reference for
// replay, not copied.
const maxStreamExtraAllocs = 1

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
