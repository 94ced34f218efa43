package oneline_test

import (
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/faultline-go/faultline/internal/oneline"
)

// FuzzClean checks that Clean returns one valid UTF-8 line within its bound: s cleaned
// when it fits, otherwise a prefix of s cleaned followed by the mark.
func FuzzClean(f *testing.F) {
	f.Add("backend restarting", 100)
	f.Add("a\nb\rc\td\x00e\x1bf\x7fg\u0085h\u2028i\u2029j", 7)
	f.Add("\xff\xfe\xc3(\xe2\x82"+strings.Repeat("\xf0\x9f\x98", 40), 50)
	f.Add(strings.Repeat("é", 600), 1021)
	f.Add("ab😀", 5)
	f.Add("abc", -1)
	f.Add("a\xffb", math.MaxInt)
	f.Fuzz(func(t *testing.T, s string, limit int) {
		got := oneline.Clean(s, limit)
		checkLine(t, "Clean", got, min(max(limit, 0), math.MaxInt-len(oneline.Mark))+len(oneline.Mark))
		want := reference(s)
		if len(s) <= limit && len(want) <= limit {
			if got != want {
				t.Errorf("Clean(%q, %d) = %q, want %q (it fits)", s, limit, got, want)
			}
			return
		}
		if got != want && !(strings.HasSuffix(got, oneline.Mark) && strings.HasPrefix(want, strings.TrimSuffix(got, oneline.Mark))) {
			t.Errorf("Clean(%q, %d) = %q, want a prefix of %q and the mark", s, limit, got, want)
		}
		if again := oneline.Clean(got, len(got)); again != got {
			t.Errorf("Clean(%q, %d) = %q, want %q unchanged", got, len(got), again, got)
		}
	})
}

// FuzzWriter checks that a Writer's line stays one valid UTF-8 line of at most Max bytes
// whatever it is given, and is made of the pieces in order, cleaned.
func FuzzWriter(f *testing.F) {
	f.Add("GetSandbox", "backend\nrestarting", "sb-1", uint16(256), uint16(128), uint8(3))
	f.Add(strings.Repeat("é", 600), strings.Repeat("x", 2000), "\xff\xfe\u2028", uint16(1000), uint16(1023), uint8(9))
	f.Fuzz(func(t *testing.T, raw, a, b string, la, lb uint16, pieces uint8) {
		var w oneline.Writer
		var whole strings.Builder // every piece, cleaned, uncut
		for i := range int(pieces%16) + 1 {
			switch i % 3 {
			case 0:
				w.Raw(raw)
				whole.WriteString(reference(raw))
			case 1:
				w.Clean(a, int(la))
				whole.WriteString(reference(a))
			case 2:
				w.Clean(b, int(lb))
				whole.WriteString(reference(b))
			}
		}
		got := w.String()
		checkLine(t, "Writer", got, oneline.Max)
		if !strings.Contains(got, oneline.Mark) && got != whole.String() {
			t.Errorf("Writer.String() = %q without a cut, want %q", got, whole.String())
		}
	})
}

// reference cleans s rune by rune, without a bound: the spec Clean is checked against.
func reference(s string) string {
	var b strings.Builder
	for _, r := range s { // an invalid byte ranges as U+FFFD
		if unclean(r) {
			r = ' '
		}
		b.WriteRune(r)
	}
	return b.String()
}

// unclean reports whether r is a control character or a line or paragraph separator.
func unclean(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029
}

// checkLine checks that s is one valid UTF-8 line of at most bound bytes.
func checkLine(t *testing.T, what, s string, bound int) {
	t.Helper()
	if len(s) > bound {
		t.Errorf("%s: %d bytes, want <= %d", what, len(s), bound)
	}
	if !utf8.ValidString(s) {
		t.Errorf("%s = %q, want valid UTF-8", what, s)
	}
	for _, r := range s {
		if unclean(r) {
			t.Errorf("%s = %q holds %U, want one clean line", what, s, r)
			break
		}
	}
}
