package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/test/bufconn"

	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
)

// The tails scenario's sizes and schedule, in one place (see [Tails]).
const (
	tailStreams    = 50
	tailLines      = 40                     // lines of each sandbox's log
	tailEvery      = 50 * time.Millisecond  // the server sends a line this often
	tailFirstReset = 500 * time.Millisecond // when the connection is first reset
	tailResets     = 4
	tailResetEvery = 300 * time.Millisecond
	tailDeadline   = 30 * time.Second // every stream's deadline: a bound, never reached
)

var streamLogs = sandboxpb.SandboxService_StreamLogs_FullMethodName

// TailsFigures is what one run of the tails scenario measured.
type TailsFigures struct {
	Contender string `json:"contender"`
	Kind      Kind   `json:"kind"`
	Streams   int    `json:"streams"`
	// Complete is the streams that ended with OK after delivering every line of their
	// log once, in order.
	Complete int `json:"complete"`
	// Delivered is the lines received, over all streams; Expected is every line of every
	// stream's log once.
	Delivered int `json:"delivered"`
	Expected  int `json:"expected"`
	// Duplicates is lines received more than once (each extra copy counts); Gaps is lines
	// skipped over (a later line arrived while they had not); Missing is lines never
	// received, gaps included, whether the stream went on or ended early.
	Duplicates int `json:"duplicates"`
	Gaps       int `json:"gaps"`
	Missing    int `json:"missing"`
	// Resumes is stream attempts the server received beyond each stream's first.
	Resumes int `json:"resumes"`
	// Resets is how many times the connection was reset, and Killed how many server-side
	// connections the resets closed.
	Resets int `json:"resets"`
	Killed int `json:"killed"`
	// Failures counts the streams that did not end with OK by what they returned.
	Failures map[string]int `json:"failures"`
}

// Tails runs the tails scenario once, for one contender, in a testing/synctest bubble,
// and returns its figures. It calls t.Fatal if the harness cannot run.
//
// One sandboxtest server (50 sandboxes, each with a log of 40 lines that StreamLogs sends
// one every 50 ms from the requested offset, so 2 s from start to end) serves on a
// bufconn listener that keeps every connection it accepted; one client connection with
// the contender's interceptors carries 50 StreamLogs tails (follow mode), one per
// sandbox, started 1 ms apart. At t = 0.5, 0.8, 1.1 and 1.4 s the server side of every
// connection is closed, as a reset does; the server keeps running and accepts new
// connections. Each tail reads until its stream ends; its deadline (30 s) is a bound,
// never reached.
func Tails(t *testing.T, c Contender) TailsFigures {
	t.Helper()
	var out TailsFigures
	synctest.Test(t, func(t *testing.T) { out = tailsRun(t, c) })
	return out
}

func tailsRun(t *testing.T, c Contender) TailsFigures {
	f := TailsFigures{Contender: c.Name, Kind: c.Kind, Streams: tailStreams, Expected: tailStreams * tailLines, Failures: map[string]int{}}
	ids := make([]string, tailStreams)
	for k := range ids {
		ids[k] = fmt.Sprintf("tail-%d", k)
	}
	sb := sandboxtest.New(sandboxtest.WithSandboxes(ids...), sandboxtest.WithLog(tailLines, tailEvery))
	lis := &resettable{Listener: bufconn.Listen(faultlinetest.BufSize)}
	gs := grpc.NewServer(append(sb.ServerOptions(), grpc.WaitForHandlers(true))...)
	sb.Register(gs)
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gs.Serve(lis) // returns after Stop
	}()
	defer func() {
		gs.Stop()
		<-served
	}()
	opts := append([]grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, c.Options()...)
	conn, err := grpc.NewClient("passthrough:///tails", opts...)
	if err != nil {
		t.Fatalf("tails: dial for %s: %v", c.Name, err)
	}
	defer conn.Close()
	if err := connect(conn); err != nil {
		t.Fatalf("tails: connecting %s: %v", c.Name, err)
	}
	api := sandboxpb.NewSandboxServiceClient(conn)

	var (
		wg sync.WaitGroup
		mu sync.Mutex // guards f
		t0 = time.Now()
	)
	for k, id := range ids {
		wg.Go(func() {
			time.Sleep(time.Until(t0.Add(time.Duration(k) * time.Millisecond)))
			got, err := tail(api, id)
			r := tailReport(got)
			mu.Lock()
			defer mu.Unlock()
			f.Delivered += len(got)
			f.Duplicates += r.duplicates
			f.Gaps += r.gaps
			f.Missing += r.missing
			switch {
			case err != nil:
				f.Failures[errLabel(err)]++
			case r.inOrder:
				f.Complete++
			default:
				f.Failures["OK, but lines missing or repeated"]++
			}
		})
	}
	for i := range tailResets {
		time.Sleep(time.Until(t0.Add(tailFirstReset + time.Duration(i)*tailResetEvery)))
		f.Killed += lis.reset()
		f.Resets++
	}
	wg.Wait() // every stream ends by its deadline
	attempts := map[string]int{}
	for _, m := range sb.Requests(streamLogs) {
		attempts[m.(*sandboxpb.StreamLogsRequest).GetSandboxId()]++
	}
	for _, n := range attempts {
		f.Resumes += max(n-1, 0)
	}
	return f
}

// tail reads the log of sandbox id in follow mode until the stream ends, and returns the
// offsets of the lines received, in order, and the stream's error (nil for OK).
func tail(api sandboxpb.SandboxServiceClient, id string) ([]int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), tailDeadline)
	defer cancel()
	st, err := api.StreamLogs(ctx, &sandboxpb.StreamLogsRequest{SandboxId: id, Follow: true})
	if err != nil {
		return nil, err
	}
	var got []int
	for range 10 * tailLines { // bounded: a correct stream sends tailLines entries
		e, err := st.Recv()
		if errors.Is(err, io.EOF) {
			return got, nil
		}
		if err != nil {
			return got, err
		}
		var n int
		if _, err := fmt.Sscanf(string(e.GetData()), "line %d\n", &n); err != nil {
			return got, fmt.Errorf("tails: unexpected log data %q", e.GetData())
		}
		got = append(got, n)
	}
	return got, fmt.Errorf("tails: more than %d entries", 10*tailLines)
}

// tailCheck is what one stream's lines say.
type tailCheck struct {
	duplicates, gaps, missing int
	inOrder                   bool // every line 0..tailLines-1 exactly once, in order
}

func tailReport(got []int) tailCheck {
	var r tailCheck
	seen := make([]bool, tailLines)
	next := 0 // the line expected next
	for _, n := range got {
		switch {
		case n < 0 || n >= tailLines:
			r.duplicates++ // not a line of the log: count it as extra
		case seen[n]:
			r.duplicates++
		default:
			seen[n] = true
			if n > next {
				r.gaps += n - next
			}
			next = max(next, n+1)
		}
	}
	for _, s := range seen {
		if !s {
			r.missing++
		}
	}
	r.inOrder = r.duplicates == 0 && r.gaps == 0 && r.missing == 0 && len(got) == tailLines
	return r
}

// resettable is a listener that keeps every connection it accepted, so that reset can
// close them all, as a reset of every connection does. It keeps serving.
type resettable struct {
	*bufconn.Listener

	mu    sync.Mutex
	conns []net.Conn
}

func (l *resettable) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

// reset closes every connection accepted so far and returns how many it closed.
func (l *resettable) reset() int {
	l.mu.Lock()
	cs := l.conns
	l.conns = nil
	l.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
	}
	return len(cs)
}
