package classify_test

import (
	"testing"

	"google.golang.org/grpc/codes"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
)

// TestLocalFailureKinds (issue 16, instances 5 and 7; safety.md 1): a failure grpc-go made
// on the client and would make again (a message over a size limit, a codec error, a server
// certificate the client rejects) takes its family's base kind whatever its code; the same
// words from a server (with details, or without grpc-go's prefix), and a handshake cut short,
// keep the kind of their code.
func TestLocalFailureKinds(t *testing.T) {
	const tlsPrefix = `connection error: desc = "transport: authentication handshake failed: `
	base := map[classify.Call]errs.Kind{sandboxCall: errs.ErrSandbox, discoveryCall: errs.ErrDiscovery, otherCall: errs.ErrCWSandbox}
	for _, tc := range []struct {
		name    string
		err     error
		local   bool
		sandbox errs.Kind // the kind on a sandbox call when not local
	}{
		{name: "reply over the receive limit", local: true,
			err: faultlinetest.Error(codes.ResourceExhausted, "grpc: received message larger than max (4096 vs. 4)")},
		{name: "request over the send limit", local: true,
			err: faultlinetest.Error(codes.ResourceExhausted, "trying to send message larger than max (4096 vs. 2)")},
		{name: "codec error", local: true,
			err: faultlinetest.Error(codes.Internal, "grpc: error while marshaling: proto: invalid UTF-8")},
		{name: "unknown authority", local: true,
			err: faultlinetest.Error(codes.Unavailable, tlsPrefix+`tls: failed to verify certificate: x509: certificate signed by unknown authority"`)},
		{name: "name mismatch", local: true,
			err: faultlinetest.Error(codes.Unavailable, tlsPrefix+`tls: failed to verify certificate: x509: certificate is valid for a.example, not b.example"`)},
		{name: "handshake reset", sandbox: errs.ErrSandboxUnavailable,
			err: faultlinetest.Error(codes.Unavailable, tlsPrefix+`read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer"`)},
		{name: "handshake timed out", sandbox: errs.ErrSandboxUnavailable,
			err: faultlinetest.Error(codes.Unavailable, tlsPrefix+`context deadline exceeded"`)},
		{name: "a server's words, without grpc-go's prefix", sandbox: errs.ErrSandboxUnavailable,
			err: faultlinetest.Error(codes.Unavailable, "x509: certificate signed by unknown authority")},
		{name: "a server's status with details", sandbox: errs.ErrSandboxResourceExhausted,
			err: faultlinetest.Error(codes.ResourceExhausted, "grpc: received message larger than max (4096 vs. 4)",
				faultlinetest.QuotaFailure(faultlinetest.QuotaViolation("p", "bytes")))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, call := range []classify.Call{sandboxCall, discoveryCall, otherCall} {
				want := base[call]
				if !tc.local && call == sandboxCall {
					want = tc.sandbox
				}
				if got := classify.New().Classify(tc.err, call).Kind(); got != want {
					t.Errorf("Classify(%v) on %s = %v, want %v", tc.err, call.Method, got, want)
				}
			}
		})
	}
}
