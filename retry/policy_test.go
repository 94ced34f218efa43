package retry_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/retry"
)

func TestDefaultPolicy(t *testing.T) {
	// The table of retry.md, plus HintJitter (decision 1: "up to +10%").
	want := retry.Policy{
		MaxAttempts:       5,
		InitialBackoff:    200 * time.Millisecond,
		MaxBackoff:        5 * time.Second,
		Multiplier:        2,
		Jitter:            0.2,
		HintJitter:        0.1,
		MaxRetryDelay:     30 * time.Second,
		RetryOn:           retry.On(errs.ErrSandboxUnavailable, errs.ErrSandboxResourceExhausted),
		PerAttemptTimeout: 0,
		MaxElapsed:        0,
	}
	if got := retry.DefaultPolicy(); got != want {
		t.Errorf("DefaultPolicy() = %+v, want %+v", got, want)
	}
	if err := retry.DefaultPolicy().Validate(); err != nil {
		t.Errorf("DefaultPolicy().Validate() = %v, want nil", err)
	}
	if got := retry.DefaultPolicy().RetryOn.Kinds(); len(got) != 2 || got[0] != errs.ErrSandboxUnavailable || got[1] != errs.ErrSandboxResourceExhausted {
		t.Errorf("DefaultPolicy().RetryOn.Kinds() = %v, want [SandboxUnavailableError SandboxResourceExhaustedError]", got)
	}
	noRetry := retry.DefaultPolicy()
	noRetry.MaxAttempts = 1
	if got := retry.NoRetry(); got != noRetry {
		t.Errorf("NoRetry() = %+v, want %+v", got, noRetry)
	}
}

