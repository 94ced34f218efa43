package classify

import (
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// localPrefixes begin the messages of the failures grpc-go makes on the client and would
// make again for the same call, by the code grpc-go gives them (grpc-go rpc_util.go,
// stream.go, credentials/tls.go and internal/transport): size limits, codec and compression
// errors, and a server certificate the client's TLS configuration rejects (crypto/tls
// reports every failed verification as "tls: failed to verify certificate: ..."; grpc-go
// wraps it in its connection error). A handshake that timed out or was reset reads
// differently and is not one of them: it may succeed next time.
var localPrefixes = [...]struct {
	code   codes.Code
	prefix string
}{
	{codes.ResourceExhausted, "grpc: received message larger than max"},
	{codes.ResourceExhausted, "grpc: message too large"},
	{codes.ResourceExhausted, "trying to send message larger than max"},
	{codes.ResourceExhausted, "grpc: message after decompression larger than max"},
	{codes.ResourceExhausted, "grpc: received message after decompression larger than max"},
	{codes.Internal, "grpc: error while marshaling"},
	{codes.Internal, "grpc: error while compressing"},
	{codes.Internal, "grpc: failed to decompress"},
	{codes.Internal, "grpc: failed to read decompressed data"},
	{codes.Internal, "grpc: no decompressor available"},
	{codes.Internal, "grpc: failed to unmarshal the received message"},
	{codes.Internal, "grpc: Compressor is not installed"},
	{codes.Internal, "grpc: peer compressed the response with"},
	{codes.Internal, "no codec registered for content-subtype"},
	{codes.Internal, "SendMsg called after CloseSend"},
	{codes.Unavailable, `connection error: desc = "transport: authentication handshake failed: tls: failed to verify certificate: `},
}

// localFailure reports whether st is a deterministic local failure: one grpc-go made on the
// client, which the same call would make again. grpc-go gives such failures no details, so
// a status with details (a server's) is never one: a server that sends grpc-go's words
// keeps the kind of its code.
func localFailure(st *status.Status) bool {
	code := st.Code()
	switch code {
	case codes.ResourceExhausted, codes.Internal, codes.Unavailable:
	default:
		return false
	}
	msg := st.Message()
	for _, p := range localPrefixes {
		if p.code == code && strings.HasPrefix(msg, p.prefix) {
			return len(st.Proto().GetDetails()) == 0
		}
	}
	return false
}

// transportPrefixes begin the messages of the UNAVAILABLE statuses grpc-go makes on the
// client when the connection, not the server's handler, ended the call (grpc-go
// internal/transport: http2_client.go's reader and Close, transport.go's errors; rpc_util.go
// toRPCErr; picker_wrapper.go and balancer_wrapper.go): a read that failed, a connection
// closed or reset, a dial that failed, a connection draining after the server's GOAWAY, a
// stream reset without a status. A status the server sent (its grpc-status), or an HTTP
// status a proxy answered with, is not one of them.
var transportPrefixes = [...]string{
	"error reading from server",
	"connection error: desc = ",
	"transport is closing",
	"closing transport due to: ",
	"the connection is draining",
	"the stream is rejected because server is draining the connection",
	"stream terminated by RST_STREAM with error code: ",
	"SubConn state is not Ready",
}

// transportFailure reports whether st is a failure of the connection that grpc-go made on
// the client, rather than a status the server sent: the message begins as grpc-go's
// transport failures do, and the status has no details (a server's may).
func transportFailure(st *status.Status) bool {
	if st.Code() != codes.Unavailable {
		return false
	}
	msg := st.Message()
	for _, p := range transportPrefixes {
		if strings.HasPrefix(msg, p) {
			return len(st.Proto().GetDetails()) == 0
		}
	}
	return false
}

// madeHere reports whether err itself says it is a failure the client made, not one of a
// server's (faultline's own client-side throttling sheds an attempt with such an error): it
// has a method Local() bool that returns true.
func madeHere(err error) bool {
	l, ok := err.(interface{ Local() bool })
	return ok && l.Local()
}

// connectionEnded reports whether err itself says that the connection, not the server, ended
// the call (a transport that reads it from the error's facts, as connectfaultline does for
// connect-go's resets and failed dials): it has a method Transport() bool that returns true.
func connectionEnded(err error) bool {
	t, ok := err.(interface{ Transport() bool })
	return ok && t.Transport()
}
