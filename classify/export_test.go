package classify

import (
	"google.golang.org/grpc/codes"

	"github.com/faultline-go/faultline/errs"
)

// Usable, Family and Kind expose steps of Classify to this package's tests.
var Usable = usable

func (c *Classifier) Family(method string) Family { return c.family(method) }

func (c *Classifier) Kind(code codes.Code, info errs.Info, call Call) errs.Kind {
	return c.kind(code, info, call)
}
