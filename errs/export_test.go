package errs

import (
	"github.com/faultline-go/faultline/internal/details"

	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/internal/seam"
)

// FromStatus is fromStatus without classifier facts, for the tests of this package.
func FromStatus(kind Kind, st *status.Status, cause error, info details.Info, res Resource) *Error {
	return fromStatus(kind, st, cause, info, res, seam.Facts{})
}

// IsA exposes the kind relation to this package's tests.
func (k Kind) IsA(ancestor Kind) bool { return k.isA(ancestor) }

// ParseTraceback exposes the traceback parser to this package's tests and fuzz target.
var ParseTraceback = parseTraceback
