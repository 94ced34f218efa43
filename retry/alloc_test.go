//go:build !race

// Allocation ceilings are checked without the race detector only: under -race, sync.Pool
// drops a random share of what is put back, so counts vary from run to run. .ci/run runs
// these tests (go test -run Alloc) without -race.

package retry_test

import (
	"context"
	"testing"

	"github.com/faultline-go/faultline/retry"
)

// TestSuccessAllocs checks decision 13 for the loop: a call that succeeds first time
// allocates nothing, with the default budget on.
func TestSuccessAllocs(t *testing.T) {
	r, err := retry.New(retry.DefaultPolicy())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	op := func(context.Context) error { return nil }
	if n := testing.AllocsPerRun(100, func() { _ = r.Do(ctx, op) }); n != 0 {
		t.Errorf("Retrier.Do(success) allocs = %v, want 0", n)
	}
	p := retry.DefaultPolicy()
	if n := testing.AllocsPerRun(100, func() { _ = retry.Do(ctx, p, op) }); n != 0 {
		t.Errorf("Do(success) allocs = %v, want 0", n)
	}
	opts := []retry.Option{retry.WithBudget(retry.DefaultBudget()), retry.WithHooks(retry.Hooks{}), retry.WithClassifyFunc(nil)}
	if n := testing.AllocsPerRun(100, func() { _ = retry.Do(ctx, p, op, opts...) }); n != 0 {
		t.Errorf("Do(success, options) allocs = %v, want 0", n)
	}
}
