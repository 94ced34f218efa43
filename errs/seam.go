package errs

import (
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/internal/details"
	"github.com/faultline-go/faultline/internal/seam"
)

func init() {
	seam.NewError = fromStatus
	seam.FactsOf = func(e *Error) seam.Facts { return e.facts }
}

// Compile-time check of the types internal/seam documents.
var (
	_ func(Kind, *status.Status, error, details.Info, Resource, seam.Facts) *Error = fromStatus
)
