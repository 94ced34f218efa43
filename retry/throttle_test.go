package retry_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/retry"
)

// The tests of this file build their throttles inside a synctest bubble, so that the
// throttle's window slides on the bubble's virtual clock.

// serverRejection is a RESOURCE_EXHAUSTED the server sent, classified as the interceptor
// classifies it: the rejection for overload the throttle counts.
var serverRejection = classify.New().Classify(
	faultlinetest.Status(codes.ResourceExhausted, "too many requests").Err(), sandboxCall)

// fill tells th of accepts attempts the server accepted and rejects it rejected for
// overload, as the loop records attempts it was let make, without asking the throttle
// again: the window then holds exactly those counts and nothing shed. It records directly
// (retry.RecordThrottle): through a tracker it costs some 25 µs an attempt under -race,
// too slow for TestThrottleRate's 200,000. What the loop records is TestThrottleCounts's.
func fill(th *retry.AdaptiveThrottle, accepts, rejects int) {
	for range accepts {
		retry.RecordThrottle(th, true, false)
	}
	for range rejects {
		retry.RecordThrottle(th, true, true)
	}
}

// admits returns a function asking th to let a first attempt go, as a transport asks it
// (engine.Route.Admit): true when admitted. An admitted probe reports no outcome, so it
// leaves the window as it was; a shed one counts as shed.
func admits(th *retry.AdaptiveThrottle) func() bool {
	route := engine.RouteOf(retry.MustNew(oneAttempt(), retry.WithThrottle(th), retry.WithBudget(nil)))
	return func() bool { return route.Admit() == nil }
}

// countShed returns how many of n probes th sheds.
func countShed(th *retry.AdaptiveThrottle, n int) int {
	admit, shed := admits(th), 0
	for range n {
		if !admit() {
			shed++
		}
	}
	return shed
}

func TestNewAdaptiveThrottle(t *testing.T) {
	tests := []struct {
		k       float64
		window  time.Duration
		wantErr string // a prefix of the error's text; "" for none
	}{
		{1, time.Second, ""},
		{2, time.Second, ""},
		{100, time.Second, ""},
		{2, 100 * time.Millisecond, ""},
		{2, time.Hour, ""},
		{0, time.Second, "retry: throttle multiplier"},
		{-2, time.Second, "retry: throttle multiplier"},
		{math.Nextafter(1, 0), time.Second, "retry: throttle multiplier"},
		{math.Nextafter(100, 200), time.Second, "retry: throttle multiplier"},
		{math.NaN(), time.Second, "retry: throttle multiplier"},
		{math.Inf(1), time.Second, "retry: throttle multiplier"},
		{math.Inf(-1), time.Second, "retry: throttle multiplier"},
		{2, 0, "retry: throttle window"},
		{2, -time.Second, "retry: throttle window"},
		{2, 100*time.Millisecond - 1, "retry: throttle window"},
		{2, time.Hour + 1, "retry: throttle window"},
		{0, 0, "retry: throttle multiplier"}, // the multiplier is checked first
	}
	for _, tt := range tests {
		th, err := retry.NewAdaptiveThrottle(tt.k, tt.window)
		switch {
		case tt.wantErr == "" && (err != nil || th == nil):
			t.Errorf("NewAdaptiveThrottle(%v, %v) = %v, %v, want a throttle, nil", tt.k, tt.window, th, err)
		case tt.wantErr != "" && (err == nil || th != nil):
			t.Errorf("NewAdaptiveThrottle(%v, %v) = %v, %v, want nil, an error", tt.k, tt.window, th, err)
		case tt.wantErr != "" && !strings.HasPrefix(err.Error(), tt.wantErr):
			t.Errorf("NewAdaptiveThrottle(%v, %v) error = %q, want it to begin %q", tt.k, tt.window, err, tt.wantErr)
		}
	}
}

