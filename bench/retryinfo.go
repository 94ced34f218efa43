package bench

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
)

// retryInfo measures the gap the server sees between a failed attempt carrying RetryInfo
// and the retry, for every retrying peer.
func retryInfo(ctx context.Context, e *env) error {
	peers := peersWhere(func(p Peer) bool { return p.Retries() && p.Role != RoleOursVariant })
	calls := size(e, 2, 30)
	e.r.para("The server fails the first attempt of a GetSandbox call with UNAVAILABLE + RetryInfo, "+
		"then lets the retry through. The gap is between the two attempts' arrival times at the "+
		"server (so it includes one round trip over bufconn). %d calls per contender, interleaved, "+
		"each with a 5 s deadline. `early` counts gaps shorter than the hint; `in window` counts "+
		"gaps within [hint, hint x 1.1 + 2 ms].", calls)
	met := true
	var verdicts []string
	for _, hint := range []time.Duration{50 * time.Millisecond, 500 * time.Millisecond} {
		e.log("retryinfo: hint %v", hint)
		gaps, retried, err := measureGaps(ctx, peers, calls, hint)
		if err != nil {
			return err
		}
		limit := float64(hint)*1.1 + float64(2*time.Millisecond)
		rows := make([][]string, len(peers))
		for i, p := range peers {
			g := gaps[i]
			early := g.count(func(x float64) bool { return x < float64(hint) })
			in := g.count(func(x float64) bool { return x >= float64(hint) && x <= limit })
			rows[i] = []string{p.Name, fmt.Sprintf("%d/%d", retried[i], calls),
				millis(g.min()), millis(g.median()), millis(g.quantile(0.9)), millis(g.max()),
				fmt.Sprintf("%d", early), fmt.Sprintf("%d", in)}
			if p.Role == RoleOurs {
				ok := retried[i] == calls && early == 0 && in == len(g)
				met = met && ok
				verdicts = append(verdicts, fmt.Sprintf("hint %v: %d/%d retried, %d early, %d/%d in window, max %s (window ends at %s)",
					hint, retried[i], calls, early, in, len(g), millis(g.max()), millis(limit)))
			}
		}
		e.r.heading(3, fmt.Sprintf("RetryInfo %v", hint))
		e.r.table([]string{"contender", "retried", "min gap", "median", "p90", "max", "early", "in window"}, rows)
	}
	e.r.goal(met, e.short, "faultline never retries before the hint and always within hint x 1.1 + 2 ms. "+joinSemi(verdicts))
	return nil
}

// measureGaps runs calls interleaved calls per peer, each failing its first attempt with
// UNAVAILABLE + RetryInfo(hint), and returns per peer the gaps between the first two
// attempts and how many calls were retried and succeeded.
func measureGaps(ctx context.Context, peers []Peer, calls int, hint time.Duration) ([]samples, []int, error) {
	srv, cs, done, err := setUp(ctx, peers)
	if err != nil {
		return nil, nil, err
	}
	defer done()
	st := faultlinetest.Status(codes.Unavailable, "backend is restarting",
		faultlinetest.ErrorInfo("cwsandbox.com", "CWSANDBOX_BACKEND_UNAVAILABLE", nil), faultlinetest.RetryInfo(hint))
	req := &sandboxpb.GetSandboxRequest{SandboxId: sandboxID}
	gaps := make([]samples, len(peers))
	retried := make([]int, len(peers))
	err = interleave(ctx, calls, len(peers), func(_, i int) error {
		srv.sb.Reset()
		srv.sb.Script(getSandbox, sandboxtest.Fail(st))
		srv.record()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := cs[i].api.GetSandbox(cctx, req)
		cancel()
		if at := srv.recorded(); err == nil && len(at) >= 2 {
			retried[i]++
			gaps[i] = append(gaps[i], float64(at[1].Sub(at[0])))
		}
		return ctx.Err()
	})
	return gaps, retried, err
}
