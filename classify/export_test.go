package classify

import (
	"maps"
	"slices"
)

// KnownReasons returns, sorted, the reasons the built-in rules know, for the test that keeps
// the package documentation's tables in agreement with the code: the reasons that pick a kind
// on some family, and the transient ones.
func KnownReasons() (picking, transient []string) {
	picking = append(slices.Collect(maps.Keys(sandboxReasons)), reasonRunnerNotFound)
	slices.Sort(picking)
	return picking, slices.Sorted(maps.Keys(transientReasons))
}