// TestThrottleRate checks the shed probability of a first attempt, max(0, (requests -
// K*accepts) / (requests + 1)) over the window, against the SRE book's formula: each trial
// tells the throttle of a number of accepted and rejected attempts, asks it once to admit a
// first attempt, and waits for the window to pass, so that the next trial starts afresh.
// Where the formula gives 0 nothing may be shed, whatever the draw. Elsewhere some trial
// must shed (none of 3000 at p = 1/14 has odds below e^-200), and the shed fraction of n
// independent trials is within eps of p except with probability at most 2*exp(-2*n*eps^2)
// (Hoeffding): 2e-11 for n = 3000, eps = 0.065. So a flaky failure is out of the question,
// while a formula off by more than a few per cent fails. The DefaultThrottle rows pin its
// K near 2: a K below 2 gives the first a positive p, a K of 13/6 or more gives the
// second none.
func TestThrottleRate(t *testing.T) {
	const (
		trials = 3000
		eps    = 0.065
	)
	tests := []struct {
		name             string
		k                float64 // 0: DefaultThrottle
		accepts, rejects int
		p                float64
	}{
		{"DefaultThrottle, as many rejections as accepts", 0, 6, 6, 0},
		{"DefaultThrottle, one rejection more", 0, 6, 7, 1.0 / 14},
		{"DefaultThrottle, only rejections", 0, 0, 3, 3.0 / 4},
		{"nothing yet", 2, 0, 0, 0},
		{"only accepts", 2, 20, 0, 0},
		{"one rejection", 2, 0, 1, 1.0 / 2},
		{"only rejections", 2, 0, 9, 9.0 / 10},
		{"as many rejections as accepts: K=2 sheds nothing", 2, 4, 4, 0},
		{"one rejection more than accepts", 2, 4, 5, 1.0 / 10},
		{"rejections three times accepts", 2, 2, 6, 4.0 / 9},
		{"K=3 at rejections twice accepts", 3, 3, 6, 0},
		{"K=3 above it", 3, 1, 7, 5.0 / 9},
		{"K=1 at as many rejections as accepts", 1, 3, 3, 3.0 / 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				th := retry.DefaultThrottle()
				if tt.k != 0 {
					var err error
					if th, err = retry.NewAdaptiveThrottle(tt.k, time.Second); err != nil {
						t.Fatal(err)
					}
				}
				admit, shed := admits(th), 0
				for range trials {
					fill(th, tt.accepts, tt.rejects)
					if !admit() {
						shed++
					}
					time.Sleep(time.Second)
				}
				got := float64(shed) / trials
				switch {
				case tt.p == 0 && shed != 0:
					t.Errorf("K=%v, %d accepts, %d rejections: %d of %d first attempts shed, want 0",
						tt.k, tt.accepts, tt.rejects, shed, trials)
				case tt.p > 0 && (shed == 0 || math.Abs(got-tt.p) > eps):
					t.Errorf("K=%v, %d accepts, %d rejections: shed fraction %.3f, want %.3f ± %v",
						tt.k, tt.accepts, tt.rejects, got, tt.p, eps)
				}
			})
		})
	}
}

// TestThrottleRunOfRejections checks that a run of server rejections sheds first attempts
// through Retrier.Do at the formula's rate, shed attempts counting as requests: with no
// accepts, call i (from 0) is shed with probability i/(i+1) exactly, whether the earlier
// calls were shed or rejected. So call 0 is never shed, and of calls 100 to 1099 the
// number admitted has mean sum 1/(i+1) < 2.4; more than 20 of them is less likely than
// 1e-11 (Chernoff).
func TestThrottleRunOfRejections(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := retry.DefaultThrottle()
		r := retry.MustNew(oneAttempt(), retry.WithThrottle(th), retry.WithBudget(nil))
		calls := 0
		op := func(context.Context) error { calls++; return serverRejection }
		admitted := 0
		for i := range 1100 {
			before := calls
			err := r.Do(t.Context(), op)
			shed := errors.Is(err, retry.ErrThrottled)
			if shed == (calls > before) {
				t.Fatalf("call %d: shed %v, op called %d times", i, shed, calls-before)
			}
			switch {
			case i == 0 && shed:
				t.Fatalf("call 0 shed (%v), want it sent: the throttle has seen no rejection yet", err)
			case i >= 100 && !shed:
				admitted++
			}
		}
		if admitted > 20 {
			t.Errorf("calls 100-1099 after a run of rejections only: %d admitted, want at most 20 (mean < 2.4)", admitted)
		}
	})
}

