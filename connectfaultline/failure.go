package connectfaultline

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"syscall"

	"connectrpc.com/connect"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// origin is where a failed attempt's error came from, as far as its facts tell.
type origin uint8

const (
	// fromServer: the server sent the status (connect.IsWireError): its code, message and
	// details are the server's word.
	fromServer origin = iota + 1
	// fromTransport: the transport failed under the call (a connection or stream reset, a
	// refused dial, a body cut short): the call may or may not have reached the handler,
	// and nothing was said about it. Its status is UNAVAILABLE, whatever code connect-go
	// gave it.
	fromTransport
	// fromClient: the client made the failure and would make it again (a message over a
	// size limit, a codec error, a server certificate the client rejects): never retried,
	// the family's base kind.
	fromClient
	// fromElsewhere: made on the client without the facts of the others (the caller's
	// context, an HTTP status from a proxy, a malformed response): connect-go's code.
	fromElsewhere
)

// failure is a failed attempt as the classifier reads it: the error the attempt returned,
// with the gRPC status that the *connect.Error's code, message and details make (connect-go
// codes are gRPC's numbering; each ErrorDetail's Type and Bytes rebuild a google.rpc.Status
// detail), and where it came from. It unwraps to the error as returned, so errors.As finds
// the *connect.Error and connect.CodeOf keeps answering; an error that holds no
// *connect.Error (one made by faultline, or by an interceptor further down) unwraps to a
// *connect.Error made for it, with the code of its status.
type failure struct {
	err     error // as the attempt returned it, or a *connect.Error wrapping that
	st      *status.Status
	origin  origin
	notSent bool // the request never left the client: its dial failed
	// body: the response's headers had arrived, so the server had answered: a status the
	// server sent (connect-go does not tell one sent with the response headers from one
	// sent alone, so every one counts), or a transport failure while the response body was
	// read (not an error of http.Client.Do).
	body bool
}

func (f *failure) Error() string              { return f.err.Error() }
func (f *failure) Unwrap() error              { return f.err }
func (f *failure) GRPCStatus() *status.Status { return f.st }

// Local reports whether the client made the failure and would make it again, for package
// classify: such a failure takes the family's base kind and is never retried.
func (f *failure) Local() bool { return f.origin == fromClient }

// Transport reports whether the transport ended the call (a reset, a failed dial), not the
// server, for package classify: such a failure is retried as any UNAVAILABLE is, but it is
// not the server rejecting work, which client-side throttling counts (overload.md, rule 4).
func (f *failure) Transport() bool { return f.origin == fromTransport }

// newFailure reads err, the failure of an attempt that came back when the caller's context
// had ended (callerEnded) or not. err must not be nil.
func newFailure(err error, callerEnded bool) *failure {
	f := &failure{err: err}
	ce, ok := errors.AsType[*connect.Error](err)
	if !ok || ce == nil {
		st, _ := status.FromError(err) // its own status (faultline's throttle), or UNKNOWN
		f.st, f.err = st, connect.NewError(connect.Code(st.Code()), err)
		f.origin = fromElsewhere
		if l, ok := err.(interface{ Local() bool }); ok && l.Local() {
			f.origin = fromClient
		}
		return f
	}
	f.origin, f.notSent, f.body = originOf(err, ce, callerEnded)
	code := codes.Code(ce.Code())
	if f.origin == fromTransport {
		code = codes.Unavailable
	}
	p := &spb.Status{Code: int32(code), Message: ce.Message()}
	if f.origin == fromServer {
		for _, d := range ce.Details() {
			p.Details = append(p.Details, &anypb.Any{TypeUrl: "type.googleapis.com/" + d.Type(), Value: d.Bytes()})
		}
	}
	f.st = status.FromProto(p)
	return f
}

// h2StreamError has the fields of net/http's (and golang.org/x/net/http2's) StreamError,
// whose As method fills any struct of that shape: an HTTP/2 RST_STREAM, from the peer or the
// client's own transport.
type h2StreamError struct {
	StreamID uint32
	Code     uint32
	Cause    error
}

func (h2StreamError) Error() string { return "http2 stream error" }

// originOf tells where err, holding ce, came from, by the facts in its chain (never by its
// text): whether the server sent it, whether the transport failed (and then whether the
// dial failed, so that nothing was sent, and whether the response had begun), or whether
// the client made it and would again. A failure that came back when the caller's context
// had ended (callerEnded), or that a context ended (connect-go's DEADLINE_EXCEEDED is
// always a deadline's, but for a dial that timed out), keeps connect-go's code.
func originOf(err error, ce *connect.Error, callerEnded bool) (o origin, notSent, body bool) {
	switch {
	case connect.IsWireError(err):
		return fromServer, false, true
	case callerEnded, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return fromElsewhere, false, false
	case certificateRejected(err), errors.Is(err, proto.Error):
		return fromClient, false, false
	}
	transport, dial, do := transportFailure(err)
	switch {
	case transport && (dial || ce.Code() != connect.CodeDeadlineExceeded):
		return fromTransport, dial, !do
	case !transport && ce.Code() == connect.CodeResourceExhausted:
		// connect-go's own read and send limits (connect.WithReadMaxBytes, WithSendMaxBytes):
		// the client refused the message. (An HTTP/2 ENHANCE_YOUR_CALM, which connect-go
		// also reports as RESOURCE_EXHAUSTED, carries a stream error: a transport failure.)
		return fromClient, false, false
	}
	return fromElsewhere, false, false
}

// transportFailure reports whether err's chain shows the transport failing under the call:
// a network error (a *net.OpError, a system error number, net.ErrClosed), an HTTP/2 stream
// error, a body cut short (io.ErrUnexpectedEOF), a failure of http.Client.Do (which always
// returns a *url.Error); and whether that was the dial, and whether it was http.Client.Do's
// (before the response headers arrived).
func transportFailure(err error) (transport, dial, do bool) {
	var op *net.OpError
	dial = errors.As(err, &op) && op.Op == "dial"
	var doErr *url.Error
	do = errors.As(err, &doErr)
	_, h2 := errors.AsType[h2StreamError](err)
	_, errno := errors.AsType[syscall.Errno](err)
	transport = op != nil || do || h2 || errno || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed)
	return transport, dial, do
}

// certificateRejected reports whether err holds the client's rejection of the server's
// certificate: crypto/tls's verification error, or x509's (a configuration's own
// VerifyPeerCertificate may return those directly).
func certificateRejected(err error) bool {
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.HostnameError](err); ok {
		return true
	}
	_, ok := errors.AsType[x509.CertificateInvalidError](err)
	return ok
}
