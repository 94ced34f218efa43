#!/usr/bin/env bash
# checkgen.sh fails if the committed generated code in internal/sandboxpb is
# not what tools/genproto.sh produces from sandbox.proto.
#
# It regenerates into a temporary directory (the work tree is left alone) and
# compares the *.pb.go files there with the ones in internal/sandboxpb, so a
# changed, missing or extra generated file fails the check.
#
# The generated headers record the protoc version (`// 	protoc        vX` and
# `// - protoc             vX`). Neither plugin has an option to leave it
# out, and protoc comes from whatever Debian release the machine runs, so
# those two header lines alone are ignored (diff -I). The plugins are pinned,
# so every other byte must match; in particular, the embedded raw descriptor
# is compared, so a protoc that compiled the .proto differently still fails.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

bash "$root/tools/genproto.sh" "$tmp/gen"

mkdir -p "$tmp/want" "$tmp/got"
cp "$root"/internal/sandboxpb/*.pb.go "$tmp/want"/ 2>/dev/null || true
cp "$tmp"/gen/internal/sandboxpb/*.pb.go "$tmp/got"/

if ! diff -r -u \
	-I '^// 	protoc  *v' \
	-I '^// - protoc  *v' \
	"$tmp/want" "$tmp/got"; then
	echo "checkgen: internal/sandboxpb is out of date; run: go generate ./internal/sandboxpb" >&2
	exit 1
fi
echo "checkgen: internal/sandboxpb is up to date"
