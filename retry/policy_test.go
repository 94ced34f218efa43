package retry_test

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/classify"
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
		TransientCodes:    retry.Codes(codes.Unavailable, codes.ResourceExhausted),
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
	if got := oneAttempt(); got != noRetry {
		t.Errorf("NoRetry() = %+v, want %+v", got, noRetry)
	}
}

func TestPolicyComparable(t *testing.T) {
	fast := retry.DefaultPolicy()
	fast.InitialBackoff = time.Millisecond
	m := map[retry.Policy]string{
		retry.DefaultPolicy(): "default",
		oneAttempt():          "none",
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
		{oneAttempt(), "none"},
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
		name  string
		p     retry.Policy
		field string // the field the error must name
	}{
		{"zero policy", retry.Policy{}, "MaxAttempts"},
		{"MaxAttempts 0", with(func(p *retry.Policy) { p.MaxAttempts = 0 }), "MaxAttempts"},
		{"MaxAttempts negative", with(func(p *retry.Policy) { p.MaxAttempts = -1 }), "MaxAttempts"},
		{"InitialBackoff 0", with(func(p *retry.Policy) { p.InitialBackoff = 0 }), "InitialBackoff"},
		{"InitialBackoff negative", with(func(p *retry.Policy) { p.InitialBackoff = -time.Second }), "InitialBackoff"},
		{"InitialBackoff over 24h", with(func(p *retry.Policy) { p.InitialBackoff, p.MaxBackoff = day+1, day+1 }), "InitialBackoff"},
		{"MaxBackoff below InitialBackoff", with(func(p *retry.Policy) { p.MaxBackoff = p.InitialBackoff - 1 }), "MaxBackoff"},
		{"MaxBackoff 0", with(func(p *retry.Policy) { p.MaxBackoff = 0 }), "MaxBackoff"},
		{"MaxBackoff negative", with(func(p *retry.Policy) { p.MaxBackoff = -1 }), "MaxBackoff"},
		{"MaxBackoff over 24h", with(func(p *retry.Policy) { p.MaxBackoff = day + 1 }), "MaxBackoff"},
		{"MaxBackoff max int64", with(func(p *retry.Policy) { p.MaxBackoff = math.MaxInt64 }), "MaxBackoff"},
		{"Multiplier 0", with(func(p *retry.Policy) { p.Multiplier = 0 }), "Multiplier"},
		{"Multiplier negative", with(func(p *retry.Policy) { p.Multiplier = -2 }), "Multiplier"},
		{"Multiplier NaN", with(func(p *retry.Policy) { p.Multiplier = math.NaN() }), "Multiplier"},
		{"Multiplier +Inf", with(func(p *retry.Policy) { p.Multiplier = math.Inf(1) }), "Multiplier"},
		{"Multiplier -Inf", with(func(p *retry.Policy) { p.Multiplier = math.Inf(-1) }), "Multiplier"},
		{"Jitter negative", with(func(p *retry.Policy) { p.Jitter = -0.01 }), "Jitter"},
		{"Jitter above 1", with(func(p *retry.Policy) { p.Jitter = 1.01 }), "Jitter"},
		{"Jitter NaN", with(func(p *retry.Policy) { p.Jitter = math.NaN() }), "Jitter"},
		{"Jitter +Inf", with(func(p *retry.Policy) { p.Jitter = math.Inf(1) }), "Jitter"},
		{"HintJitter negative", with(func(p *retry.Policy) { p.HintJitter = -0.01 }), "HintJitter"},
		{"HintJitter above 1", with(func(p *retry.Policy) { p.HintJitter = 1.01 }), "HintJitter"},
		{"HintJitter NaN", with(func(p *retry.Policy) { p.HintJitter = math.NaN() }), "HintJitter"},
		{"HintJitter -Inf", with(func(p *retry.Policy) { p.HintJitter = math.Inf(-1) }), "HintJitter"},
		// safety.md section 5: a policy that could never retry a hinted failure is a mistake.
		{"MaxRetryDelay 0", with(func(p *retry.Policy) { p.MaxRetryDelay = 0 }), "MaxRetryDelay"},
		{"MaxRetryDelay negative", with(func(p *retry.Policy) { p.MaxRetryDelay = -1 }), "MaxRetryDelay"},
		{"MaxRetryDelay over 24h", with(func(p *retry.Policy) { p.MaxRetryDelay = day + 1 }), "MaxRetryDelay"},
		{"PerAttemptTimeout negative", with(func(p *retry.Policy) { p.PerAttemptTimeout = -1 }), "PerAttemptTimeout"},
		{"MaxElapsed negative", with(func(p *retry.Policy) { p.MaxElapsed = -time.Hour }), "MaxElapsed"},
		// safety.md section 5: a policy that retries nothing is a mistake.
		{"RetryOn empty", with(func(p *retry.Policy) { p.RetryOn = 0 }), "RetryOn"},
		{"RetryOn empty, MaxAttempts 2", with(func(p *retry.Policy) { p.RetryOn, p.MaxAttempts = 0, 2 }), "RetryOn"},
		{"RetryOn empty, no TransientCodes", with(func(p *retry.Policy) { p.RetryOn, p.TransientCodes = 0, 0 }), "RetryOn"},
		{"RetryOn zero kind bit", with(func(p *retry.Policy) { p.RetryOn |= 1 }), "RetryOn"},
		{"RetryOn past the last kind", with(func(p *retry.Policy) { p.RetryOn |= invalidKindBit }), "RetryOn"},
		{"RetryOn bit 63", with(func(p *retry.Policy) { p.RetryOn = 1 << 63 }), "RetryOn"},
		{"TransientCodes past Unauthenticated", with(func(p *retry.Policy) { p.TransientCodes |= 1 << 17 }), "TransientCodes"},
		{"TransientCodes bit 31", with(func(p *retry.Policy) { p.TransientCodes = 1 << 31 }), "TransientCodes"},
		{"RetryCodes past Unauthenticated", with(func(p *retry.Policy) {
			p.RetryOn, p.TransientCodes, p.RetryCodes = 0, 0, retry.Codes(codes.Unavailable)|1<<17
		}), "RetryCodes"},
		// A policy decides by code or by kind: RetryCodes with RetryOn or TransientCodes is a mistake.
		{"RetryCodes with RetryOn", with(func(p *retry.Policy) {
			p.TransientCodes, p.RetryCodes = 0, retry.Codes(codes.Unavailable)
		}), "RetryCodes"},
		{"RetryCodes with TransientCodes", with(func(p *retry.Policy) {
			p.RetryOn, p.RetryCodes = 0, retry.Codes(codes.Unavailable)
		}), "RetryCodes"},
		{"RetryCodes with the defaults", with(func(p *retry.Policy) { p.RetryCodes = retry.Codes(codes.Aborted) }), "RetryCodes"},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.p.Validate()
			if !errors.Is(err, retry.ErrInvalidPolicy) {
				t.Fatalf("Validate(%+v) = %v, want an error matching ErrInvalidPolicy", tt.p, err)
			}
			if !strings.Contains(err.Error(), tt.field+" ") {
				t.Errorf("Validate(%+v) = %q, want it to name the field %s", tt.p, err, tt.field)
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
		// gRFC A6 allows any positive backoffMultiplier: the backoffs shrink.
		{"Multiplier below 1", with(func(p *retry.Policy) { p.Multiplier = 0.999 })},
		{"Multiplier smallest positive", with(func(p *retry.Policy) { p.Multiplier = math.SmallestNonzeroFloat64 })},
		{"Multiplier max float", with(func(p *retry.Policy) { p.Multiplier = math.MaxFloat64 })},
		{"Jitter 0", with(func(p *retry.Policy) { p.Jitter = 0 })},
		{"Jitter 1", with(func(p *retry.Policy) { p.Jitter = 1 })},
		{"HintJitter 0", with(func(p *retry.Policy) { p.HintJitter = 0 })},
		{"HintJitter 1", with(func(p *retry.Policy) { p.HintJitter = 1 })},
		{"MaxRetryDelay 1ns", with(func(p *retry.Policy) { p.MaxRetryDelay = 1 })},
		{"MaxRetryDelay 24h", with(func(p *retry.Policy) { p.MaxRetryDelay = day })},
		{"PerAttemptTimeout set", with(func(p *retry.Policy) { p.PerAttemptTimeout = time.Second })},
		{"MaxElapsed set", with(func(p *retry.Policy) { p.MaxElapsed = time.Minute })},
		{"RetryOn empty with MaxAttempts 1", with(func(p *retry.Policy) { p.RetryOn, p.MaxAttempts = 0, 1 })},
		{"RetryOn one kind", with(func(p *retry.Policy) { p.RetryOn = retry.On(errs.ErrSandboxNotRunning) })},
		{"TransientCodes empty", with(func(p *retry.Policy) { p.TransientCodes = 0 })},
		{"TransientCodes every code", with(func(p *retry.Policy) {
			p.TransientCodes = retry.Codes(codes.OK, codes.Canceled, codes.Unknown, codes.InvalidArgument, codes.DeadlineExceeded,
				codes.NotFound, codes.AlreadyExists, codes.PermissionDenied, codes.ResourceExhausted, codes.FailedPrecondition,
				codes.Aborted, codes.OutOfRange, codes.Unimplemented, codes.Internal, codes.Unavailable, codes.DataLoss, codes.Unauthenticated)
		})},
		{"RetryOn every kind", with(func(p *retry.Policy) { p.RetryOn = retry.On(errs.Kinds()...) })},
		{"RetryCodes alone", with(func(p *retry.Policy) {
			p.RetryOn, p.TransientCodes, p.RetryCodes = 0, 0, retry.Codes(codes.Unavailable, codes.Aborted)
		})},
		{"RetryCodes every code", with(func(p *retry.Policy) { p.RetryOn, p.TransientCodes, p.RetryCodes = 0, 0, 1<<17-1 })},
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

// TestPolicyZeroValues checks safety.md section 5: each field's zero value either means "off"
// or "none" (the policy stays valid) or is rejected by Validate with an error naming the
// field. A field added later must be put in one of the two lists.
func TestPolicyZeroValues(t *testing.T) {
	rejected := map[string]bool{
		"MaxAttempts": true, "InitialBackoff": true, "MaxBackoff": true, "Multiplier": true,
		"MaxRetryDelay": true, "RetryOn": true,
	}
	off := map[string]bool{
		"Jitter": true, "HintJitter": true, "TransientCodes": true, "PerAttemptTimeout": true, "MaxElapsed": true,
		"RetryCodes": true,
	}
	typ := reflect.TypeFor[retry.Policy]()
	for i := range typ.NumField() {
		name := typ.Field(i).Name
		t.Run(name, func(t *testing.T) {
			p := retry.DefaultPolicy()
			reflect.ValueOf(&p).Elem().Field(i).SetZero()
			err := p.Validate()
			switch {
			case rejected[name]:
				if !errors.Is(err, retry.ErrInvalidPolicy) || !strings.Contains(err.Error(), name+" ") {
					t.Errorf("Validate(DefaultPolicy() with %s zero) = %v, want ErrInvalidPolicy naming %s", name, err, name)
				}
			case off[name]:
				if err != nil {
					t.Errorf("Validate(DefaultPolicy() with %s zero) = %v, want nil (zero means off)", name, err)
				}
			default:
				t.Errorf("Policy.%s is in neither list: decide whether its zero value means off or is rejected", name)
			}
		})
	}
}

// TestZeroMeansOff checks the zero values that mean "off" do what they say.
func TestZeroMeansOff(t *testing.T) {
	discoveryUnavailable := classify.New().Classify(status.Error(codes.Unavailable, "down"),
		classify.Call{Method: "/coreweave.sandbox.v1.DiscoveryService/GetRunner"})
	tests := []struct {
		name      string
		set       func(*retry.Policy)
		err       error
		wantCalls int
	}{
		{"TransientCodes empty retries no base kind by its code", func(p *retry.Policy) { p.TransientCodes = 0 }, discoveryUnavailable, 1},
		{"TransientCodes default retries the base kind", func(*retry.Policy) {}, discoveryUnavailable, 3},
		{"MaxElapsed 0 sets no limit", func(p *retry.Policy) { p.MaxElapsed, p.InitialBackoff, p.MaxBackoff = 0, time.Hour, time.Hour }, unavailable(), 3},
		{"PerAttemptTimeout 0 sets no attempt deadline", func(p *retry.Policy) { p.PerAttemptTimeout = 0 }, unavailable(), 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := noJitter(3)
				tt.set(&p)
				calls := 0
				_ = retry.Do(t.Context(), p, func(ctx context.Context) error {
					calls++
					if _, ok := ctx.Deadline(); ok {
						t.Errorf("attempt context has a deadline, want none")
					}
					return tt.err
				})
				if calls != tt.wantCalls {
					t.Errorf("op calls = %d, want %d", calls, tt.wantCalls)
				}
			})
		})
	}
}

