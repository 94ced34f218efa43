package calls_test

import (
	"testing"

	"github.com/faultline-go/faultline/internal/sandboxapi"
	"github.com/faultline-go/faultline/retry"
)

// TestLevelsInStep checks that the sandbox API table's levels are retry.Idempotency's
// values (sandboxapi may not import retry).
func TestLevelsInStep(t *testing.T) {
	for _, tc := range []struct {
		api  sandboxapi.Level
		want retry.Idempotency
	}{
		{sandboxapi.Unknown, retry.IdempotencyUnknown},
		{sandboxapi.NoSideEffects, retry.NoSideEffects},
		{sandboxapi.Idempotent, retry.Idempotent},
		{sandboxapi.NotIdempotent, retry.NotIdempotent},
		{sandboxapi.Never, retry.NeverRetry},
	} {
		if got := retry.Idempotency(tc.api); got != tc.want {
			t.Errorf("retry.Idempotency(sandboxapi level %d) = %v, want %v", tc.api, got, tc.want)
		}
	}
}