// TestThrottleOnlyAccepts checks that a throttle whose server rejects nothing sheds
// nothing, whatever the draws: neither first attempts nor the retries of failures that are
// not rejections (here a connection that failed under the call) are shed.
func TestThrottleOnlyAccepts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := retry.DefaultThrottle()
		r := retry.MustNew(noJitter(3), retry.WithThrottle(th), retry.WithBudget(nil))
		eof := classify.New().Classify(status.Error(codes.Unavailable, "error reading from server: EOF"), sandboxCall)
		for i := range 2000 {
			// A call in three fails once, then succeeds.
			s := failThen(min(i%3, 1), eof)
			if err := r.Do(t.Context(), s.op); err != nil {
				t.Fatalf("call %d: Do = %v, want nil", i, err)
			}
			time.Sleep(time.Millisecond)
		}
	})
}

// TestThrottleWindow checks the window's length: rejections are remembered for the
// window and no longer. Recorded at the start of a slice of the window (a tenth of it),
// they still shed a first attempt just before the window has passed, and none once it has.
// Just before: each probe is shed with probability at least 1000/1001, so fewer than 90 of
// 100 shed is less likely than 1e-150.
func TestThrottleWindow(t *testing.T) {
	tests := []struct {
		name string
		new  func() (*retry.AdaptiveThrottle, error)
		want time.Duration
	}{
		{"DefaultThrottle", func() (*retry.AdaptiveThrottle, error) { return retry.DefaultThrottle(), nil }, time.Second},
		{"100ms", func() (*retry.AdaptiveThrottle, error) { return retry.NewAdaptiveThrottle(2, 100*time.Millisecond) }, 100 * time.Millisecond},
		{"10s", func() (*retry.AdaptiveThrottle, error) { return retry.NewAdaptiveThrottle(2, 10*time.Second) }, 10 * time.Second},
		{"1h", func() (*retry.AdaptiveThrottle, error) { return retry.NewAdaptiveThrottle(2, time.Hour) }, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				th, err := tt.new()
				if err != nil {
					t.Fatal(err)
				}
				fill(th, 0, 1000)
				time.Sleep(tt.want - time.Nanosecond)
				if n := countShed(th, 100); n < 90 {
					t.Errorf("%v after 1000 rejections: %d of 100 first attempts shed, want at least 90", tt.want-time.Nanosecond, n)
				}
				time.Sleep(time.Nanosecond)
				if n := countShed(th, 1000); n != 0 {
					t.Errorf("%v after 1000 rejections: %d of 1000 first attempts shed, want 0", tt.want, n)
				}
			})
		})
	}
}

