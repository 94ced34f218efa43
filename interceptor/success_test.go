package interceptor_test

import (
	"context"
	"sync"
	"testing"

	"google.golang.org/grpc"

	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/retry"
)

// okInvoker is a unary invoker whose call always succeeds.
func okInvoker(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
	return nil
}

// recordingBudget records what the retry loop tells and asks a budget.
type recordingBudget struct {
	mu      sync.Mutex
	records []retry.Outcome
	firsts  int
	allows  int
}

func (b *recordingBudget) Record(first bool, o retry.Outcome) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.records = append(b.records, o)
	if first {
		b.firsts++
	}
}

func (b *recordingBudget) Allow() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.allows++
	return true
}

// TestSuccessPath: a call that succeeds the first time makes one attempt, reports one
// first-attempt success to the budget, asks it for nothing and calls no hook.
func TestSuccessPath(t *testing.T) {
	b := &recordingBudget{}
	hooked := false
	hooks := retry.Hooks{
		OnRetry: func(context.Context, retry.RetryEvent) { hooked = true },
		OnDone:  func(context.Context, retry.DoneEvent) { hooked = true },
	}
	u := interceptor.Unary(interceptor.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithBudget(b), retry.WithHooks(hooks))))
	n := 0
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
		n++
		return nil
	}
	if err := u(context.Background(), getSandbox, &sandboxpb.GetSandboxRequest{}, &sandboxpb.Sandbox{}, nil, invoker); err != nil {
		t.Fatal(err)
	}
	if n != 1 || len(b.records) != 1 || b.records[0] != retry.OutcomeSucceeded || b.firsts != 1 || b.allows != 0 || hooked {
		t.Errorf("attempts %d, budget records %v (%d first), allows %d, hooks called %v; want 1, [Succeeded] (1 first), 0, false",
			n, b.records, b.firsts, b.allows, hooked)
	}
}
