package classify_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/testing/protocmp"
	"google.golang.org/protobuf/types/known/anypb"

	aip "github.com/faultline-go/faultline/internal/details"
)

// Helpers the tests of this package share.

const (
	errorInfoURL  = "type.googleapis.com/google.rpc.ErrorInfo"
	retryInfoURL  = "type.googleapis.com/google.rpc.RetryInfo"
	badRequestURL = "type.googleapis.com/google.rpc.BadRequest"
)

// normInfo makes empty violation and detail lists nil, the one difference between two Infos
// that does not matter.
func normInfo(info aip.Info) aip.Info {
	if len(info.Violations) == 0 {
		info.Violations = nil
	}
	if len(info.Other) == 0 {
		info.Other = nil
	}
	return info
}

// diffInfo compares two Infos exactly (a nil and an empty Metadata differ; other details by
// protocmp), except for empty versus nil lists.
func diffInfo(got, want aip.Info) string {
	return cmp.Diff(normInfo(want), normInfo(got), protocmp.Transform())
}

// rawStatus returns a status whose details are the given Any messages, as sent: unlike
// faultlinetest.Status, it keeps nil details and invalid UTF-8.
func rawStatus(c codes.Code, msg string, details ...*anypb.Any) *status.Status {
	return status.FromProto(&spb.Status{Code: int32(c), Message: msg, Details: details})
}

// anyOf packs m, failing tb on error.
func anyOf(tb testing.TB, m proto.Message) *anypb.Any {
	tb.Helper()
	a, err := anypb.New(m)
	if err != nil {
		tb.Fatalf("anypb.New: %v", err)
	}
	return a
}

// marshal encodes m deterministically, failing tb on error.
func marshal(tb testing.TB, m proto.Message) []byte {
	tb.Helper()
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		tb.Fatalf("proto.Marshal: %v", err)
	}
	return b
}
