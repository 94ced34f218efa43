package errs

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
)

// Bounds on what goes into a message. The whole line never exceeds maxMessage bytes.
const (
	maxMessage        = 1024
	maxServerMessage  = 256
	maxID             = 128
	maxField          = 64
	maxDescription    = 128
	maxViolationsText = 8
	truncMark         = "..."
)

// render builds the one-line message: "op: phrase: text (resource); field violations: ...".
func (e *Error) render(text string, code codes.Code) string {
	var w lineWriter
	w.b.Grow(min(maxMessage, 48+len(text)+len(e.res.SandboxID)+len(e.res.FilePath)+32*len(e.info.Violations)))
	if e.res.Operation != "" {
		w.clean(e.res.Operation, maxID)
		w.raw(": ")
	}
	if e.facts.Phrase != "" {
		w.raw(e.facts.Phrase)
	} else {
		w.raw(phrase(e.kind, code))
	}
	if text = withholdDetails(text); text != "" {
		w.raw(": ")
		w.clean(text, maxServerMessage)
	}
	if e.excType != "" {
		w.raw(": ")
		w.clean(e.excType, maxID)
		if e.excMsg != "" {
			w.raw(": ")
			w.clean(e.excMsg, maxServerMessage)
		}
	}
	w.resource(e)
	if v := e.info.Violations; len(v) > 0 {
		w.raw("; field violations: ")
		for i, fv := range v {
			if i == maxViolationsText {
				w.raw("; (+" + strconv.Itoa(len(v)-i) + " more)")
				break
			}
			if i > 0 {
				w.raw("; ")
			}
			if fv.Field != "" {
				w.clean(fv.Field, maxField)
				w.raw(": ")
			}
			w.clean(fv.Description, maxDescription)
		}
	}
	return w.String()
}

func (w *lineWriter) resource(e *Error) {
	exitCode := ""
	if e.exec != nil {
		exitCode = strconv.Itoa(e.exec.ExitCode)
	}
	parts := [...]struct{ label, value string }{
		{"sandbox ", e.res.SandboxID},
		{"file ", e.res.FilePath},
		{"snapshot ", e.res.SnapshotID},
		{"runner ", e.res.RunnerID},
		{"profile ", e.res.ProfileName},
		{"stream code ", e.streamCode},
		{"exit code ", exitCode},
	}
	sep := " ("
	for _, p := range parts {
		if p.value == "" {
			continue
		}
		w.raw(sep + p.label)
		w.clean(p.value, maxID)
		sep = ", "
	}
	if sep != " (" {
		w.raw(")")
	}
}

// grpc-go gives a status whose grpc-status-details-bin disagrees with its grpc-status the
// code Internal and this message, which ends in a dump of the details proto, ErrorInfo
// metadata included (internal/status.NewWithProto).
const (
	detailsMismatch = "grpc-status-details-bin mismatch:"
	detailsDump     = ", grpc-status-details-bin="
)

// withholdDetails cuts the details dump out of such a message: metadata may carry secrets.
func withholdDetails(text string) string {
	if strings.HasPrefix(text, detailsMismatch) {
		if i := strings.Index(text, detailsDump); i >= 0 {
			return text[:i] + " (details withheld)"
		}
	}
	return text
}

// phrase says what happened, in the words the service's users know.
func phrase(k Kind, c codes.Code) string {
	switch k {
	case ErrCWSandbox, ErrSandbox, ErrDiscovery:
		return codePhrase(c)
	case ErrCWSandboxAuthentication:
		if c == codes.PermissionDenied {
			return "permission denied"
		}
	case ErrSandboxNotRunning:
		if c == codes.Canceled {
			return "cancelled"
		}
	}
	return table[k].phrase
}

func codePhrase(c codes.Code) string {
	switch c {
	case codes.OK:
		return "failed"
	case codes.Canceled:
		return "cancelled"
	case codes.Unknown:
		return "failed"
	case codes.InvalidArgument:
		return "invalid argument"
	case codes.DeadlineExceeded:
		return "timed out"
	case codes.NotFound:
		return "not found"
	case codes.AlreadyExists:
		return "already exists"
	case codes.PermissionDenied:
		return "permission denied"
	case codes.ResourceExhausted:
		return "resource exhausted"
	case codes.FailedPrecondition:
		return "failed precondition"
	case codes.Aborted:
		return "aborted"
	case codes.OutOfRange:
		return "out of range"
	case codes.Unimplemented:
		return "unimplemented"
	case codes.Internal:
		return "internal error"
	case codes.Unavailable:
		return "unavailable"
	case codes.DataLoss:
		return "data loss"
	case codes.Unauthenticated:
		return "authentication failed"
	}
	return "failed (code " + strconv.Itoa(int(c)) + ")"
}

// lineWriter writes a single bounded line: control characters become spaces, invalid UTF-8
// becomes U+FFFD, and nothing is written past maxMessage bytes.
type lineWriter struct {
	b    strings.Builder
	full bool
}

func (w *lineWriter) String() string { return w.b.String() }

// raw writes trusted text (our own phrases: printable ASCII), still within the bound.
func (w *lineWriter) raw(s string) {
	if !w.full && w.b.Len()+len(s) <= maxMessage-len(truncMark) {
		w.b.WriteString(s)
		return
	}
	w.clean(s, len(s))
}

// clean writes at most limit bytes of untrusted s, then a truncation mark if s was longer.
func (w *lineWriter) clean(s string, limit int) {
	if w.full {
		return
	}
	room := maxMessage - w.b.Len()
	cut := false
	if len(s) > limit {
		s, cut = s[:limit], true
	}
	if len(s) > room-len(truncMark) {
		s, cut = s[:max(0, room-len(truncMark))], true
	}
	if printableASCII(s) {
		w.b.WriteString(s)
	} else {
		for len(s) > 0 {
			r, size := utf8.DecodeRuneInString(s)
			switch {
			case r == utf8.RuneError && size <= 1:
				if len(s) < utf8.UTFMax && cut {
					s = "" // a rune split by the cut
					continue
				}
				r = utf8.RuneError
			case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029:
				r = ' '
			}
			if w.b.Len()+utf8.RuneLen(r) > maxMessage-len(truncMark) {
				cut = true
				break
			}
			w.b.WriteRune(r)
			s = s[size:]
		}
	}
	if cut {
		w.b.WriteString(truncMark)
		if w.b.Len() >= maxMessage-len(truncMark) {
			w.full = true
		}
	}
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}
