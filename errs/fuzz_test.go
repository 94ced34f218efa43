package errs_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/details"
)

// FuzzError checks that Error() is one bounded line whatever the message and attributes.
func FuzzError(f *testing.F) {
	f.Add(uint8(7), "backend is restarting", "GetSandbox", "sb-1", "field", "description", uint16(1))
	f.Add(uint8(19), strings.Repeat("é", 700), "Op\n", "\xff\xfe", "\u2028", "\x00\x7f\u0085", uint16(20))
	f.Add(uint8(0), "", "", "", "", "", uint16(0))
	f.Fuzz(func(t *testing.T, kind uint8, msg, op, id, field, desc string, n uint16) {
		vs := make([]errs.FieldViolation, n%64)
		for i := range vs {
			vs[i] = errs.FieldViolation{Field: field, Description: desc}
		}
		e := errs.New(errs.Kind(kind), msg, errs.WithResource(errs.Resource{Operation: op}), errs.WithResource(errs.Resource{SandboxID: id}), errs.WithResource(errs.Resource{FilePath: id}),
			errs.WithStreamCode(field), errs.WithExecResult(errs.ExecResult{Stderr: "Traceback (most recent call last):\n" + field + ": " + desc}), errs.WithFieldViolations(vs...))
		checkLine(t, "New", e.Error())
		st := status.New(codes.Code(kind), msg)
		checkLine(t, "FromStatus", errs.FromStatus(errs.Kind(kind), st, nil,
			details.Info{Reason: field, Violations: violations(vs)}, errs.Resource{Operation: op, RunnerID: id}).Error())
	})
}

// FuzzParseTraceback checks that ParseTraceback reports only dotted identifiers found on
// the last non-empty line.
func FuzzParseTraceback(f *testing.F) {
	f.Add("Traceback (most recent call last):\n  File \"x\"\nValueError: bad\n")
	f.Add("a.b.CError: x: y")
	f.Add("KeyboardInterrupt")
	f.Fuzz(func(t *testing.T, stderr string) {
		typ, msg, ok := errs.ParseTraceback(stderr)
		if !ok {
			if typ != "" || msg != "" {
				t.Errorf("ParseTraceback(%q) = %q, %q, false, want empty strings", stderr, typ, msg)
			}
			return
		}
		if typ == "" || strings.ContainsAny(typ, " \t\n\r:") || !strings.Contains(stderr, typ) {
			t.Errorf("ParseTraceback(%q) type = %q, want an identifier from stderr", stderr, typ)
		}
		if strings.ContainsAny(msg, "\n") || msg != strings.TrimSpace(msg) {
			t.Errorf("ParseTraceback(%q) message = %q, want one trimmed line", stderr, msg)
		}
	})
}
