// Package sandboxpbconnect holds the connect-go code generated for the test
// sandbox service (internal/sandboxpb/sandbox.proto of the parent module):
// clients and handlers of SandboxService and DiscoveryService, whose message
// types are the parent's internal/sandboxpb. Do not edit sandbox.connect.go:
// run `go generate ./connectfaultline/internal/sandboxpbconnect` (needs protoc
// from the protobuf-compiler Debian package; protoc-gen-connect-go is pinned
// in tools/genconnect.sh to the connect-go version of this module's go.mod).
// tools/checkgen.sh checks that it is up to date.
package sandboxpbconnect

//go:generate bash ../../../tools/genconnect.sh