// TestThrottleCounts checks what the throttle counts as the server rejecting work for
// overload: only a RESOURCE_EXHAUSTED or an UNAVAILABLE the server sent (overload.md, rule
// 4). Each case makes many calls failing that way through a throttle: one that counts
// rejections soon sheds calls (the chance that none of 100 is shed is below 2^-99), one
// that does not never sheds a call, and sheds nothing afterwards either. The failures go
// through a transport's path (internal/engine, which knows whether an attempt was sent) and,
// for those sent, through Retrier.Do classifying raw gRPC errors.
func TestThrottleCounts(t *testing.T) {
	tests := []struct {
		name    string
		err     error // as grpc-go returns it
		notSent bool
		counted bool
	}{
		{"server RESOURCE_EXHAUSTED", faultlinetest.Status(codes.ResourceExhausted, "too many requests").Err(), false, true},
		{"server RESOURCE_EXHAUSTED with RetryInfo",
			faultlinetest.Status(codes.ResourceExhausted, "slow down", faultlinetest.RetryInfo(time.Second)).Err(), false, true},
		{"server UNAVAILABLE", faultlinetest.Status(codes.Unavailable, "runner unavailable").Err(), false, true},
		{"server UNAVAILABLE with a trusted transient reason",
			faultlinetest.Status(codes.Unavailable, "backend unavailable", faultlinetest.ErrorInfo(trusted, "CWSANDBOX_BACKEND_UNAVAILABLE", nil)).Err(), false, true},
		{"server UNAVAILABLE in grpc-go's words, with details (the server's)",
			faultlinetest.Status(codes.Unavailable, "error reading from server: EOF", faultlinetest.RetryInfo(time.Second)).Err(), false, true},

		{"local: received message larger than max",
			status.Error(codes.ResourceExhausted, "grpc: received message larger than max (5000000 vs. 4194304)"), false, false},
		{"local: trying to send message larger than max",
			status.Error(codes.ResourceExhausted, "trying to send message larger than max (5000000 vs. 4194304)"), false, false},
		{"transport: read hit EOF", status.Error(codes.Unavailable, "error reading from server: EOF"), false, false},
		{"transport: dial failed", status.Error(codes.Unavailable,
			`connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:1: connect: connection refused"`), false, false},
		{"transport: closing", status.Error(codes.Unavailable, "transport is closing"), false, false},
		{"transport: draining", status.Error(codes.Unavailable, "the connection is draining"), false, false},
		{"not sent: RESOURCE_EXHAUSTED", faultlinetest.Status(codes.ResourceExhausted, "too many requests").Err(), true, false},
		{"not sent: UNAVAILABLE", faultlinetest.Status(codes.Unavailable, "runner unavailable").Err(), true, false},
		{"NOT_FOUND", faultlinetest.Status(codes.NotFound, "no such sandbox").Err(), false, false},
		{"INVALID_ARGUMENT", faultlinetest.Status(codes.InvalidArgument, "bad image name").Err(), false, false},
		{"ABORTED", faultlinetest.Status(codes.Aborted, "conflict").Err(), false, false},
	}
	const calls = 100
	for _, tt := range tests {
		t.Run(tt.name+"/transport", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				th := retry.DefaultThrottle()
				route := engine.RouteOf(retry.MustNew(noJitter(3), retry.WithThrottle(th), retry.WithBudget(nil)))
				classified := classify.New().Classify(tt.err, sandboxCall)
				shed := 0
				for range calls {
					if err := route.Admit(); err != nil {
						shed++
						continue
					}
					tr := route.Track(sandboxCall.Method, nil)
					for done := false; !done; {
						done = tr.Failed(t.Context(), classified, engine.Facts{NotSent: tt.notSent}) != nil
					}
				}
				checkCounted(t, th, shed, tt.counted)
			})
		})
		if tt.notSent {
			continue // Retrier.Do cannot say an attempt was not sent
		}
		t.Run(tt.name+"/Retrier.Do", func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				th := retry.DefaultThrottle()
				r := retry.MustNew(noJitter(3), retry.WithThrottle(th), retry.WithBudget(nil), retry.WithClassifyFunc(classify.Classify))
				shed := 0
				for range calls {
					err := r.Do(t.Context(), func(context.Context) error { return tt.err })
					if errors.Is(err, retry.ErrThrottled) {
						shed++
					}
				}
				checkCounted(t, th, shed, tt.counted)
			})
		})
	}
}

// checkCounted checks that a throttle that was told of many failures shed some calls
// (shed) when the failures are rejections it counts, none otherwise; and then that it
// sheds no first attempt when they are not counted.
func checkCounted(t *testing.T, th *retry.AdaptiveThrottle, shed int, counted bool) {
	t.Helper()
	switch {
	case counted && shed == 0:
		t.Errorf("no call of a run of failures the throttle counts was shed, want some")
	case !counted && shed != 0:
		t.Errorf("%d calls shed during a run of failures the throttle must not count, want 0", shed)
	case !counted:
		if n := countShed(th, 1000); n != 0 {
			t.Errorf("after the run: %d of 1000 first attempts shed, want 0", n)
		}
	}
}

// TestThrottleRecovery checks that shedding stops within the window once the server
// accepts again (overload.md, rule 4: at most 1 s with the default). A client calls every
// 5 ms; the server rejects every call for 3 s, then accepts every call. The throttle
// must have shed during the overload, and must shed nothing from the window's end on:
// every later 100 ms is all successes.
func TestThrottleRecovery(t *testing.T) {
	tests := []struct {
		name   string
		new    func() (*retry.AdaptiveThrottle, error)
		window time.Duration
	}{
		{"DefaultThrottle", func() (*retry.AdaptiveThrottle, error) { return retry.DefaultThrottle(), nil }, time.Second},
		{"K=2, 200ms", func() (*retry.AdaptiveThrottle, error) { return retry.NewAdaptiveThrottle(2, 200*time.Millisecond) }, 200 * time.Millisecond},
		{"K=1.5, 500ms", func() (*retry.AdaptiveThrottle, error) { return retry.NewAdaptiveThrottle(1.5, 500*time.Millisecond) }, 500 * time.Millisecond},
	}
	const (
		every    = 5 * time.Millisecond
		overload = 3 * time.Second
		after    = 3 * time.Second
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				th, err := tt.new()
				if err != nil {
					t.Fatal(err)
				}
				r := retry.MustNew(noJitter(3), retry.WithThrottle(th), retry.WithBudget(nil), retry.WithClassifyFunc(classify.Classify))
				start := time.Now()
				ended := start.Add(overload) // the server accepts from here on
				rejecting := func(context.Context) error {
					if time.Now().Before(ended) {
						return faultlinetest.Status(codes.ResourceExhausted, "too many requests").Err()
					}
					return nil
				}
				shedDuring, lastShed := 0, time.Time{}
				for now := start; now.Before(ended.Add(after)); now = time.Now() {
					if err := r.Do(t.Context(), rejecting); errors.Is(err, retry.ErrThrottled) {
						if now.Before(ended) {
							shedDuring++
						} else {
							lastShed = now
						}
					}
					time.Sleep(every)
				}
				if shedDuring == 0 {
					t.Errorf("the throttle shed no call of %v of rejections, want some", overload)
				}
				if !lastShed.IsZero() {
					if got := lastShed.Sub(ended); got >= tt.window {
						t.Errorf("last call shed %v after the server accepted again, want less than %v", got, tt.window)
					} else {
						t.Logf("last call shed %v after the server accepted again (window %v)", got, tt.window)
					}
				}
			})
		})
	}
}

