package retry_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/retry"
)

// allEvents records every hook's calls, as one-line descriptions in order.
type allEvents struct {
	log   []string
	dones []retry.DoneEvent
}

func (a *allEvents) hooks(tag string) retry.Hooks {
	return retry.Hooks{
		OnRetry: func(_ context.Context, ev retry.RetryEvent) { a.log = append(a.log, tag+" retry "+ev.Target) },
		OnDone: func(_ context.Context, ev retry.DoneEvent) {
			a.log = append(a.log, tag+" done "+ev.Target)
			a.dones = append(a.dones, ev)
		},
	}
}

// conn is a connection that is always ready and counts how often its target is read.
type conn struct{ reads int }

func (c *conn) Target() string                 { c.reads++; return "dns:///sandbox.example:443" }
func (c *conn) Closed() <-chan struct{}        { return nil }
func (c *conn) Ready() (bool, <-chan struct{}) { return true, nil }

// drive runs s's attempts through the engine, as the interceptors do.
func drive(ctx context.Context, r *retry.Retrier, c *conn, s *script) error {
	const method = "/pkg.Service/Get"
	var ec engine.Conn
	if c != nil {
		ec = c
	}
	t := track(r, method, ec)
	for {
		err := s.op(t.Context(ctx))
		if err == nil {
			t.Succeeded(ctx)
			return nil
		}
		if stop := t.Failed(ctx, err, engine.Facts{}); stop != nil {
			return stop
		}
	}
}

// TestDone checks OnDone: once per call that retried or failed, with the attempts, the
// waits between them and why retrying stopped; never for a first-try success.
func TestDone(t *testing.T) {
	tests := []struct {
		name string
		s    func() *script
		want []retry.DoneEvent // without Err, checked apart
	}{
		{name: "first-try success", s: func() *script { return newScript(nil) }},
		{name: "success after two retries", s: func() *script { return failThen(2, unavailable()) },
			want: []retry.DoneEvent{{Method: "/pkg.Service/Get", Attempts: 3, TotalWait: 600 * time.Millisecond}}},
		{name: "not retryable", s: func() *script { return newScript(notFound()) },
			want: []retry.DoneEvent{{Method: "/pkg.Service/Get", Attempts: 1, Reason: retry.StopNotRetryable}}},
		{name: "exhausted", s: func() *script { return newScript(unavailable()) },
			want: []retry.DoneEvent{{Method: "/pkg.Service/Get", Attempts: 3, TotalWait: 600 * time.Millisecond, Reason: retry.StopExhausted}}},
		{name: "hint too long", s: func() *script { return newScript(unavailable(), withHint(time.Hour)) },
			want: []retry.DoneEvent{{Method: "/pkg.Service/Get", Attempts: 2, TotalWait: 200 * time.Millisecond, Reason: retry.StopHintTooLong}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var ev allEvents
				r, err := retry.New(noJitter(3), retry.WithBudget(nil), retry.WithHooks(ev.hooks("a")))
				if err != nil {
					t.Fatal(err)
				}
				callErr := drive(context.Background(), r, nil, tt.s())
				opt := cmpopts.IgnoreFields(retry.DoneEvent{}, "Err")
				if diff := cmp.Diff(tt.want, ev.dones, opt, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("OnDone events (-want +got):\n%s", diff)
				}
				for _, d := range ev.dones {
					if d.Reason == 0 && d.Err != nil || d.Reason != 0 && (d.Err == nil || !errors.Is(callErr, d.Err)) {
						t.Errorf("DoneEvent.Err = %v with cause %v, want nil on success and the call's error %v otherwise", d.Err, d.Reason, callErr)
					}
				}
			})
		})
	}
}

// TestTarget checks that the events name the connection's target, read once and only
// when a call emits an event.
func TestTarget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ev allEvents
		r, err := retry.New(noJitter(3), retry.WithBudget(nil), retry.WithHooks(ev.hooks("h")))
		if err != nil {
			t.Fatal(err)
		}
		c := &conn{}
		if err := drive(context.Background(), r, c, newScript(nil)); err != nil {
			t.Fatal(err)
		}
		if c.reads != 0 {
			t.Errorf("first-try success read the target %d times, want 0", c.reads)
		}
		if err := drive(context.Background(), r, c, failThen(2, unavailable())); err != nil {
			t.Fatal(err)
		}
		const tg = "dns:///sandbox.example:443"
		want := []string{"h retry " + tg, "h retry " + tg, "h done " + tg}
		if diff := cmp.Diff(want, ev.log); diff != "" {
			t.Errorf("events (-want +got):\n%s", diff)
		}
		if c.reads != 1 {
			t.Errorf("a call with three events read the target %d times, want 1", c.reads)
		}
		ev.log = nil
		_ = drive(context.Background(), r, nil, newScript(notFound()))
		if want := []string{"h done "}; !cmp.Equal(want, ev.log) {
			t.Errorf("events without a connection = %q, want %q", ev.log, want)
		}
	})
}

// TestSeveralHooks checks that several WithHooks are called in order, and that nil hooks
// are skipped.
func TestSeveralHooks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var ev allEvents
		onlyDone := retry.Hooks{OnDone: func(context.Context, retry.DoneEvent) { ev.log = append(ev.log, "c done") }}
		err := retry.Do(context.Background(), noJitter(2), newScript(unavailable()).op,
			retry.WithHooks(ev.hooks("a")), retry.WithHooks(retry.Hooks{}), retry.WithHooks(ev.hooks("b")), retry.WithHooks(onlyDone))
		if err == nil {
			t.Fatal("Do() = nil, want the exhausted error")
		}
		want := []string{"a retry ", "b retry ", "a done ", "b done ", "c done"}
		if diff := cmp.Diff(want, ev.log); diff != "" {
			t.Errorf("WithHooks calls (-want +got):\n%s", diff)
		}
	})
}
