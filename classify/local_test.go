package classify_test

import (
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/internal/seam"
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

// TestTransportFailure (overload.md, rule 4): the UNAVAILABLE grpc-go makes when the
// connection ended a call (a read that hit EOF, a reset, a failed dial, a drain, a stream
// reset without a status) is marked as the connection's doing, so client-side throttling
// does not count it as the server rejecting work; a status the server sent, or an HTTP
// status a proxy answered with, is not. The kind is the code's either way.
func TestTransportFailure(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		transport bool
	}{
		{"read hit EOF", faultlinetest.Error(codes.Unavailable, "error reading from server: EOF"), true},
		{"connection reset", faultlinetest.Error(codes.Unavailable, `connection error: desc = "error reading server preface: read tcp: connection reset by peer"`), true},
		{"dial refused", faultlinetest.Error(codes.Unavailable, `connection error: desc = "transport: Error while dialing: dial tcp: connect: connection refused"`), true},
		{"transport closing", faultlinetest.Error(codes.Unavailable, "transport is closing"), true},
		{"goaway", faultlinetest.Error(codes.Unavailable, "closing transport due to: connection error: desc = \"...\", received prior goaway: code: NO_ERROR"), true},
		{"draining", faultlinetest.Error(codes.Unavailable, "the connection is draining"), true},
		{"stream reset", faultlinetest.Error(codes.Unavailable, "stream terminated by RST_STREAM with error code: REFUSED_STREAM"), true},
		{"the server's UNAVAILABLE", faultlinetest.Error(codes.Unavailable, "overloaded"), false},
		{"the server's words with details", faultlinetest.Error(codes.Unavailable, "transport is closing", faultlinetest.RetryInfo(time.Second)), false},
		{"a proxy's 503", faultlinetest.Error(codes.Unavailable, "unexpected HTTP status code received from server: 503 (Service Unavailable)"), false},
		{"another code", faultlinetest.Error(codes.Internal, "error reading from server: EOF"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := classify.New().Classify(tc.err, sandboxCall)
			if got := seam.FactsOf.(func(*errs.Error) seam.Facts)(e).Transport; got != tc.transport {
				t.Errorf("Classify(%v): Transport = %v, want %v", tc.err, got, tc.transport)
			}
			if tc.transport && e.Kind() != errs.ErrSandboxUnavailable {
				t.Errorf("Classify(%v) = %v, want %v", tc.err, e.Kind(), errs.ErrSandboxUnavailable)
			}
		})
	}
}

// saidTransport is an error that says whether the connection ended its call.
type saidTransport struct{ transport bool }

func (e saidTransport) Error() string { return "unavailable: read: connection reset by peer" }
func (e saidTransport) GRPCStatus() *status.Status {
	return status.New(codes.Unavailable, "read: connection reset by peer")
}
func (e saidTransport) Transport() bool { return e.transport }

// TestTransportSaidByError: an error whose Transport method says the connection ended the
// call (connectfaultline's, read from connect-go's error chain) is marked as the
// connection's doing, whatever its message; one whose method says no is not.
func TestTransportSaidByError(t *testing.T) {
	for _, said := range []bool{true, false} {
		e := classify.New().Classify(saidTransport{said}, sandboxCall)
		if got := seam.FactsOf.(func(*errs.Error) seam.Facts)(e).Transport; got != said {
			t.Errorf("Classify(Transport() = %v): Transport = %v, want %v", said, got, said)
		}
		if e.Kind() != errs.ErrSandboxUnavailable {
			t.Errorf("Classify(Transport() = %v) = %v, want %v", said, e.Kind(), errs.ErrSandboxUnavailable)
		}
	}
}