func TestCodeSet(t *testing.T) {
	s := retry.Codes(codes.Unavailable, codes.ResourceExhausted, codes.Unavailable)
	if got, want := s.String(), "{ResourceExhausted, Unavailable}"; got != want {
		t.Errorf("Codes(Unavailable, ResourceExhausted).String() = %q, want %q", got, want)
	}
	if got := retry.DefaultPolicy().TransientCodes; got != s {
		t.Errorf("DefaultPolicy().TransientCodes = %v, want %v", got, s)
	}
	for c := codes.OK; c <= codes.Unauthenticated+2; c++ {
		want := c == codes.Unavailable || c == codes.ResourceExhausted
		if got := s.Has(c); got != want {
			t.Errorf("%v.Has(%v) = %v, want %v", s, c, got, want)
		}
	}
	if got := retry.Codes(codes.Code(17), codes.Code(200), codes.Code(math.MaxUint32)); got != 0 {
		t.Errorf("Codes(codes above 16) = %v, want the empty set", got)
	}
	if got := retry.Codes(codes.OK, codes.Unauthenticated); !got.Has(codes.OK) || !got.Has(codes.Unauthenticated) || got.String() != "{OK, Unauthenticated}" {
		t.Errorf("Codes(OK, Unauthenticated) = %v, want both", got)
	}
	if got := retry.CodeSet(0).String(); got != "{}" {
		t.Errorf("CodeSet(0).String() = %q, want {}", got)
	}
	if retry.CodeSet(math.MaxUint32).Has(codes.Code(17)) {
		t.Errorf("CodeSet(all bits).Has(17) = true, want false")
	}
}
