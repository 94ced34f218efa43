package retry

// ThrottleCounts returns the attempts accepted, rejected for overload and shed in t's
// window now, for this package's tests.
func ThrottleCounts(t *AdaptiveThrottle) (accepts, rejects, shed int64) {
	cur := t.bin().slice.Load()
	for i := range t.bins {
		o := &t.bins[i]
		if s := o.slice.Load(); s > cur-throttleBins && s <= cur {
			accepts += o.accepts.Load()
			rejects += o.rejects.Load()
			shed += o.shed.Load()
		}
	}
	return accepts, rejects, shed
}

// RecordThrottle tells t how an admitted attempt ended (sent, and rejected for overload),
// as the loop does, for this package's tests.
func RecordThrottle(t *AdaptiveThrottle, sent, rejected bool) { t.record(sent, rejected) }
