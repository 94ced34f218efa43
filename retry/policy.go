package retry

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/seam"
)

// Policy says when and how long to retry. It is a plain comparable value, modelled on
// gRPC's service-config retryPolicy (gRFC A6). Start from [DefaultPolicy] and change
// fields; the zero Policy is not valid.
type Policy struct {
	// MaxAttempts is the number of attempts, including the first: 1 means no retry.
	// Default 5.
	MaxAttempts int

	// The backoff before retry n (n >= 1) is min(InitialBackoff*Multiplier^(n-1),
	// MaxBackoff), multiplied by a random factor in [1-Jitter, 1+Jitter], as
	// github.com/cenkalti/backoff/v4 computes it (its rounding may move a wait by 1ns). Defaults 200ms,
	// 5s, 2, 0.2. It is used when the failure carries no positive server hint. A Multiplier
	// below 1 makes the backoffs shrink, as gRPC's backoffMultiplier allows (gRFC A6: any
	// positive number).
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	Multiplier     float64
	Jitter         float64

	// HintJitter is the positive jitter added to a server hint (RetryInfo): the wait is
	// hint*(1+U(0, HintJitter)), never shorter than the hint. Default 0.1.
	HintJitter float64

	// MaxRetryDelay is the longest server hint honoured automatically. A failure whose hint
	// is longer is not retried: it is returned at once, with its retry delay, for the caller
	// to decide. Default 30s.
	MaxRetryDelay time.Duration

	// RetryOn is the set of kinds that are retried, matched with errors.Is, so children
	// count. Default: ErrSandboxUnavailable and ErrSandboxResourceExhausted. Validate rejects
	// an empty set when MaxAttempts > 1 and RetryCodes is empty too (a policy that retries
	// nothing is a mistake).
	RetryOn KindSet

	// TransientCodes are the codes retried when the classifier could name only a family's
	// base kind (CWSandboxError, SandboxError, DiscoveryError): the transient failures of
	// discovery calls and of services it does not know. A failure
	// of such a kind is also retried when a trusted ErrorInfo reason declares it transient.
	// A specific kind outside RetryOn is never retried by its code. Default: UNAVAILABLE and
	// RESOURCE_EXHAUSTED; the zero set retries no base kind by its code.
	TransientCodes CodeSet

	// RetryCodes, when not empty, decides alone which failures the policy retries: those
	// whose code is in it, whatever their kind, the way gRPC's retryableStatusCodes decide
	// (gRFC A6). It is matched against the code of the classified failure (an *errs.Error,
	// or what the Retrier's classify function returns); a failure the loop cannot classify is
	// not retried by its code. RetryOn and TransientCodes must then be empty: a policy
	// decides by kind or by code, not both. The safety rules still apply: a
	// RESOURCE_EXHAUSTED without a server signal, a method that must not be repeated, a local
	// failure are not retried whatever the codes say. Default: empty (decide by kind).
	RetryCodes CodeSet

	// PerAttemptTimeout, when positive, bounds each attempt of a unary call. An attempt that
	// ran out of this time while the caller's context is alive is retried, whatever its kind.
	// Default 0: none.
	PerAttemptTimeout time.Duration

	// MaxElapsed, when positive, caps the time spent retrying, counted from the first
	// failure: a wait that would end at or past it is not started. Default 0: none.
	MaxElapsed time.Duration
}

// DefaultPolicy returns the default policy: 5 attempts, backoff 200ms doubling to 5s with
// 20% jitter, server hints honoured up to 30s with up to +10% jitter, retrying
// SandboxUnavailableError and SandboxResourceExhaustedError, and the family base kinds on
// UNAVAILABLE and RESOURCE_EXHAUSTED.
func DefaultPolicy() Policy {
	return Policy{
		MaxAttempts:    5,
		InitialBackoff: 200 * time.Millisecond,
		MaxBackoff:     5 * time.Second,
		Multiplier:     2,
		Jitter:         0.2,
		HintJitter:     0.1,
		MaxRetryDelay:  30 * time.Second,
		RetryOn:        On(errs.ErrSandboxUnavailable, errs.ErrSandboxResourceExhausted),
		TransientCodes: Codes(codes.Unavailable, codes.ResourceExhausted),
	}
}

// ErrInvalidPolicy is matched (errors.Is) by every error Validate returns.
var ErrInvalidPolicy = errors.New("retry: invalid policy")

// maxWait bounds every duration a policy makes the loop sleep, so no arithmetic on it can
// overflow.
const maxWait = 24 * time.Hour

// Validate reports the first problem of p, as an error matching [ErrInvalidPolicy] that
// names the field: MaxAttempts < 1; InitialBackoff not in (0, 24h]; MaxBackoff below
// InitialBackoff or above 24h; Multiplier not above 0, NaN or infinite; Jitter or HintJitter
// outside [0, 1] or NaN; MaxRetryDelay not in (0, 24h] (zero would refuse every hinted
// retry); PerAttemptTimeout or MaxElapsed negative; RetryOn and RetryCodes both empty while
// MaxAttempts > 1; RetryOn naming an invalid kind; TransientCodes or RetryCodes naming a code
// above 16; RetryCodes set together with RetryOn or TransientCodes.
//
// Every other field's zero value means "off" or "none": Jitter and HintJitter 0 add no
// jitter, PerAttemptTimeout and MaxElapsed 0 set no limit, TransientCodes empty retries no
// base kind by its code, RetryCodes empty decides by kind.
func (p Policy) Validate() error {
	if err := p.validateNumbers(); err != nil {
		return err
	}
	return p.validateSets()
}

// invalid returns an error matching ErrInvalidPolicy that says what is wrong.
func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidPolicy}, args...)...)
}

