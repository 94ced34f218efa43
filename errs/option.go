package errs

import (
	"github.com/faultline-go/faultline/internal/details"
	"reflect"

	"maps"
	"time"

	"google.golang.org/grpc/codes"
)

// An Option sets an attribute of an error built with [New]. The last option for an
// attribute wins.
type Option interface {
	apply(*builder)
}

type builder struct {
	code       codes.Code
	cause      error
	info       details.Info
	res        Resource
	streamCode string
	exec       *ExecResult
	excType    string
	excMsg     string
}

type optionFunc func(*builder)

func (f optionFunc) apply(b *builder) { f(b) }

// WithCode sets the gRPC code. Default: the kind's natural code.
func WithCode(c codes.Code) Option { return optionFunc(func(b *builder) { b.code = c }) }

// WithCause sets the error Unwrap returns. Default: none.
func WithCause(err error) Option { return optionFunc(func(b *builder) { b.cause = err }) }

// WithErrorInfo sets the ErrorInfo domain, reason and a copy of metadata: an ErrorInfo scopes
// its reason by its domain, so the pair comes in that order, as everywhere in this module.
// Default: none.
func WithErrorInfo(domain, reason string, metadata map[string]string) Option {
	md := maps.Clone(metadata)
	if md == nil {
		md = map[string]string{}
	}
	return optionFunc(func(b *builder) {
		b.info.Reason, b.info.Domain, b.info.Metadata = reason, domain, md
	})
}

// WithRetryDelay sets the retry delay, as a server's RetryInfo would. Default: absent.
func WithRetryDelay(d time.Duration) Option {
	return optionFunc(func(b *builder) { b.info.RetryDelay, b.info.HasRetryDelay = d, true })
}

// WithFieldViolations sets the field violations (a copy). Default: none.
func WithFieldViolations(v ...FieldViolation) Option {
	vs := make([]details.Violation, len(v))
	for i, fv := range v {
		vs[i] = details.Violation(fv)
	}
	return optionFunc(func(b *builder) { b.info.Violations = vs })
}

// WithResource sets what the error is about: the non-empty fields of r (several
// WithResource combine, a later non-empty field winning). Default: none.
func WithResource(r Resource) Option {
	return optionFunc(func(b *builder) {
		// Field by field, so that a field added to Resource needs nothing here.
		dst, src := reflect.ValueOf(&b.res).Elem(), reflect.ValueOf(r)
		for i := range src.NumField() {
			if v := src.Field(i).String(); v != "" {
				dst.Field(i).SetString(v)
			}
		}
	})
}

// WithStreamCode sets the in-band code of a stream's terminal error frame
// ("STREAM_TRUNCATED"). It is not an AIP-193 reason and never becomes one. Default: "".
func WithStreamCode(code string) Option {
	return optionFunc(func(b *builder) { b.streamCode = code })
}

// WithExecResult sets the failed command's result and, when its stderr ends in a Python
// traceback, the exception type and message parsed from it (the last line of a traceback:
// "ValueError: bad input"), which ExceptionType and ExceptionMessage return. Default: none.
func WithExecResult(r ExecResult) Option {
	return optionFunc(func(b *builder) {
		b.exec = &r
		if typ, msg, ok := parseTraceback(r.Stderr); ok {
			b.excType, b.excMsg = typ, msg
		}
	})
}
