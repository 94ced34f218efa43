// Package oneline writes the bounded one-line text of faultline's errors, in one place for
// package errs (a classified error's message) and package retry (the final error of a
// retried call): control characters and line separators become spaces, invalid UTF-8
// becomes U+FFFD, nothing is written past the bound, and a cut, marked with [Mark], never
// splits a UTF-8 sequence.
//
// It imports the standard library only.
package oneline

import (
	"math"
	"strings"
	"unicode/utf8"
)

const (
	// Max bounds a line a [Writer] builds, in bytes, [Mark] included: the 1 KiB of every
	// error text.
	Max = 1024
	// Mark ends a text that was cut.
	Mark = "..."
)

// Writer builds one line of at most [Max] bytes from trusted and untrusted pieces. Once a
// cut leaves no room worth writing into, it ignores what follows. The zero Writer is empty
// and ready to use. A Writer is not safe for concurrent use.
type Writer struct {
	b    strings.Builder
	full bool
}

// Grow makes room for n more bytes, as [strings.Builder.Grow] does.
func (w *Writer) Grow(n int) { w.b.Grow(n) }

// String returns the line written so far.
func (w *Writer) String() string { return w.b.String() }

// Raw writes the caller's own text (its phrases: printable ASCII) as it is while it fits;
// otherwise, or when s is not printable ASCII after all, as [Writer.Clean] writes it.
func (w *Writer) Raw(s string) {
	if !w.full && w.b.Len()+len(s) <= Max-len(Mark) && printableASCII(s) {
		w.b.WriteString(s)
		return
	}
	w.Clean(s, len(s))
}

// Clean writes at most limit bytes of untrusted s, cleaned, then [Mark] if s was cut, by
// limit or by the line's bound. A rune the cut split is dropped.
func (w *Writer) Clean(s string, limit int) {
	if w.full {
		return
	}
	if w.write(s, limit, Max) {
		w.b.WriteString(Mark)
		w.full = w.b.Len() >= Max-len(Mark)
	}
}

// Clean returns s as a line on its own: at most limit bytes of s (none for a negative
// limit), cleaned as [Writer.Clean] cleans them, then [Mark] if s was cut; so at most
// limit+len(Mark) bytes in all. It returns s itself, without allocating, when s is clean
// and fits.
func Clean(s string, limit int) string {
	limit = min(max(limit, 0), math.MaxInt-len(Mark))
	if len(s) <= limit && isClean(s) {
		return s
	}
	var w Writer
	w.Grow(min(len(s), limit) + len(Mark))
	if w.write(s, limit, limit+len(Mark)) {
		w.b.WriteString(Mark)
	}
	return w.String()
}

// write writes s cleaned, cut to limit bytes and to what keeps the line within bound bytes
// with room left for Mark; it reports whether s was cut. It writes no Mark.
func (w *Writer) write(s string, limit, bound int) (cut bool) {
	room := bound - len(Mark) - w.b.Len()
	if len(s) > limit {
		s, cut = s[:max(0, limit)], true
	}
	if len(s) > room {
		s, cut = s[:max(0, room)], true
	}
	if printableASCII(s) {
		w.b.WriteString(s)
		return cut
	}
	return w.writeRunes(s, cut, bound)
}

// writeRunes writes s rune by rune, cleaned, stopping before a rune that would take the
// line past bound bytes less room for Mark. When s was cut (cut), the invalid sequence it
// ends in is the part of a rune the cut split, and is dropped. It reports whether s was cut
// or writing stopped early.
func (w *Writer) writeRunes(s string, cut bool, bound int) bool {
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		if r == utf8.RuneError && size <= 1 && cut && len(s) < utf8.UTFMax {
			return true // a rune split by the cut
		}
		r = cleanRune(r) // invalid UTF-8 decodes as U+FFFD
		if w.b.Len()+utf8.RuneLen(r) > bound-len(Mark) {
			return true
		}
		w.b.WriteRune(r)
		s = s[size:]
	}
	return cut
}

// cleanRune returns a space for a control character (C0, DEL, C1) or a line or paragraph
// separator (U+2028, U+2029), and r itself for any other rune.
func cleanRune(r rune) rune {
	if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029 {
		return ' '
	}
	return r
}

// isClean reports whether s is valid UTF-8 that cleaning leaves as it is. It is
// conservative: a U+FFFD in s makes it report false.
func isClean(s string) bool {
	for _, r := range s {
		if r == utf8.RuneError || cleanRune(r) != r {
			return false
		}
	}
	return true
}

// printableASCII reports whether every byte of s is printable ASCII (0x20 to 0x7e).
func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}
