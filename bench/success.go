package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
	"time"

	"google.golang.org/grpc"

	"github.com/faultline-go/faultline/internal/sandboxpb"
)

// successPath measures calls that succeed the first time: time and allocations per call
// against the plain client, for unary calls over bufconn and TCP and for a server stream
// over bufconn; then each unary interceptor alone, with an invoker that returns nil.
func successPath(ctx context.Context, e *env) error {
	rounds := size(e, 3, 30)
	cases := []struct {
		name   string
		t      transport
		stream bool
		batch  int
	}{
		{"Unary GetSandbox over bufconn", overBufconn, false, size(e, 100, 1000)},
		{"Unary GetSandbox over TCP loopback", overTCP, false, size(e, 100, 1000)},
		{"Server-streaming StreamLogs (3 messages) over bufconn", overBufconn, true, size(e, 50, 500)},
	}
	e.r.para("Calls that succeed the first time, %d rounds; in each round every contender runs one "+
		"batch (size below) right next to a batch of the plain client, alternating which goes first. "+
		"`ratio to none` is time per call over that plain-client batch's; `ratio to no-op` is that "+
		"ratio over the no-op interceptor's in the same round; `extra allocs` is allocations per "+
		"call minus the plain-client batch's (both include the server's, so 0 means the contender "+
		"adds none). The `none` row shows the mean of its batches in each round. Contenders that "+
		"do not wrap streams are left out of the stream table.", rounds)
	met := true
	var verdicts []string
	var plainNs float64 // the plain client's time per unary call over bufconn
	for _, c := range cases {
		peers := peersWhere(func(p Peer) bool { return p.Role != RoleOursVariant && (!c.stream || p.Stream) })
		e.log("success: %s", c.name)
		m, err := measureSuccess(ctx, c.t, c.stream, peers, rounds, c.batch)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		e.r.heading(3, fmt.Sprintf("%s (batch %d)", c.name, c.batch))
		if plainNs == 0 {
			plainNs = m.ns[0].median()
		}
		rows := make([][]string, len(peers))
		for i, p := range peers {
			rows[i] = []string{p.Name, m.ns[i].iqr(nanos), m.ratio(i).iqr(ratio), m.ratioTo(i, 1).iqr(ratio),
				m.allocs[i].iqr(fixed1), m.extraAllocs(i).iqr(signed1)}
			if p.Role == RoleOurs {
				r, x := m.ratio(i).median(), m.extraAllocs(i).median()
				ok := r <= 1.01 && math.Abs(x) < 0.5
				met = met && ok
				verdicts = append(verdicts, fmt.Sprintf("%s: ratio %.3f (%s), extra allocs %+.1f (%s)",
					c.name, r, metOrMissed(r <= 1.01), x, metOrMissed(math.Abs(x) < 0.5)))
			}
		}
		e.r.table([]string{"contender", "time/call", "ratio to none", "ratio to no-op", "allocs/call", "extra allocs vs none"}, rows)
	}

	e.log("success: interceptors alone")
	alone := peersWhere(func(p Peer) bool { return p.Unary != nil })
	m, err := measureAlone(ctx, alone, rounds, size(e, 1000, 200000))
	if err != nil {
		return err
	}
	e.r.heading(3, "Unary interceptors alone (invoker returns nil at once)")
	e.r.para("Each interceptor called directly with an invoker that returns nil: what it costs " +
		"itself, exactly (one goroutine, no server). grpc-go's service-config retries live in " +
		"the channel and are not an interceptor, so they are not in this table.")
	rows := make([][]string, len(alone))
	for i, p := range alone {
		rows[i] = []string{p.Name, m.ns[i].iqr(nanos), m.allocs[i].iqr(fixed1)}
		if p.Role == RoleOurs {
			verdicts = append(verdicts, fmt.Sprintf("the interceptor alone costs %s and %.0f allocations per call, "+
				"%.2f%% of a plain unary call over bufconn (%s): the ratio it implies is %.4f",
				nanos(m.ns[i].median()), m.allocs[i].median(), 100*m.ns[i].median()/plainNs, nanos(plainNs),
				1+m.ns[i].median()/plainNs))
		}
	}
	e.r.table([]string{"interceptor", "time/call", "allocs/call"}, rows)

	e.r.goal(met, e.short, "faultline / none <= 1.01 and 0 extra allocations per call. "+joinSemi(verdicts))
	return nil
}

// batches holds per-round figures of each contender: ns[i][round] and allocs[i][round]
// per call, and the figures of the baseline batch measured next to it in that round.
// Contender 0 is the baseline; its own figures are the mean of its paired batches.
type batches struct {
	ns, allocs         []samples
	baseNs, baseAllocs []samples
}

// measurer measures one batch of contender i: time and allocations per call.
type measurer func(i int) (ns, allocs float64, err error)

