package transport

import "github.com/faultline-go/faultline/internal/calls"

// IsStreamLogs exposes the check Build hands package calls to this package's tests.
func (r Rules) IsStreamLogs(f calls.Resumer) bool { return r.isStreamLogs(f) }
