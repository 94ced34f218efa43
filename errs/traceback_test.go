package errs_test

import (
	"strings"
	"testing"

	"github.com/faultline-go/faultline/errs"
)

func TestParseTraceback(t *testing.T) {
	tests := []struct {
		name    string
		stderr  string
		typ     string
		message string
		ok      bool
	}{
		{"with header", "Traceback (most recent call last):\n  File \"main.py\", line 1, in <module>\nValueError: bad input\n", "ValueError", "bad input", true},
		{"with header, no Error suffix", "Traceback (most recent call last):\n  File \"x\"\nKeyboardInterrupt\n", "KeyboardInterrupt", "", true},
		{"with header, custom class", "Traceback (most recent call last):\n  File \"x\"\nStopIteration: done", "StopIteration", "done", true},
		{"without header, Error suffix", "ValueError: bad input", "ValueError", "bad input", true},
		{"without header, Exception suffix", "some output\nMyException: oops\n", "MyException", "oops", true},
		{"without header, other suffix", "KeyboardInterrupt\n", "", "", false},
		{"dotted name", "Traceback (most recent call last):\n  ...\nrequests.exceptions.ConnectionError: refused\n", "requests.exceptions.ConnectionError", "refused", true},
		{"dotted name without header", "a.b.CustomError: x", "a.b.CustomError", "x", true},
		{"no colon", "Traceback (most recent call last):\n  ...\nSystemExit\n", "SystemExit", "", true},
		{"no colon with Error suffix", "RuntimeError", "RuntimeError", "", true},
		{"colon in message", "ValueError: invalid literal for int() with base 10: 'x'", "ValueError", "invalid literal for int() with base 10: 'x'", true},
		{"trailing blank lines and CRLF", "Traceback (most recent call last):\r\n  ...\r\nTypeError: bad\r\n\r\n  \n", "TypeError", "bad", true},
		{"message whitespace trimmed", "OSError:   disk full   ", "OSError", "disk full", true},
		{"empty", "", "", "", false},
		{"only whitespace", " \n\t\r\n", "", "", false},
		{"garbage", "segmentation fault (core dumped)", "", "", false},
		{"binary garbage", "\x00\xff\xfe:Error", "", "", false},
		{"not the last line", "ValueError: bad\nexit status 1\n", "", "", false},
		{"leading digit", "1Error: x", "", "", false},
		{"empty dotted part", "a..BError: x", "", "", false},
		{"leading dot", ".BError: x", "", "", false},
		{"trailing dot", "Traceback (most recent call last):\nfoo.: x", "", "", false},
		{"space in name", "Value Error: x", "", "", false},
		{"name too long", strings.Repeat("A", 300) + "Error: x", "", "", false},
		{"header only", "Traceback (most recent call last):\n", "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			typ, message, ok := errs.ParseTraceback(tc.stderr)
			if typ != tc.typ || message != tc.message || ok != tc.ok {
				t.Errorf("ParseTraceback(%q) = %q, %q, %v, want %q, %q, %v", tc.stderr, typ, message, ok, tc.typ, tc.message, tc.ok)
			}
		})
	}
}
