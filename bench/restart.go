package bench

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
)

// The restart scenario's schedule, in one place (see [Restart]).
const (
	restartPollers  = 100
	restartEvery    = 100 * time.Millisecond // each poller's period
	restartDeadline = 5 * time.Second        // every call's deadline
	restartDown     = 2 * time.Second        // when the server goes away
	restartAway     = 500 * time.Millisecond // how long it stays away
	restartEnd      = 8 * time.Second        // no call starts at or after this
)

// RestartFigures is what one run of the restart scenario measured. Times are virtual.
type RestartFigures struct {
	Contender string `json:"contender"`
	Kind      Kind   `json:"kind"`
	// Polls is the GetSandbox polls made; FailedPolls of them failed, counted by what
	// they returned in PollFailures.
	Polls        int            `json:"polls"`
	FailedPolls  int            `json:"failed_polls"`
	PollFailures map[string]int `json:"poll_failures"`
	// Cleanups is the DeleteSandbox calls made (one per poller); RefusedCleanups of them
	// failed, counted by what they returned in CleanupFailures.
	Cleanups        int            `json:"cleanups"`
	RefusedCleanups int            `json:"refused_cleanups"`
	CleanupFailures map[string]int `json:"cleanup_failures"`
	// MaxPollLatency is the longest a poll took to return.
	MaxPollLatency time.Duration `json:"max_poll_latency_ns"`
	// Attempts is the GetSandbox and DeleteSandbox attempts the server received.
	Attempts int `json:"attempts"`
}

// Restart runs the restart scenario once, for one contender, in a testing/synctest
// bubble, and returns its figures. It calls t.Fatal if the harness cannot run.
//
// One sandboxtest server serves on bufconn behind a dialer that can be switched off; one
// client connection with the contender's interceptors is shared by 100 pollers. Each
// poller first creates a sandbox of its own, then starts a GetSandbox poll (of a sandbox
// that always exists) every 100 ms, its ticks 1 ms after the previous poller's, whether
// or not its previous poll has returned, as independent workers polling on a timer do
// (open loop: a poller whose calls wait does not slow down). At t = 2 s the server goes
// away: its grpc.Server is stopped (every connection closed, calls in flight cancelled)
// and dials fail at once with "connection refused", as a TCP connect to a closed port
// does. At t = 2.5 s a new grpc.Server for the same sandboxes serves again on the same
// address. At its first tick from then on, each poller deletes its sandbox (the cleanup)
// instead of polling, then goes on polling. Every call has a 5 s deadline; no call starts
// at or after t = 8 s, and the run ends when every call has returned.
func Restart(t *testing.T, c Contender) RestartFigures {
	t.Helper()
	var out RestartFigures
	synctest.Test(t, func(t *testing.T) { out = restartRun(t, c) })
	return out
}

func restartRun(t *testing.T, c Contender) RestartFigures {
	f := RestartFigures{Contender: c.Name, Kind: c.Kind, PollFailures: map[string]int{}, CleanupFailures: map[string]int{}}
	sb := sandboxtest.New(sandboxtest.WithSandboxes(sandboxID))
	srv := sb.StartRestartable()
	defer srv.Down()
	opts := append([]grpc.DialOption{
		grpc.WithContextDialer(srv.Dial),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}, c.Options()...)
	conn, err := grpc.NewClient("passthrough:///restart", opts...)
	if err != nil {
		t.Fatalf("restart: dial for %s: %v", c.Name, err)
	}
	defer conn.Close()
	if err := connect(conn); err != nil {
		t.Fatalf("restart: connecting %s: %v", c.Name, err)
	}
	api := sandboxpb.NewSandboxServiceClient(conn)

	var (
		wg sync.WaitGroup
		mu sync.Mutex // guards f
		t0 = time.Now()
	)
	call := func(fn func(ctx context.Context) error) (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), restartDeadline)
		defer cancel()
		start := time.Now()
		err := fn(ctx)
		return time.Since(start), err
	}
	for k := range restartPollers {
		id := fmt.Sprintf("scratch-%d", k)
		wg.Go(func() {
			_, err := call(func(ctx context.Context) error {
				_, err := api.CreateSandbox(ctx, &sandboxpb.CreateSandboxRequest{Sandbox: &sandboxpb.Sandbox{SandboxId: id}})
				return err
			})
			if err != nil {
				t.Errorf("restart: %s: creating %s before the restart: %v", c.Name, id, err)
				return
			}
			cleaned := false
			var calls sync.WaitGroup
			defer calls.Wait()
			for next := t0.Add(time.Duration(k) * time.Millisecond); next.Before(t0.Add(restartEnd)); next = next.Add(restartEvery) {
				time.Sleep(time.Until(next))
				if !cleaned && !next.Before(t0.Add(restartDown+restartAway)) {
					cleaned = true
					calls.Go(func() {
						_, err := call(func(ctx context.Context) error {
							_, err := api.DeleteSandbox(ctx, &sandboxpb.DeleteSandboxRequest{SandboxId: id})
							return err
						})
						mu.Lock()
						f.Cleanups++
						if err != nil {
							f.RefusedCleanups++
							f.CleanupFailures[errLabel(err)]++
						}
						mu.Unlock()
					})
					continue
				}
				calls.Go(func() {
					took, err := call(func(ctx context.Context) error {
						_, err := api.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: sandboxID})
						return err
					})
					mu.Lock()
					f.Polls++
					f.MaxPollLatency = max(f.MaxPollLatency, took)
					if err != nil {
						f.FailedPolls++
						f.PollFailures[errLabel(err)]++
					}
					mu.Unlock()
				})
			}
		})
	}
	time.Sleep(time.Until(t0.Add(restartDown)))
	srv.Down()
	time.Sleep(time.Until(t0.Add(restartDown + restartAway)))
	srv.Up()
	wg.Wait() // pollers start no call at or after restartEnd; each call ends by its deadline
	f.Attempts = sb.Calls(getSandbox) + sb.Calls(sandboxpb.SandboxService_DeleteSandbox_FullMethodName)
	return f
}