// TestThrottleShedFirst checks a call whose first attempt is shed, on each path a call
// takes to the throttle: the call fails with an error matching ErrThrottled whose status
// code is UNAVAILABLE, the op is never called, nothing is retried or waited for, and OnDone
// reports it with StopThrottled. The throttle has seen 1000 rejections and no accept, so
// each call is shed with probability above 0.999: the chance that none of 64 is shed is
// below 1e-190.
func TestThrottleShedFirst(t *testing.T) {
	type call func(ctx context.Context, th *retry.AdaptiveThrottle, h retry.Hooks, op func(context.Context) error) error
	opts := func(th *retry.AdaptiveThrottle, h retry.Hooks) []retry.Option {
		return []retry.Option{retry.WithThrottle(th), retry.WithHooks(h), retry.WithBudget(nil), retry.WithClassifyFunc(classify.Classify)}
	}
	paths := []struct {
		name string
		call call
	}{
		{"Retrier.Do", func(ctx context.Context, th *retry.AdaptiveThrottle, h retry.Hooks, op func(context.Context) error) error {
			return retry.MustNew(noJitter(5), opts(th, h)...).Do(ctx, op)
		}},
		{"Retrier.Do with PerAttemptTimeout", func(ctx context.Context, th *retry.AdaptiveThrottle, h retry.Hooks, op func(context.Context) error) error {
			p := noJitter(5)
			p.PerAttemptTimeout = time.Second
			return retry.MustNew(p, opts(th, h)...).Do(ctx, op)
		}},
		{"retry.Do", func(ctx context.Context, th *retry.AdaptiveThrottle, h retry.Hooks, op func(context.Context) error) error {
			return retry.Do(ctx, noJitter(5), op, opts(th, h)...)
		}},
		{"transport", func(ctx context.Context, th *retry.AdaptiveThrottle, h retry.Hooks, op func(context.Context) error) error {
			// As package interceptor drives the loop: ask, classify the shed attempt's error
			// and hand it to the tracker, which ends the call.
			route := engine.RouteOf(retry.MustNew(noJitter(5), opts(th, h)...))
			c := classify.New()
			err := route.Admit()
			tr := route.Track(sandboxCall.Method, nil)
			for {
				if err == nil {
					if err = op(tr.Context(ctx)); err == nil {
						tr.Succeeded(ctx)
						return nil
					}
				}
				if final := tr.Failed(ctx, c.Classify(err, sandboxCall), engine.Facts{}); final != nil {
					return final
				}
				err = nil
			}
		}},
	}
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				th := retry.DefaultThrottle()
				fill(th, 0, 1000)
				for range 64 {
					var ev events
					calls := 0
					start := time.Now()
					err := path.call(t.Context(), th, ev.hooks(), func(context.Context) error {
						calls++
						return faultlinetest.Status(codes.ResourceExhausted, "too many requests").Err()
					})
					if !errors.Is(err, retry.ErrThrottled) {
						continue // sent and rejected: try another call
					}
					if calls != 0 {
						t.Errorf("op called %d times, want 0", calls)
					}
					if got := status.Code(err); got != codes.Unavailable {
						t.Errorf("status.Code(%v) = %v, want %v", err, got, codes.Unavailable)
					}
					re := asRetryError(t, err)
					if re.StopReason() != retry.StopThrottled || re.Attempts() != 0 || re.TotalWait() != 0 {
						t.Errorf("err = %v: stop reason %v, attempts %d, waited %v; want %v, 0, 0",
							err, re.StopReason(), re.Attempts(), re.TotalWait(), retry.StopThrottled)
					}
					if d := time.Since(start); d != 0 {
						t.Errorf("the shed call took %v, want 0", d)
					}
					if len(ev.retries) != 0 {
						t.Errorf("OnRetry called %d times, want 0", len(ev.retries))
					}
					if len(ev.stops) != 1 || ev.stops[0].Reason != retry.StopThrottled || ev.stops[0].Attempts != 0 ||
						!errors.Is(ev.stops[0].Err, retry.ErrThrottled) {
						t.Errorf("OnDone events = %+v, want one with reason %v, 0 attempts and an error matching ErrThrottled",
							ev.stops, retry.StopThrottled)
					}
					return
				}
				t.Fatal("no call of 64 was shed, want almost all")
			})
		})
	}
}

