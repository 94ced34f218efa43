// Package testpb holds the generated Go code for echo.proto (protobuf
// package faultline.test.v1): a tiny Echo service whose methods declare
// different idempotency levels, for faultline's tests of descriptor-based
// idempotency. Do not edit the *.pb.go files: edit echo.proto and run
// `go generate ./internal/testpb` (it regenerates every .proto of the
// project; see tools/genproto.sh). tools/checkgen.sh checks that they are up
// to date. The in-process server is in internal/echotest.
package testpb

//go:generate bash ../../tools/genproto.sh
