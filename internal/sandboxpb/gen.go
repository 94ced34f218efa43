// Package sandboxpb holds the generated Go code for a subset of the sandbox
// service API (protobuf package coreweave.sandbox.v1), used by faultline's
// tests, examples and integration tests. Do not edit the *.pb.go files: edit
// sandbox.proto and run `go generate ./internal/sandboxpb` (needs protoc from
// the protobuf-compiler Debian package; the Go plugins are pinned in
// tools/genproto.sh). tools/checkgen.sh checks that they are up to date.
package sandboxpb

//go:generate bash ../../tools/genproto.sh
