package classify

import (
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
	aip "github.com/faultline-go/faultline/internal/details"
	"github.com/faultline-go/faultline/internal/sandboxapi"
)

// LocalFailure, Family and Kind expose steps of Classify to this package's tests; Family
// names a family by its base kind.
func LocalFailure(st *status.Status) bool { return localFailure(st) }

func (c *Classifier) Family(method string) errs.Kind { return baseKind(c.family(method)) }

func (c *Classifier) Kind(code codes.Code, info aip.Info, call Call) errs.Kind {
	return c.kind(code, info, call)
}

// KnownReasons returns, sorted, the reasons the built-in rules know, for the test that keeps
// the package documentation's tables in agreement with the code: the reasons that pick a kind
// on some family, and the transient ones.
func KnownReasons() (picking, transient []string) {
	for reason, r := range sandboxapi.Reasons {
		if r.Kind.Valid() {
			picking = append(picking, reason)
		}
		if r.Transient {
			transient = append(transient, reason)
		}
	}
	picking = append(picking, sandboxapi.RunnerNotFound)
	slices.Sort(picking)
	slices.Sort(transient)
	return picking, transient
}

// LocalPrefixes returns the codes and message beginnings of the failures grpc-go makes on the
// client, in order, for the test that keeps the package documentation's table of them in
// agreement with the code.
func LocalPrefixes() (codes []codes.Code, prefixes []string) {
	for _, p := range localPrefixes {
		codes, prefixes = append(codes, p.code), append(prefixes, p.prefix)
	}
	return codes, prefixes
}
