package connectfaultline_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"testing"

	"connectrpc.com/connect"

	"github.com/faultline-go/faultline/connectfaultline"
	"github.com/faultline-go/faultline/connectfaultline/internal/connecttest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/retry"
)

// upload is a client-streaming procedure of a service faultline knows nothing about (its
// idempotency is unknown): it reads stdin chunks and answers with their concatenation.
// Its first failFirst attempts fail with UNAVAILABLE after reading everything.
const upload = "/test.v1.Uploads/Upload"

type uploads struct {
	failFirst int

	mu       sync.Mutex
	attempts [][]string // the chunks each attempt received
	headers  []string   // each attempt's x-retry-attempt and x-caller
}

func (u *uploads) handle(_ context.Context, st *connect.ClientStream[sandboxpb.ExecStreamRequest]) (*connect.Response[sandboxpb.ExecResponse], error) {
	u.mu.Lock()
	n := len(u.attempts)
	u.attempts = append(u.attempts, nil)
	u.headers = append(u.headers, st.RequestHeader().Get(attemptKey)+"/"+st.RequestHeader().Get("X-Caller"))
	u.mu.Unlock()
	var all []byte
	for st.Receive() {
		u.mu.Lock()
		u.attempts[n] = append(u.attempts[n], string(st.Msg().GetStdin()))
		u.mu.Unlock()
		all = append(all, st.Msg().GetStdin()...)
	}
	if err := st.Err(); err != nil {
		return nil, err
	}
	if n < u.failFirst {
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("uploads restarting"))
	}
	return connect.NewResponse(&sandboxpb.ExecResponse{Stdout: all}), nil
}

func (u *uploads) received() ([][]string, []string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.attempts), slices.Clone(u.headers)
}

// TestClientStreamReplayed: a client stream that fails before its response is retried,
// replaying the chunks as Send took them (the caller reuses one message), with the caller's
// request headers and the attempt header; past the replay limit it commits and is not
// retried.
func TestClientStreamReplayed(t *testing.T) {
	eachClient(t, []transport{tcp, memory}, func(t *testing.T, c client) {
		for _, tc := range []struct {
			name     string
			opts     []connectfaultline.Option
			attempts int
		}{
			{"retried", fast(), 2},
			{"past the replay limit", fast(connectfaultline.WithReplayLimit(10)), 1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				u := &uploads{failFirst: 1}
				mux := http.NewServeMux()
				mux.Handle(upload, connect.NewClientStreamHandler(upload, u.handle))
				ep := c.tr.serve(t, mux, c.v)
				cl := connect.NewClient[sandboxpb.ExecStreamRequest, sandboxpb.ExecResponse](ep.Client, ep.URL+upload,
					c.p.ClientOption(), connectfaultline.ClientOption(tc.opts...))
				st := cl.CallClientStream(callCtx(t))
				st.RequestHeader().Set("X-Caller", "me")
				in := &sandboxpb.ExecStreamRequest_Stdin{}
				msg := &sandboxpb.ExecStreamRequest{Request: in}
				for _, chunk := range []string{"a", "b", "c"} {
					in.Stdin = []byte(chunk)
					if err := st.Send(msg); err != nil {
						t.Fatalf("Send(%s) = %v", chunk, err)
					}
				}
				res, err := st.CloseAndReceive()
				got, headers := u.received()
				if len(got) != tc.attempts {
					t.Fatalf("server saw %d attempts (%v), want %d", len(got), err, tc.attempts)
				}
				for n, chunks := range got {
					if !slices.Equal(chunks, []string{"a", "b", "c"}) {
						t.Errorf("attempt %d received %q, want a, b, c", n+1, chunks)
					}
				}
				if tc.attempts == 1 {
					if stop, _ := stopOf(err); stop != retry.StopNotResumable || connect.CodeOf(err) != connect.CodeUnavailable {
						t.Errorf("CloseAndReceive() = %v (stop %v), want UNAVAILABLE, not retried", err, stop)
					}
					return
				}
				if err != nil || string(res.Msg.GetStdout()) != "abc" {
					t.Fatalf("CloseAndReceive() = %v, %v, want abc", res, err)
				}
				if want := []string{"/me", "1/me"}; !slices.Equal(headers, want) {
					t.Errorf("attempt/caller headers per attempt = %q, want %q", headers, want)
				}
			})
		}
	})
}

// TestDefaultReplayLimit: by default a stream keeps 256 KiB of what it sent, counted as on
// the wire: two chunks of 130000 bytes (130009 each) are replayed, a third commits the
// stream.
func TestDefaultReplayLimit(t *testing.T) {
	c := client{memory, connecttest.HTTP2, connecttest.GRPC}
	for _, tc := range []struct {
		chunks, attempts int
	}{{2, 2}, {3, 1}} {
		t.Run(fmt.Sprintf("%d chunks", tc.chunks), func(t *testing.T) {
			u := &uploads{failFirst: 1}
			mux := http.NewServeMux()
			mux.Handle(upload, connect.NewClientStreamHandler(upload, u.handle, connect.WithReadMaxBytes(1<<20)))
			ep := c.tr.serve(t, mux, c.v)
			cl := connect.NewClient[sandboxpb.ExecStreamRequest, sandboxpb.ExecResponse](ep.Client, ep.URL+upload,
				c.p.ClientOption(), connectfaultline.ClientOption(fast()...))
			st := cl.CallClientStream(callCtx(t))
			chunk := bytes.Repeat([]byte("x"), 130000)
			for range tc.chunks {
				if err := st.Send(&sandboxpb.ExecStreamRequest{Request: &sandboxpb.ExecStreamRequest_Stdin{Stdin: chunk}}); err != nil {
					t.Fatalf("Send() = %v", err)
				}
			}
			_, err := st.CloseAndReceive()
			if got, _ := u.received(); len(got) != tc.attempts {
				t.Errorf("server saw %d attempts (%v), want %d", len(got), err, tc.attempts)
			}
		})
	}
}
