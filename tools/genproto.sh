#!/usr/bin/env bash
# genproto.sh regenerates the Go code for every .proto of the project:
# internal/sandboxpb/sandbox.proto and internal/testpb/echo.proto.
#
# Usage: tools/genproto.sh [OUT_ROOT]
#
# The generated files are written under OUT_ROOT/internal/<package>
# (OUT_ROOT defaults to the repository root; tools/checkgen.sh passes a
# temporary directory). protoc comes from the protobuf-compiler Debian package;
# the two Go plugins are pinned below and installed through the Go module
# proxy into a temporary GOBIN, so every machine runs the same generator code.
# Run through `go generate ./internal/sandboxpb` or `go generate ./internal/testpb`
# (either regenerates both).
set -euo pipefail

PROTOC_GEN_GO_VERSION=v1.36.12      # keep equal to google.golang.org/protobuf in go.mod
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

# PROTOS lists the .proto files, relative to the repository root; each
# generates into its own directory. tools/checkgen.sh checks the same list.
PROTOS="internal/sandboxpb/sandbox.proto internal/testpb/echo.proto"

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$root}

if ! command -v protoc >/dev/null 2>&1; then
	echo "genproto: protoc not found; install it with: apt-get install -y protobuf-compiler" >&2
	exit 1
fi

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT

# GOFLAGS is cleared: flags such as -mod=mod are rejected by `go install pkg@version`.
GOFLAGS= GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
GOFLAGS= GOBIN="$bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"

mkdir -p "$out"
# Import paths are relative to the repository root, so each file registers
# in the protobuf registry under its path (internal/sandboxpb/sandbox.proto).
# One protoc run per file, so that each output depends on its own .proto only.
cd "$root"
for proto in $PROTOS; do
	protoc \
		--plugin=protoc-gen-go="$bin/protoc-gen-go" \
		--plugin=protoc-gen-go-grpc="$bin/protoc-gen-go-grpc" \
		-I . \
		--go_out="$out" --go_opt=paths=source_relative \
		--go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
		"$proto"
done
