#!/usr/bin/env bash
# checkgen.sh fails if the committed generated code (internal/sandboxpb,
# internal/testpb, connectfaultline/internal/sandboxpbconnect) is not what
# tools/genproto.sh and tools/genconnect.sh produce from the .proto files.
#
# It regenerates into a temporary directory (the work tree is left alone) and
# compares every *.pb.go file there with every *.pb.go file committed under
# internal/, and every *.connect.go file with every *.connect.go file
# committed under connectfaultline/internal/, path by path, so a changed,
# missing or extra generated file fails the check.
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
bash "$root/tools/genconnect.sh" "$tmp/gen"

# copy_gen SRC DST copies SRC/internal/**/*.pb.go and
# SRC/connectfaultline/internal/**/*.connect.go to DST, keeping their paths.
copy_gen() {
	mkdir -p "$2"
	(cd "$1" && find internal -name '*.pb.go' -print0 &&
		{ [ ! -d connectfaultline/internal ] || find connectfaultline/internal -name '*.connect.go' -print0; }) |
		while IFS= read -r -d '' f; do
			mkdir -p "$2/$(dirname "$f")"
			cp "$1/$f" "$2/$f"
		done
}
copy_gen "$root" "$tmp/want"
copy_gen "$tmp/gen" "$tmp/got"

if ! diff -r -u \
	-I '^// 	protoc  *v' \
	-I '^// - protoc  *v' \
	"$tmp/want" "$tmp/got"; then
	echo "checkgen: generated code is out of date; run: go generate ./internal/sandboxpb ./connectfaultline/internal/sandboxpbconnect" >&2
	exit 1
fi
echo "checkgen: generated code is up to date:" $(cd "$tmp/got" && find . -name '*.go' | sed 's|^\./||' | sort)