func TestPolicyComparable(t *testing.T) {
	fast := retry.DefaultPolicy()
	fast.InitialBackoff = time.Millisecond
	m := map[retry.Policy]string{
		retry.DefaultPolicy(): "default",
		retry.NoRetry():       "none",
		fast:                  "fast",
	}
	if len(m) != 3 {
		t.Fatalf("len(map) = %d, want 3 distinct policies", len(m))
	}
	for _, tt := range []struct {
		p    retry.Policy
		want string
	}{
		{retry.DefaultPolicy(), "default"},
		{retry.NoRetry(), "none"},
		{fast, "fast"},
	} {
		if got := m[tt.p]; got != tt.want {
			t.Errorf("m[%+v] = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestValidate(t *testing.T) {
	const day = 24 * time.Hour
	with := func(f func(*retry.Policy)) retry.Policy {
		p := retry.DefaultPolicy()
		f(&p)
		return p
	}
	invalidKindBit := retry.KindSet(1) << (len(errs.Kinds()) + 1) // one past the last kind
	bad := []struct {
		name string
		p    retry.Policy
	}{
		{"zero policy", retry.Policy{}},
		{"MaxAttempts 0", with(func(p *retry.Policy) { p.MaxAttempts = 0 })},
		{"MaxAttempts negative", with(func(p *retry.Policy) { p.MaxAttempts = -1 })},
		{"InitialBackoff 0", with(func(p *retry.Policy) { p.InitialBackoff = 0 })},
		{"InitialBackoff negative", with(func(p *retry.Policy) { p.InitialBackoff = -time.Second })},
		{"InitialBackoff over 24h", with(func(p *retry.Policy) { p.InitialBackoff, p.MaxBackoff = day+1, day+1 })},
		{"MaxBackoff below InitialBackoff", with(func(p *retry.Policy) { p.MaxBackoff = p.InitialBackoff - 1 })},
		{"MaxBackoff negative", with(func(p *retry.Policy) { p.MaxBackoff = -1 })},
		{"MaxBackoff over 24h", with(func(p *retry.Policy) { p.MaxBackoff = day + 1 })},
		{"MaxBackoff max int64", with(func(p *retry.Policy) { p.MaxBackoff = math.MaxInt64 })},
		{"Multiplier 0", with(func(p *retry.Policy) { p.Multiplier = 0 })},
		{"Multiplier below 1", with(func(p *retry.Policy) { p.Multiplier = 0.999 })},
		{"Multiplier negative", with(func(p *retry.Policy) { p.Multiplier = -2 })},
		{"Multiplier NaN", with(func(p *retry.Policy) { p.Multiplier = math.NaN() })},
		{"Multiplier +Inf", with(func(p *retry.Policy) { p.Multiplier = math.Inf(1) })},
		{"Multiplier -Inf", with(func(p *retry.Policy) { p.Multiplier = math.Inf(-1) })},
		{"Jitter negative", with(func(p *retry.Policy) { p.Jitter = -0.01 })},
		{"Jitter above 1", with(func(p *retry.Policy) { p.Jitter = 1.01 })},
		{"Jitter NaN", with(func(p *retry.Policy) { p.Jitter = math.NaN() })},
		{"Jitter +Inf", with(func(p *retry.Policy) { p.Jitter = math.Inf(1) })},
		{"HintJitter negative", with(func(p *retry.Policy) { p.HintJitter = -0.01 })},
		{"HintJitter above 1", with(func(p *retry.Policy) { p.HintJitter = 1.01 })},
		{"HintJitter NaN", with(func(p *retry.Policy) { p.HintJitter = math.NaN() })},
		{"HintJitter -Inf", with(func(p *retry.Policy) { p.HintJitter = math.Inf(-1) })},
		{"MaxRetryDelay negative", with(func(p *retry.Policy) { p.MaxRetryDelay = -1 })},
		{"MaxRetryDelay over 24h", with(func(p *retry.Policy) { p.MaxRetryDelay = day + 1 })},
		{"PerAttemptTimeout negative", with(func(p *retry.Policy) { p.PerAttemptTimeout = -1 })},
		{"MaxElapsed negative", with(func(p *retry.Policy) { p.MaxElapsed = -time.Hour })},
		{"RetryOn zero kind bit", with(func(p *retry.Policy) { p.RetryOn |= 1 })},
		{"RetryOn past the last kind", with(func(p *retry.Policy) { p.RetryOn |= invalidKindBit })},
		{"RetryOn bit 63", with(func(p *retry.Policy) { p.RetryOn = 1 << 63 })},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if !errors.Is(err, retry.ErrInvalidPolicy) {
				t.Fatalf("Validate(%+v) = %v, want an error matching ErrInvalidPolicy", tt.p, err)
			}
			calls := 0
			op := func(context.Context) error { calls++; return nil }
			if err := retry.Do(context.Background(), tt.p, op); !errors.Is(err, retry.ErrInvalidPolicy) {
				t.Errorf("Do(%+v) = %v, want an error matching ErrInvalidPolicy", tt.p, err)
			}
			if calls != 0 {
				t.Errorf("Do(%+v) called op %d times, want 0", tt.p, calls)
			}
			r, err := retry.New(tt.p)
			if r != nil || !errors.Is(err, retry.ErrInvalidPolicy) {
				t.Errorf("New(%+v) = %v, %v; want nil, an error matching ErrInvalidPolicy", tt.p, r, err)
			}
			good, err := retry.New(retry.DefaultPolicy())
			if err != nil {
				t.Fatal(err)
			}
			if r, err := good.WithPolicy(tt.p); r != nil || !errors.Is(err, retry.ErrInvalidPolicy) {
				t.Errorf("WithPolicy(%+v) = %v, %v; want nil, an error matching ErrInvalidPolicy", tt.p, r, err)
			}
		})
	}

	good := []struct {
		name string
		p    retry.Policy
	}{
		{"default", retry.DefaultPolicy()},
		{"MaxAttempts 1", with(func(p *retry.Policy) { p.MaxAttempts = 1 })},
		{"MaxAttempts huge", with(func(p *retry.Policy) { p.MaxAttempts = math.MaxInt })},
		{"InitialBackoff 1ns", with(func(p *retry.Policy) { p.InitialBackoff = 1 })},
		{"backoffs 24h", with(func(p *retry.Policy) { p.InitialBackoff, p.MaxBackoff = day, day })},
		{"MaxBackoff equal to InitialBackoff", with(func(p *retry.Policy) { p.MaxBackoff = p.InitialBackoff })},
		{"Multiplier 1", with(func(p *retry.Policy) { p.Multiplier = 1 })},
		{"Multiplier max float", with(func(p *retry.Policy) { p.Multiplier = math.MaxFloat64 })},
		{"Jitter 0", with(func(p *retry.Policy) { p.Jitter = 0 })},
		{"Jitter 1", with(func(p *retry.Policy) { p.Jitter = 1 })},
		{"HintJitter 0", with(func(p *retry.Policy) { p.HintJitter = 0 })},
		{"HintJitter 1", with(func(p *retry.Policy) { p.HintJitter = 1 })},
		{"MaxRetryDelay 0", with(func(p *retry.Policy) { p.MaxRetryDelay = 0 })},
		{"MaxRetryDelay 24h", with(func(p *retry.Policy) { p.MaxRetryDelay = day })},
		{"PerAttemptTimeout set", with(func(p *retry.Policy) { p.PerAttemptTimeout = time.Second })},
		{"MaxElapsed set", with(func(p *retry.Policy) { p.MaxElapsed = time.Minute })},
		{"RetryOn empty", with(func(p *retry.Policy) { p.RetryOn = 0 })},
		{"RetryOn every kind", with(func(p *retry.Policy) { p.RetryOn = retry.On(errs.Kinds()...) })},
	}
	for _, tt := range good {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.p.Validate(); err != nil {
				t.Errorf("Validate(%+v) = %v, want nil", tt.p, err)
			}
			if _, err := retry.New(tt.p); err != nil {
				t.Errorf("New(%+v) = %v, want nil error", tt.p, err)
			}
		})
	}
}