// within reports whether lo <= x <= hi; never for a NaN.
func within[T cmp.Ordered](x, lo, hi T) bool { return x >= lo && x <= hi }

// validateNumbers reports the first problem of p's attempts, durations and factors, in the
// order Validate documents.
func (p Policy) validateNumbers() error {
	switch {
	case p.MaxAttempts < 1:
		return invalid("MaxAttempts is %d, want >= 1", p.MaxAttempts)
	case !within(p.InitialBackoff, time.Nanosecond, maxWait):
		return invalid("InitialBackoff is %v, want in (0, %v]", p.InitialBackoff, maxWait)
	case !within(p.MaxBackoff, p.InitialBackoff, maxWait):
		return invalid("MaxBackoff is %v, want in [InitialBackoff, %v]", p.MaxBackoff, maxWait)
	case !(p.Multiplier > 0) || math.IsInf(p.Multiplier, 0):
		return invalid("Multiplier is %v, want a finite number > 0", p.Multiplier)
	case !within(p.Jitter, 0, 1):
		return invalid("Jitter is %v, want in [0, 1]", p.Jitter)
	case !within(p.HintJitter, 0, 1):
		return invalid("HintJitter is %v, want in [0, 1]", p.HintJitter)
	case !within(p.MaxRetryDelay, time.Nanosecond, maxWait):
		return invalid("MaxRetryDelay is %v, want in (0, %v]", p.MaxRetryDelay, maxWait)
	case p.PerAttemptTimeout < 0:
		return invalid("PerAttemptTimeout is %v, want >= 0", p.PerAttemptTimeout)
	case p.MaxElapsed < 0:
		return invalid("MaxElapsed is %v, want >= 0", p.MaxElapsed)
	}
	return nil
}

// validateSets reports the first problem of p's kind and code sets, in the order Validate
// documents.
func (p Policy) validateSets() error {
	switch {
	case p.RetryOn == 0 && p.RetryCodes == 0 && p.MaxAttempts > 1:
		return invalid("RetryOn is empty (and RetryCodes too) while MaxAttempts is %d: nothing would be retried", p.MaxAttempts)
	case p.TransientCodes>>(codes.Unauthenticated+1) != 0:
		return invalid("TransientCodes is %#x, names a code above %d", uint32(p.TransientCodes), codes.Unauthenticated)
	case p.RetryCodes>>(codes.Unauthenticated+1) != 0:
		return invalid("RetryCodes is %#x, names a code above %d", uint32(p.RetryCodes), codes.Unauthenticated)
	case p.RetryCodes != 0 && (p.RetryOn != 0 || p.TransientCodes != 0):
		return invalid("RetryCodes is %v while RetryOn is %v and TransientCodes %v: decide by code or by kind, empty the other",
			p.RetryCodes, p.RetryOn, p.TransientCodes)
	}
	for k := range p.RetryOn.each {
		if !k.Valid() {
			return invalid("RetryOn names an invalid kind, %v", k)
		}
	}
	return nil
}

// KindSet is a set of kinds, comparable so that a Policy stays comparable. Build it with
// [On].
type KindSet uint64

// KindSet has a bit for every kind (seam.KindBits; errs checks that its kinds fit).
const _ = KindSet(1) << (seam.KindBits - 1)

// On returns the set of the given kinds. Invalid kinds are left out.
func On(kinds ...errs.Kind) KindSet {
	var s KindSet
	for _, k := range kinds {
		if k.Valid() && k < seam.KindBits {
			s |= 1 << k
		}
	}
	return s
}

// has reports whether k is in s (exactly; see match for the tree).
func (s KindSet) has(k errs.Kind) bool { return k < seam.KindBits && s&(1<<k) != 0 }

// kinds returns the kinds in s, in taxonomy order.
func (s KindSet) kinds() []errs.Kind {
	var out []errs.Kind
	for k := range s.each {
		if k.Valid() {
			out = append(out, k)
		}
	}
	return out
}

// each yields the kinds whose bits are set in s, in order, without allocating.
func (s KindSet) each(yield func(errs.Kind) bool) {
	for b := uint64(s); b != 0; b &= b - 1 {
		if !yield(errs.Kind(bits.TrailingZeros64(b))) {
			return
		}
	}
}

// match reports whether err matches a kind of s with errors.Is: its kind is in s or has an
// ancestor in s.
func (s KindSet) match(err error) bool {
	for k := range s.each {
		if errors.Is(err, k) {
			return true
		}
	}
	return false
}

// String lists the kinds: "{SandboxUnavailableError, SandboxResourceExhaustedError}".
func (s KindSet) String() string {
	out := "{"
	for i, k := range s.kinds() {
		if i > 0 {
			out += ", "
		}
		out += k.String()
	}
	return out + "}"
}

// CodeSet is a set of gRPC codes (0 to 16), comparable so that a Policy stays comparable.
// Build it with [Codes].
type CodeSet uint32

// Codes returns the set of the given codes. Codes above 16 are left out.
func Codes(cs ...codes.Code) CodeSet {
	var s CodeSet
	for _, c := range cs {
		if c <= codes.Unauthenticated {
			s |= 1 << c
		}
	}
	return s
}

// has reports whether c is in s.
func (s CodeSet) has(c codes.Code) bool { return c <= codes.Unauthenticated && s&(1<<c) != 0 }

// String lists the codes in numeric order: "{ResourceExhausted, Unavailable}".
func (s CodeSet) String() string {
	out := "{"
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if s.has(c) {
			if len(out) > 1 {
				out += ", "
			}
			out += c.String()
		}
	}
	return out + "}"
}
