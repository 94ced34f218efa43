package interceptor_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/retry"
)

// TestNestedReleasesAttemptContext: with a PerAttemptTimeout, a first attempt that fails
// with another faultline loop's final error ends the call with that error, and its
// attempt's context is released when the call returns, as on every other path.
func TestNestedReleasesAttemptContext(t *testing.T) {
	p := retry.DefaultPolicy()
	p.PerAttemptTimeout = time.Hour
	s, err := interceptor.New(interceptor.WithRetrier(retry.MustNew(p, retry.WithBudget(nil))))
	if err != nil {
		t.Fatal(err)
	}
	one := retry.DefaultPolicy()
	one.MaxAttempts = 1
	nested := retry.Do(context.Background(), one, func(context.Context) error {
		return errs.New(errs.ErrSandboxUnavailable, "inner loop gave up")
	})
	var actx context.Context
	invoker := func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
		actx = ctx
		return nested
	}
	err = s.Unary()(context.Background(), "/x.S/M", nil, nil, nil, invoker)
	if _, ok := errors.AsType[*retry.Error](err); !ok {
		t.Fatalf("err = %v, want the nested *retry.Error", err)
	}
	if actx.Err() == nil {
		t.Error("the attempt's PerAttemptTimeout context is still alive after the call returned")
	}
}

// recBudget records what the loop tells a budget.
type recBudget struct {
	mu  sync.Mutex
	log []string
}

func (b *recBudget) Record(first bool, o retry.Outcome) {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := "later"
	if first {
		s = "first"
	}
	b.log = append(b.log, s+"/"+[]string{"succeeded", "retryable", "final", "notsent"}[o])
}
func (b *recBudget) Allow() bool { return true }

// fakeStream delivers one message, then fails with UNAVAILABLE.
type fakeStream struct {
	grpc.ClientStream
	n int
}

func (f *fakeStream) Header() (metadata.MD, error) { return metadata.MD{"a": {"b"}}, nil }
func (f *fakeStream) Context() context.Context     { return context.Background() }
func (f *fakeStream) SendMsg(any) error            { return nil }
func (f *fakeStream) CloseSend() error             { return nil }
func (f *fakeStream) RecvMsg(any) error {
	f.n++
	if f.n == 1 {
		return nil
	}
	return status.Error(codes.Unavailable, "connection reset")
}

// TestCommittedStreamFailure: a server stream (no resumer) that delivered a message and
// then fails ends with a *retry.Error stopped as not resumable, as Set.Stream's doc says,
// and the budget hears of the one call once as a first attempt (one deposit).
func TestCommittedStreamFailure(t *testing.T) {
	b := &recBudget{}
	s, err := interceptor.New(interceptor.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithBudget(b))))
	if err != nil {
		t.Fatal(err)
	}
	streamer := func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
		return &fakeStream{}, nil
	}
	desc := &grpc.StreamDesc{ServerStreams: true}
	cs, err := s.Stream()(context.Background(), desc, nil, "/x.S/M", streamer)
	if err != nil {
		t.Fatal(err)
	}
	_ = cs.CloseSend()
	if err := cs.RecvMsg(new(struct{})); err != nil {
		t.Fatal(err)
	}
	err = cs.RecvMsg(new(struct{}))
	if re, ok := errors.AsType[*retry.Error](err); !ok || re.StopReason() != retry.StopNotResumable {
		t.Errorf("after commit: %v (%T), want a *retry.Error stopped as not resumable, as Set.Stream's doc says", err, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	firsts := 0
	for _, l := range b.log {
		if l[:5] == "first" {
			firsts++
		}
	}
	if firsts != 1 {
		t.Errorf("budget records %v: the one call deposits %d times", b.log, firsts)
	}
}