// paired runs rounds rounds over contenders 1..n-1 (rotating the order every round, see
// interleave) and measures each right next to the baseline, contender 0, alternating which
// of the two goes first from round to round: A B, B A, A B, ...
func paired(ctx context.Context, rounds, n int, measure measurer) (*batches, error) {
	b := &batches{}
	for _, s := range []*[]samples{&b.ns, &b.allocs, &b.baseNs, &b.baseAllocs} {
		*s = make([]samples, n)
		for i := range n {
			(*s)[i] = make(samples, rounds)
		}
	}
	err := interleave(ctx, rounds, n-1, func(r, k int) error {
		i := k + 1
		order := []int{0, i}
		if r%2 == 1 {
			order = []int{i, 0}
		}
		for _, j := range order {
			ns, allocs, err := measure(j)
			if err != nil {
				return err
			}
			if j == 0 {
				b.baseNs[i][r], b.baseAllocs[i][r] = ns, allocs
			} else {
				b.ns[i][r], b.allocs[i][r] = ns, allocs
			}
		}
		b.ns[0][r] += b.baseNs[i][r] / float64(n-1)
		b.allocs[0][r] += b.baseAllocs[i][r] / float64(n-1)
		return nil
	})
	for r := range rounds {
		b.baseNs[0][r], b.baseAllocs[0][r] = b.ns[0][r], b.allocs[0][r]
	}
	return b, err
}

// ratio returns contender i's time over the baseline's next to it, round by round.
func (b *batches) ratio(i int) samples {
	out := make(samples, len(b.ns[i]))
	for r := range out {
		out[r] = b.ns[i][r] / b.baseNs[i][r]
	}
	return out
}

// ratioTo returns contender i's time over contender j's, each first taken over the
// baseline next to it, round by round.
func (b *batches) ratioTo(i, j int) samples {
	ri, rj := b.ratio(i), b.ratio(j)
	for r := range ri {
		ri[r] /= rj[r]
	}
	return ri
}

// allocRatio returns contender i's allocations over the baseline's next to it.
func (b *batches) allocRatio(i int) samples {
	out := make(samples, len(b.allocs[i]))
	for r := range out {
		out[r] = b.allocs[i][r] / b.baseAllocs[i][r]
	}
	return out
}

// extraAllocs returns contender i's allocations per call minus the baseline's next to it,
// round by round.
func (b *batches) extraAllocs(i int) samples {
	out := make(samples, len(b.allocs[i]))
	for r := range out {
		out[r] = b.allocs[i][r] - b.baseAllocs[i][r]
	}
	return out
}

// measureSuccess runs rounds interleaved batches of calls for each peer against one
// server; peers[0] must be the plain client and peers[1] the no-op floor.
func measureSuccess(ctx context.Context, t transport, stream bool, peers []Peer, rounds, batch int) (*batches, error) {
	if len(peers) < 2 || peers[0].Role != RolePlain || peers[1].Role != RoleFloor {
		return nil, errors.New("the success path needs the plain client and the no-op floor first")
	}
	srv, err := startServer(t)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	cs, err := srv.connect(peers)
	if err != nil {
		return nil, err
	}
	defer closeAll(cs)
	if err := warm(ctx, cs); err != nil {
		return nil, err
	}
	ops := make([]func() error, len(cs))
	for i, c := range cs {
		ops[i] = unaryCall(ctx, c.api)
		if stream {
			ops[i] = streamCall(ctx, c.api)
		}
		if _, _, err := timeBatch(ops[i], max(batch/10, 1)); err != nil { // warm-up
			return nil, fmt.Errorf("%s: %w", c.peer.Name, err)
		}
	}
	return paired(ctx, rounds, len(cs), func(i int) (float64, float64, error) {
		srv.sb.Reset() // drop the server's recordings, so its memory does not grow
		ns, allocs, err := timeBatch(ops[i], batch)
		if err != nil {
			err = fmt.Errorf("%s: %w", cs[i].peer.Name, err)
		}
		return ns, allocs, err
	})
}

// measureAlone times each peer's unary interceptor with an invoker that succeeds at once.
func measureAlone(ctx context.Context, peers []Peer, rounds, batch int) (*batches, error) {
	req := &sandboxpb.GetSandboxRequest{SandboxId: sandboxID}
	reply := &sandboxpb.Sandbox{}
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	ops := make([]func() error, len(peers))
	for i, p := range peers {
		ic := p.Unary()
		ops[i] = func() error { return ic(ctx, getSandbox, req, reply, nil, invoker) }
	}
	return paired(ctx, rounds, len(peers), func(i int) (float64, float64, error) {
		return timeBatch(ops[i], batch)
	})
}

func unaryCall(ctx context.Context, api sandboxpb.SandboxServiceClient) func() error {
	req := &sandboxpb.GetSandboxRequest{SandboxId: sandboxID}
	return func() error {
		_, err := api.GetSandbox(ctx, req)
		return err
	}
}

func streamCall(ctx context.Context, api sandboxpb.SandboxServiceClient) func() error {
	req := &sandboxpb.StreamLogsRequest{SandboxId: sandboxID}
	return func() error {
		st, err := api.StreamLogs(ctx, req)
		if err != nil {
			return err
		}
		for {
			if _, err := st.Recv(); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
		}
	}
}

// timeBatch calls op n times and returns the time and the allocations (of the whole
// process) per call.
func timeBatch(op func() error, n int) (nsPerOp, allocsPerOp float64, err error) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	for range n {
		if err := op(); err != nil {
			return 0, 0, err
		}
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	return float64(elapsed) / float64(n), float64(after.Mallocs-before.Mallocs) / float64(n), nil
}

func joinSemi(parts []string) string {
	if len(parts) == 0 {
		return ""
	}
	return strings.Join(parts, "; ") + "."
}
