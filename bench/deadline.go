package bench

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/sandboxpb"
)

// deadline measures what each peer does when the server asks for a wait (RetryInfo 2 s)
// longer than the caller's remaining deadline (300 ms): how long the call takes to return,
// with which code, after how many attempts.
func deadline(ctx context.Context, e *env) error {
	const (
		hint   = 2 * time.Second
		budget = 300 * time.Millisecond
	)
	peers := peersWhere(func(p Peer) bool { return p.Role == RolePlain || p.Role == RoleOurs || p.Role == RolePeer })
	calls := size(e, 2, 10)
	srv, cs, done, err := setUp(ctx, peers)
	if err != nil {
		return err
	}
	defer done()
	srv.sb.FailAlways(getSandbox, faultlinetest.Status(codes.Unavailable, "backend is restarting",
		faultlinetest.ErrorInfo("cwsandbox.com", "CWSANDBOX_BACKEND_UNAVAILABLE", nil), faultlinetest.RetryInfo(hint)))
	req := &sandboxpb.GetSandboxRequest{SandboxId: sandboxID}
	elapsed := make([]samples, len(peers))
	attempts := make([]samples, len(peers))
	returned := make([]map[string]int, len(peers))
	for i := range returned {
		returned[i] = map[string]int{}
	}
	e.log("deadline: %d calls per contender", calls)
	err = interleave(ctx, calls, len(peers), func(_, i int) error {
		before := srv.attempts.Load()
		start := time.Now()
		cctx, cancel := context.WithTimeout(ctx, budget)
		_, err := cs[i].api.GetSandbox(cctx, req)
		took := time.Since(start)
		cancel()
		elapsed[i] = append(elapsed[i], float64(took))
		attempts[i] = append(attempts[i], float64(srv.attempts.Load()-before))
		returned[i][codeLabel(err)]++
		return ctx.Err()
	})
	if err != nil {
		return err
	}
	e.r.para("The server fails every GetSandbox attempt with UNAVAILABLE + RetryInfo %v; the caller's "+
		"deadline is %v. %d calls per contender, interleaved. `time to return` is the caller's "+
		"wall clock, median (min-max); `returned` is status.Code of the error (or what the error "+
		"is when it carries no gRPC status).", hint, budget, calls)
	rows := make([][]string, len(peers))
	var sleepers []string
	met := true
	var verdict string
	for i, p := range peers {
		sleeps := elapsed[i].median() >= float64(budget)*0.9
		rows[i] = []string{p.Name, elapsed[i].span(millis), describeCounts(returned[i]),
			attempts[i].span(fixed1), yesNo(sleeps)}
		if sleeps {
			sleepers = append(sleepers, fmt.Sprintf("%s (%s)", p.Name, describeCounts(returned[i])))
		}
		if p.Role == RoleOurs {
			unavailable := returned[i][codes.Unavailable.String()] == calls
			met = elapsed[i].max() < float64(5*time.Millisecond) && unavailable
			verdict = fmt.Sprintf("faultline returned in %s at most (goal < 5 ms: %s), with %s (goal: UNAVAILABLE every time: %s)",
				millis(elapsed[i].max()), metOrMissed(elapsed[i].max() < float64(5*time.Millisecond)),
				describeCounts(returned[i]), metOrMissed(unavailable))
		}
	}
	e.r.table([]string{"contender", "time to return", "returned", "attempts/call", "sleeps to the deadline"}, rows)
	if len(sleepers) > 0 {
		e.r.para("Sleep to the caller's deadline: %s.", strings.Join(sleepers, "; "))
	}
	e.r.goal(met, e.short, verdict+".")
	return nil
}

// codeLabel names what a call returned: its status code, or what the error is when it has
// no gRPC status.
func codeLabel(err error) string {
	if _, ok := status.FromError(err); ok || err == nil {
		return status.Code(err).String()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "context.DeadlineExceeded (no status)"
	case errors.Is(err, context.Canceled):
		return "context.Canceled (no status)"
	}
	return fmt.Sprintf("%T (no status)", err)
}

// describeCounts formats counts by label: "Unavailable x10, DeadlineExceeded x2".
func describeCounts(m map[string]int) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s x%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