// TestThrottleShedNotRetriedOutside checks that a call shed by the throttle of a Retrier
// inside another faultline loop (retry.Do around Retrier.Do) is not retried by the outer
// loop either: the outer op runs once and the error comes out as the inner loop made it.
// The odds are as in TestThrottleShedFirst.
func TestThrottleShedNotRetriedOutside(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		th := retry.DefaultThrottle()
		fill(th, 0, 1000)
		var ev events
		inner := retry.MustNew(noJitter(5), retry.WithThrottle(th), retry.WithBudget(nil),
			retry.WithClassifyFunc(classify.Classify), retry.WithHooks(ev.hooks()))
		for range 64 {
			outerCalls, innerCalls := 0, 0
			var outer events
			start := time.Now()
			err := retry.Do(t.Context(), noJitter(5), func(ctx context.Context) error {
				outerCalls++
				return inner.Do(ctx, func(context.Context) error {
					innerCalls++
					return faultlinetest.Status(codes.Unavailable, "runner unavailable").Err()
				})
			}, retry.WithClassifyFunc(classify.Classify), retry.WithHooks(outer.hooks()))
			if !errors.Is(err, retry.ErrThrottled) {
				continue
			}
			if outerCalls != 1 || innerCalls != 0 {
				t.Errorf("outer op called %d times, inner op %d times; want 1, 0", outerCalls, innerCalls)
			}
			if re := asRetryError(t, err); re.StopReason() != retry.StopThrottled || re.Attempts() != 0 {
				t.Errorf("err = %v: stop reason %v, attempts %d; want %v, 0", err, re.StopReason(), re.Attempts(), retry.StopThrottled)
			}
			if got := status.Code(err); got != codes.Unavailable {
				t.Errorf("status.Code(%v) = %v, want %v", err, got, codes.Unavailable)
			}
			if d := time.Since(start); d != 0 {
				t.Errorf("the shed call took %v, want 0", d)
			}
			if len(outer.retries) != 0 {
				t.Errorf("the outer loop retried %d times, want 0", len(outer.retries))
			}
			return
		}
		t.Fatal("no call of 64 was shed, want almost all")
	})
}

