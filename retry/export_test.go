package retry

import (
	"google.golang.org/grpc/codes"

	"github.com/faultline-go/faultline/errs"
)

// Tokens returns the tokens in a budget made by NewTokenBucket, for this package's tests.
func Tokens(b Budget) float64 { return float64(b.(*tokenBucket).milli.Load()) / 1000 }

// Has, Kinds and Match expose a KindSet's lookups to this package's tests.
func (s KindSet) Has(k errs.Kind) bool { return s.has(k) }
func (s KindSet) Kinds() []errs.Kind   { return s.kinds() }
func (s KindSet) Match(err error) bool { return s.match(err) }

// Has exposes a CodeSet's lookup to this package's tests.
func (s CodeSet) Has(c codes.Code) bool { return s.has(c) }

// Last returns the last attempt's error, for this package's tests.
func (e *Error) Last() error { return e.err }
