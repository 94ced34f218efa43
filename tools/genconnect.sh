#!/usr/bin/env bash
# genconnect.sh regenerates the connect-go code for the test sandbox service
# (internal/sandboxpb/sandbox.proto) into the connectfaultline module:
# connectfaultline/internal/sandboxpbconnect/sandbox.connect.go.
#
# Usage: tools/genconnect.sh [OUT_ROOT]
#
# The file is written under OUT_ROOT/connectfaultline/internal/sandboxpbconnect
# (OUT_ROOT defaults to the repository root; tools/checkgen.sh passes a
# temporary directory). protoc comes from the protobuf-compiler Debian package;
# protoc-gen-connect-go is pinned below, installed through the Go module proxy
# into a temporary GOBIN, and must be the version of connectrpc.com/connect
# that connectfaultline/go.mod requires (checked). The message types are not
# generated again: the code imports them from the parent module's
# internal/sandboxpb, as the .proto's go_package says.
# Run through `go generate ./connectfaultline/internal/sandboxpbconnect`.
set -euo pipefail

PROTOC_GEN_CONNECT_GO_VERSION=v1.21.1 # keep equal to connectrpc.com/connect in connectfaultline/go.mod
PROTO=internal/sandboxpb/sandbox.proto
DEST=connectfaultline/internal/sandboxpbconnect

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root}

if ! command -v protoc >/dev/null 2>&1; then
	echo "genconnect: protoc not found; install it with: apt-get install -y protobuf-compiler" >&2
	exit 1
fi

required=$(cd "$root/connectfaultline" && GOWORK=off GOFLAGS= go list -m -f '{{.Version}}' connectrpc.com/connect)
if [ "$required" != "$PROTOC_GEN_CONNECT_GO_VERSION" ]; then
	echo "genconnect: protoc-gen-connect-go is pinned at $PROTOC_GEN_CONNECT_GO_VERSION but connectfaultline/go.mod requires connectrpc.com/connect $required" >&2
	exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# GOFLAGS is cleared: flags such as -mod=mod are rejected by `go install pkg@version`.
GOFLAGS= GOBIN="$tmp/bin" go install "connectrpc.com/connect/cmd/protoc-gen-connect-go@$PROTOC_GEN_CONNECT_GO_VERSION"

# The import path is relative to the repository root, as in tools/genproto.sh:
# the generated code looks the services up in the descriptor registered as
# internal/sandboxpb/sandbox.proto. The plugin writes into <go_package dir>/
# sandboxpbconnect/; the file is then moved into the connectfaultline module.
cd "$root"
mkdir -p "$tmp/gen"
protoc \
	--plugin=protoc-gen-connect-go="$tmp/bin/protoc-gen-connect-go" \
	-I . \
	--connect-go_out="$tmp/gen" --connect-go_opt=paths=source_relative \
	"$PROTO"
mkdir -p "$out/$DEST"
cp "$tmp/gen/internal/sandboxpb/sandboxpbconnect/sandbox.connect.go" "$out/$DEST/sandbox.connect.go"
