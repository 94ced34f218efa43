package oneline_test

import (
	"strings"
	"testing"

	"github.com/faultline-go/faultline/internal/oneline"
)

func TestClean(t *testing.T) {
	tests := []struct {
		name  string
		s     string
		limit int
		want  string
	}{
		{"fits", "backend restarting", 100, "backend restarting"},
		{"exactly the limit", "abc", 3, "abc"},
		{"empty", "", 0, ""},
		{"cut", "abcdef", 3, "abc..."},
		{"zero limit", "abc", 0, "..."},
		{"negative limit", "abc", -5, "..."},
		{"empty, negative limit", "", -1, ""},
		{"control characters", "a\nb\rc\td\x00e\x1bf\x7fg\u0085h\u2028i\u2029j", 100, "a b c d e f g h i j"},
		{"invalid UTF-8", "a\xffb\xc3(", 100, "a\ufffdb\ufffd("},
		{"U+FFFD kept", "a\ufffdb", 100, "a\ufffdb"},
		{"multibyte fits", "héllo 世界", 100, "héllo 世界"},
		{"cut at a rune's end", "éé", 2, "é..."},
		{"cut inside a two-byte rune", "aé", 2, "a..."},
		{"cut inside a four-byte rune", "ab😀", 5, "ab..."},
		{"invalid UTF-8 grows past the limit", "ab\xff", 3, "ab..."},
		{"line breaks, cut", "first\nsecond", 8, "first se..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := oneline.Clean(tt.s, tt.limit); got != tt.want {
				t.Errorf("Clean(%q, %d) = %q, want %q", tt.s, tt.limit, got, tt.want)
			}
		})
	}
}

func TestWriter(t *testing.T) {
	huge := strings.Repeat("x", 2000)
	tests := []struct {
		name  string
		write func(w *oneline.Writer)
		want  string
	}{
		{"raw and clean pieces", func(w *oneline.Writer) {
			w.Raw("GetSandbox: ")
			w.Clean("backend\nrestarting", 100)
		}, "GetSandbox: backend restarting"},
		{"a piece cut to its limit, then more", func(w *oneline.Writer) {
			w.Clean("abcdef", 3)
			w.Raw(" (sandbox ")
			w.Clean("sb-1", 10)
			w.Raw(")")
		}, "abc... (sandbox sb-1)"},
		{"the line's bound", func(w *oneline.Writer) {
			w.Clean(huge, len(huge))
			w.Raw("; ignored")
			w.Clean("ignored", 10)
		}, huge[:oneline.Max-len(oneline.Mark)] + oneline.Mark},
		{"raw text past the bound is cut", func(w *oneline.Writer) {
			w.Raw(huge[:1020])
			w.Raw("abcdef")
		}, huge[:1020] + "a" + oneline.Mark},
		{"a rune the bound splits is dropped", func(w *oneline.Writer) {
			w.Raw(huge[:1020])
			w.Clean("é", 10)
		}, huge[:1020] + oneline.Mark},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var w oneline.Writer
			tt.write(&w)
			if got := w.String(); got != tt.want {
				t.Errorf("Writer.String() = %q, want %q", got, tt.want)
			}
			if n := len(w.String()); n > oneline.Max {
				t.Errorf("len(Writer.String()) = %d, want <= %d", n, oneline.Max)
			}
		})
	}
}

// TestWriterEveryLength checks the line's bound for every length around it, in one- to
// four-byte runes, invalid bytes and control characters, after every fill.
func TestWriterEveryLength(t *testing.T) {
	for _, unit := range []string{"a", "é", "€", "😀", "\xff", "\n", "\u2028", "\u0085", "\xf0\x9f\x98"} {
		for _, fill := range []int{0, 500, 1019, 1020, 1021, 1022} {
			for n := 900; n <= 1100; n++ {
				s := strings.Repeat(unit, n/len(unit)+1)[:n]
				var w oneline.Writer
				w.Raw(strings.Repeat("x", fill))
				w.Clean(s, n)
				w.Raw(": tail")
				checkLine(t, "Writer", w.String(), oneline.Max)
			}
		}
	}
}
