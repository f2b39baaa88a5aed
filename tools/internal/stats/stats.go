// Package stats summarises the samples the load tools measure.
package stats

import "slices"

// Percentile returns the p-quantile (0 ≤ p ≤ 1) of xs: the sample at index
// ⌊p·(n−1)⌋ of xs sorted, so 0.5 is the median and 1 the maximum. It
// returns 0 for no samples and leaves xs as it was.
func Percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[int(p*float64(len(s)-1))]
}

// Median is Percentile(xs, 0.5).
func Median(xs []float64) float64 { return Percentile(xs, 0.5) }
