package errs

import "strings"

// parseTraceback reads the exception that ended a Python traceback from a command's stderr:
// the last non-empty line, when it has the form "Type: message" or "Type" (a dotted Python
// identifier), and either stderr contains "Traceback (most recent call last):" or the type
// name ends in "Error" or "Exception". It reports false when stderr does not end that way.
//
//	ParseTraceback("Traceback (most recent call last):\n  ...\nValueError: bad input\n")
//	// "ValueError", "bad input", true
func parseTraceback(stderr string) (typ, message string, ok bool) {
	rest := strings.TrimRight(stderr, " \t\r\n")
	line := rest
	if i := strings.LastIndexByte(rest, '\n'); i >= 0 {
		line = rest[i+1:]
	}
	line = strings.TrimSpace(line)
	typ, message, _ = strings.Cut(line, ":")
	message = strings.TrimSpace(message)
	if !isDottedIdent(typ) {
		return "", "", false
	}
	if !strings.Contains(rest, "Traceback (most recent call last):") &&
		!strings.HasSuffix(typ, "Error") && !strings.HasSuffix(typ, "Exception") {
		return "", "", false
	}
	return typ, message, true
}

func isDottedIdent(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	start := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if start {
				return false
			}
			start = true
			continue
		case c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9':
			if start {
				return false
			}
		default:
			return false
		}
		start = false
	}
	return !start
}
