package retry_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"testing/synctest"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/retry"
)

// TestErrorTextClean checks that the final error of a call whose error is not an
// *errs.Error reads as one clean line, as a classified error's message does: control
// characters and line separators as spaces, invalid UTF-8 as U+FFFD, and a cut that splits
// no rune.
func TestErrorTextClean(t *testing.T) {
	const hostile = "first\nsecond\r\tthird\x00\x1b\u0085\u2028end\xff"
	const clean = "first second  third    end\ufffd"
	const suffix = " [2 attempts, attempts exhausted]"
	const room = 1024 - len(suffix) - len("...") // for the last attempt's error text
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"not retryable", errors.New(hostile), clean},
		{"exhausted", fmt.Errorf("%s: %w", hostile, errs.ErrSandboxUnavailable),
			clean + ": SandboxUnavailableError" + suffix},
		{"a rune at the cut", fmt.Errorf("%s世界: %w", strings.Repeat("x", room-1), errs.ErrSandboxUnavailable),
			strings.Repeat("x", room-1) + "..." + suffix},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				err := retry.Do(t.Context(), noJitter(2), failThen(5, tt.err).op)
				if got := err.Error(); got != tt.want {
					t.Errorf("Do(...).Error() = %q, want %q", got, tt.want)
				}
			})
		})
	}
}