// TestThrottleShedRetry checks a call whose retry is shed: a new throttle admits the first
// attempt (it has seen no rejection), the server rejects it, and from then on the throttle
// would shed first attempts, so it sheds the retry, whatever the draw. The call ends at
// once with the attempt's own error and StopThrottled, without waiting.
func TestThrottleShedRetry(t *testing.T) {
	rejected := faultlinetest.Status(codes.Unavailable, "runner unavailable").Err()
	paths := []struct {
		name string
		call func(ctx context.Context, r *retry.Retrier, op func(context.Context) error) error
	}{
		{"Retrier.Do", func(ctx context.Context, r *retry.Retrier, op func(context.Context) error) error {
			return r.Do(ctx, op)
		}},
		{"transport", func(ctx context.Context, r *retry.Retrier, op func(context.Context) error) error {
			route := engine.RouteOf(r)
			if err := route.Admit(); err != nil {
				return err
			}
			tr := route.Track(sandboxCall.Method, nil)
			for {
				err := op(tr.Context(ctx))
				if err == nil {
					tr.Succeeded(ctx)
					return nil
				}
				if final := tr.Failed(ctx, classify.New().Classify(err, sandboxCall), engine.Facts{}); final != nil {
					return final
				}
			}
		}},
	}
	for _, path := range paths {
		t.Run(path.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var ev events
				r := retry.MustNew(noJitter(5), retry.WithThrottle(retry.DefaultThrottle()), retry.WithBudget(nil),
					retry.WithClassifyFunc(classify.Classify), retry.WithHooks(ev.hooks()))
				calls := 0
				start := time.Now()
				err := path.call(t.Context(), r, func(context.Context) error { calls++; return rejected })
				re := asRetryError(t, err)
				if calls != 1 || re.StopReason() != retry.StopThrottled || re.Attempts() != 1 || re.TotalWait() != 0 {
					t.Errorf("op called %d times; err = %v: stop reason %v, attempts %d, waited %v; want 1, %v, 1, 0",
						calls, err, re.StopReason(), re.Attempts(), re.TotalWait(), retry.StopThrottled)
				}
				if d := time.Since(start); d != 0 {
					t.Errorf("the call took %v, want 0", d)
				}
				if errors.Is(err, retry.ErrThrottled) {
					t.Errorf("err = %v matches ErrThrottled, want the last attempt's error (the attempt was sent)", err)
				}
				if !errors.Is(err, rejected) || status.Code(err) != codes.Unavailable ||
					status.Convert(err).Message() != "runner unavailable" {
					t.Errorf("err = %v (status %v), want the attempt's own UNAVAILABLE", err, status.Convert(err))
				}
				if len(ev.retries) != 0 || len(ev.stops) != 1 || ev.stops[0].Reason != retry.StopThrottled || ev.stops[0].Attempts != 1 {
					t.Errorf("hooks saw %d retries and stops %+v, want no retry and one stop with %v after 1 attempt",
						len(ev.retries), ev.stops, retry.StopThrottled)
				}
			})
		})
	}
}

// TestThrottleConcurrent runs many goroutines' calls through one throttle (go test -race
// finds unsynchronised access) and checks that every call's outcome adds up: a shed call
// made no attempt, a failed call's attempts are the op's calls, OnDone saw each shed and
// failed call once. The server rejects two attempts in three, so the throttle sheds first
// attempts and retries. In "one slice" every call falls in one slice of a 1 h window (the
// waits between attempts add up to at most a minute), so the window's counts must match
// the outcomes exactly; in "sliding" each goroutine also sleeps 1 ms between calls, so a
// 100 ms window slides several times over while the goroutines record into it, and the
// counts of a slice that races with its clearing may be lost (the throttle is a statistic).
func TestThrottleConcurrent(t *testing.T) {
	for _, sliding := range []bool{false, true} {
		name := map[bool]string{false: "one slice", true: "sliding"}[sliding]
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const goroutines, each = 16, 200
				window := time.Hour
				if sliding {
					window = 100 * time.Millisecond
				}
				th, err := retry.NewAdaptiveThrottle(2, window)
				if err != nil {
					t.Fatal(err)
				}
				// The slice's first use claims its bin and clears it; an attempt recorded by
				// another goroutine in the meantime could be lost. Claim it before they start.
				if countShed(th, 1) != 0 {
					t.Fatal("a new throttle shed a first attempt")
				}
				var (
					mu                 sync.Mutex
					doneShed, doneFail int
				)
				hooks := retry.Hooks{OnDone: func(_ context.Context, e retry.DoneEvent) {
					mu.Lock()
					defer mu.Unlock()
					switch {
					case e.Err == nil:
					case e.Reason == retry.StopThrottled && e.Attempts == 0:
						doneShed++
					default:
						doneFail++
					}
				}}
				r := retry.MustNew(noJitter(3), retry.WithThrottle(th), retry.WithBudget(nil),
					retry.WithClassifyFunc(classify.Classify), retry.WithHooks(hooks))
				rejection := faultlinetest.Status(codes.Unavailable, "runner unavailable").Err()
				var (
					opCalls, accepted, rejected atomic.Int64
					succeeded, shedFirst, fails atomic.Int64
					shedRetries, attempts       atomic.Int64
				)
				var wg sync.WaitGroup
				for g := range goroutines {
					wg.Go(func() {
						for i := range each {
							n := 0
							err := r.Do(t.Context(), func(context.Context) error {
								n++
								opCalls.Add(1)
								if (g+i+n)%3 != 0 {
									rejected.Add(1)
									return rejection
								}
								accepted.Add(1)
								return nil
							})
							var re *retry.Error
							switch {
							case err == nil:
								succeeded.Add(1)
								attempts.Add(int64(n))
							case errors.Is(err, retry.ErrThrottled):
								shedFirst.Add(1)
								if n != 0 {
									t.Errorf("shed call: op called %d times, want 0", n)
								}
							case errors.As(err, &re):
								fails.Add(1)
								attempts.Add(int64(re.Attempts()))
								if re.Attempts() != n {
									t.Errorf("err = %v: %d attempts, op called %d times", err, re.Attempts(), n)
								}
								if re.StopReason() == retry.StopThrottled {
									shedRetries.Add(1)
								}
							default:
								t.Errorf("Do = %v (%T), want nil or a *retry.Error", err, err)
							}
							if sliding {
								time.Sleep(time.Millisecond)
							}
						}
					})
				}
				wg.Wait()
				calls := succeeded.Load() + shedFirst.Load() + fails.Load()
				if calls != goroutines*each || attempts.Load() != opCalls.Load() {
					t.Errorf("%d calls ended, want %d; %d attempts reported, op called %d times",
						calls, goroutines*each, attempts.Load(), opCalls.Load())
				}
				if int64(doneShed) != shedFirst.Load() || int64(doneFail) != fails.Load() {
					t.Errorf("OnDone saw %d shed and %d failed calls, want %d and %d",
						doneShed, doneFail, shedFirst.Load(), fails.Load())
				}
				if shedFirst.Load() == 0 || shedRetries.Load() == 0 {
					t.Errorf("%d first attempts and %d retries shed, want some of each", shedFirst.Load(), shedRetries.Load())
				}
				if sliding {
					return
				}
				acc, rej, shed := retry.ThrottleCounts(th)
				if acc != accepted.Load() || rej != rejected.Load() || shed != shedFirst.Load()+shedRetries.Load() {
					t.Errorf("window counts %d accepted, %d rejected, %d shed; want %d, %d, %d",
						acc, rej, shed, accepted.Load(), rejected.Load(), shedFirst.Load()+shedRetries.Load())
				}
			})
		})
	}
}