func TestKindSet(t *testing.T) {
	s := retry.On(errs.ErrSandboxUnavailable, errs.ErrSandboxResourceExhausted)
	if got, want := s.String(), "{SandboxUnavailableError, SandboxResourceExhaustedError}"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got := retry.On(errs.Kind(0), errs.Kind(200)); got != 0 {
		t.Errorf("On(invalid kinds) = %v, want the empty set", got)
	}
	if got := retry.On(errs.Kinds()...).Kinds(); len(got) != len(errs.Kinds()) {
		t.Errorf("On(every kind).Kinds() has %d kinds, want %d", len(got), len(errs.Kinds()))
	}
	tests := []struct {
		name string
		err  error
		has  bool // s.Has(kind of err) for *errs.Error
		want bool // s.Match(err)
	}{
		{"own kind", unavailable(), true, true},
		{"child kind", errs.New(errs.ErrSnapshotBackendThrottled, "slow down"), false, true},
		{"parent kind", errs.New(errs.ErrSandboxNotRunning, "starting"), false, false},
		{"unrelated kind", notFound(), false, false},
		{"wrapped kind", errors.Join(errors.New("poll"), errs.ErrSandboxResourceExhausted), false, true},
		{"plain error", errors.New("boom"), false, false},
		{"nil", nil, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := s.Match(tt.err); got != tt.want {
				t.Errorf("Match(%v) = %v, want %v", tt.err, got, tt.want)
			}
			var e *errs.Error
			if errors.As(tt.err, &e) {
				if got := s.Has(e.Kind()); got != tt.has {
					t.Errorf("Has(%v) = %v, want %v", e.Kind(), got, tt.has)
				}
			}
		})
	}
	if (retry.KindSet(0)).Match(unavailable()) {
		t.Errorf("empty set Match(unavailable) = true, want false")
	}
}
