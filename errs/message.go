package errs

import (
	"strconv"
	"strings"

	"google.golang.org/grpc/codes"

	"github.com/faultline-go/faultline/internal/oneline"
)

// Bounds on what goes into a message, each piece's in bytes. The whole line never exceeds
// oneline.Max bytes.
const (
	maxServerMessage  = 256
	maxID             = 128
	maxField          = 64
	maxDescription    = 128
	maxViolationsText = 8
)

// render builds the one-line message: "op: phrase: text (resource); field violations: ...".
func (e *Error) render(text string, code codes.Code) string {
	var w oneline.Writer
	w.Grow(min(oneline.Max, 48+len(text)+len(e.res.SandboxID)+len(e.res.FilePath)+32*len(e.info.Violations)))
	if e.res.Operation != "" {
		w.Clean(e.res.Operation, maxID)
		w.Raw(": ")
	}
	if e.facts.Phrase != "" {
		w.Raw(e.facts.Phrase)
	} else {
		w.Raw(phrase(e.kind, code))
	}
	if text = withholdDetails(text); text != "" {
		w.Raw(": ")
		w.Clean(text, maxServerMessage)
	}
	if e.excType != "" {
		w.Raw(": ")
		w.Clean(e.excType, maxID)
		if e.excMsg != "" {
			w.Raw(": ")
			w.Clean(e.excMsg, maxServerMessage)
		}
	}
	writeResource(&w, e)
	if v := e.info.Violations; len(v) > 0 {
		w.Raw("; field violations: ")
		for i, fv := range v {
			if i == maxViolationsText {
				w.Raw("; (+" + strconv.Itoa(len(v)-i) + " more)")
				break
			}
			if i > 0 {
				w.Raw("; ")
			}
			if fv.Field != "" {
				w.Clean(fv.Field, maxField)
				w.Raw(": ")
			}
			w.Clean(fv.Description, maxDescription)
		}
	}
	return w.String()
}

// writeResource writes the resource part of e's message: " (sandbox sb-1, file /a)", or
// nothing when e names no resource.
func writeResource(w *oneline.Writer, e *Error) {
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
		w.Raw(sep + p.label)
		w.Clean(p.value, maxID)
		sep = ", "
	}
	if sep != " (" {
		w.Raw(")")
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

// codePhrases say what happened, by code, for the family base kinds: the code is all they
// know.
var codePhrases = [...]string{
	codes.OK:                 "failed",
	codes.Canceled:           "cancelled",
	codes.Unknown:            "failed",
	codes.InvalidArgument:    "invalid argument",
	codes.DeadlineExceeded:   "timed out",
	codes.NotFound:           "not found",
	codes.AlreadyExists:      "already exists",
	codes.PermissionDenied:   "permission denied",
	codes.ResourceExhausted:  "resource exhausted",
	codes.FailedPrecondition: "failed precondition",
	codes.Aborted:            "aborted",
	codes.OutOfRange:         "out of range",
	codes.Unimplemented:      "unimplemented",
	codes.Internal:           "internal error",
	codes.Unavailable:        "unavailable",
	codes.DataLoss:           "data loss",
	codes.Unauthenticated:    "authentication failed",
}

// codePhrase returns c's phrase, or "failed (code N)" for a code outside gRPC's 17.
func codePhrase(c codes.Code) string {
	if c < codes.Code(len(codePhrases)) {
		return codePhrases[c]
	}
	return "failed (code " + strconv.Itoa(int(c)) + ")"
}
