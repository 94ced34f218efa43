package bench

import (
	"fmt"
	"math"
	"slices"
)

// samples is a set of measurements of one quantity.
type samples []float64

// quantile returns the q-quantile (0 <= q <= 1) by linear interpolation between closest
// ranks, or NaN for no samples.
func (s samples) quantile(q float64) float64 {
	if len(s) == 0 {
		return math.NaN()
	}
	x := slices.Clone(s)
	slices.Sort(x)
	pos := q * float64(len(x)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	return x[lo] + (x[hi]-x[lo])*(pos-float64(lo))
}

func (s samples) median() float64 { return s.quantile(0.5) }
func (s samples) min() float64    { return s.quantile(0) }
func (s samples) max() float64    { return s.quantile(1) }

// count returns how many samples satisfy f.
func (s samples) count(f func(float64) bool) int {
	n := 0
	for _, x := range s {
		if f(x) {
			n++
		}
	}
	return n
}

// iqr formats the median with the 25th-75th percentiles: "1.02 (0.99-1.05)".
func (s samples) iqr(format func(float64) string) string {
	if len(s) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%s (%s-%s)", format(s.median()), format(s.quantile(0.25)), format(s.quantile(0.75)))
}

// span formats the median with the min and max: "52.1 ms (50.3-54.9)".
func (s samples) span(format func(float64) string) string {
	if len(s) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%s (%s-%s)", format(s.median()), format(s.min()), format(s.max()))
}

// Number formats.

func ratio(x float64) string   { return fmt.Sprintf("%.3f", x) }
func fixed1(x float64) string  { return fmt.Sprintf("%.1f", x) }
func fixed2(x float64) string  { return fmt.Sprintf("%.2f", x) }
func signed1(x float64) string { return fmt.Sprintf("%+.1f", x) }
func percent(x float64) string { return fmt.Sprintf("%.1f%%", 100*x) }

// nanos formats nanoseconds with a unit that keeps three significant digits.
func nanos(ns float64) string {
	switch a := math.Abs(ns); {
	case a >= 1e9:
		return fmt.Sprintf("%.3g s", ns/1e9)
	case a >= 1e6:
		return fmt.Sprintf("%.3g ms", ns/1e6)
	case a >= 1e3:
		return fmt.Sprintf("%.3g µs", ns/1e3)
	default:
		return fmt.Sprintf("%.3g ns", ns)
	}
}

// millis formats nanoseconds as milliseconds with one decimal.
func millis(ns float64) string { return fmt.Sprintf("%.1f ms", ns/1e6) }