// TestThrottleMadeOutsideBubble checks a throttle made before a synctest bubble and used
// inside it, as a package-level throttle in a user's synctest test would be: the bubble's
// clock reads decades before the throttle's start. It must shed after rejections and stop
// within the window, as anywhere else. (It used to panic: index out of range [-1].)
func TestThrottleMadeOutsideBubble(t *testing.T) {
	th := retry.DefaultThrottle()
	synctest.Test(t, func(t *testing.T) {
		fill(th, 0, 1000)
		if n := countShed(th, 100); n < 90 {
			t.Errorf("after 1000 rejections: %d of 100 first attempts shed, want at least 90", n)
		}
		time.Sleep(time.Second)
		if n := countShed(th, 1000); n != 0 {
			t.Errorf("1s after 1000 rejections: %d of 1000 first attempts shed, want 0", n)
		}
	})
}

// allowCounter is a Budget that lets every retry go and counts the retries it was asked
// to pay for.
type allowCounter struct{ allowed atomic.Int64 }

func (b *allowCounter) Record(bool, retry.Outcome) {}
func (b *allowCounter) Allow() bool                { b.allowed.Add(1); return true }

// TestThrottleShedRetrySpendsNoBudget checks that a retry the throttle sheds is not paid
// for: Budget.Allow returning true means the retry is made (a ratio budget records a
// withdrawal), so the budget may be asked only for a retry the throttle lets go. As in
// TestThrottleShedRetry, the retry is shed whatever the draw.
func TestThrottleShedRetrySpendsNoBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := new(allowCounter)
		r := retry.MustNew(noJitter(5), retry.WithThrottle(retry.DefaultThrottle()), retry.WithBudget(b),
			retry.WithClassifyFunc(classify.Classify))
		err := r.Do(t.Context(), func(context.Context) error {
			return faultlinetest.Status(codes.Unavailable, "runner unavailable").Err()
		})
		if re := asRetryError(t, err); re.StopReason() != retry.StopThrottled || re.Attempts() != 1 {
			t.Fatalf("err = %v: stop reason %v, attempts %d; want %v, 1", err, re.StopReason(), re.Attempts(), retry.StopThrottled)
		}
		if n := b.allowed.Load(); n != 0 {
			t.Errorf("the budget was asked to pay for %d retries, want 0 (the only retry was shed)", n)
		}
	})
}
