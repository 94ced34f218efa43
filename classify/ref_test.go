package classify_test

import (
	"encoding/base64"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
)

// This file holds the reference implementation of the parse rules of classification.md
// section 1, written over proto.Unmarshal into the errdetails types, and the helpers the
// tests share. The differential tests and fuzz targets hold classify's hand-written wire
// reader to it.

const (
	errorInfoURL  = "type.googleapis.com/google.rpc.ErrorInfo"
	retryInfoURL  = "type.googleapis.com/google.rpc.RetryInfo"
	badRequestURL = "type.googleapis.com/google.rpc.BadRequest"
)

// refParse applies the parse rules to details with proto.Unmarshal.
func refParse(details []*anypb.Any) errs.Info {
	var info errs.Info
	haveError := false
	for _, a := range details {
		switch {
		case a.MessageIs(&errdetails.ErrorInfo{}):
			var m errdetails.ErrorInfo
			if haveError || a.UnmarshalTo(&m) != nil || m.GetReason() == "" {
				continue
			}
			haveError = true
			md := map[string]string{}
			maps.Copy(md, m.GetMetadata())
			info.Reason, info.Domain, info.Metadata = m.GetReason(), m.GetDomain(), md
		case a.MessageIs(&errdetails.RetryInfo{}):
			var m errdetails.RetryInfo
			if info.HasRetryDelay || a.UnmarshalTo(&m) != nil || m.GetRetryDelay() == nil {
				continue
			}
			if d, ok := refDuration(m.GetRetryDelay()); ok {
				info.RetryDelay, info.HasRetryDelay = d, true
			}
		case a.MessageIs(&errdetails.BadRequest{}):
			var m errdetails.BadRequest
			if a.UnmarshalTo(&m) != nil {
				continue
			}
			for _, v := range m.GetFieldViolations() {
				desc := v.GetDescription()
				if desc == "" {
					desc = v.GetLocalizedMessage().GetMessage()
				}
				if desc == "" {
					desc = v.GetReason()
				}
				if v.GetField() == "" && desc == "" {
					continue
				}
				info.FieldViolations = append(info.FieldViolations, errs.FieldViolation{Field: v.GetField(), Description: desc})
			}
		}
	}
	return info
}

// refDuration converts d when it passes CheckValid, clamping a value too long for
// time.Duration to its range (classification.md section 1 rule 3): the protobuf library's
// own AsDuration.
func refDuration(d *durationpb.Duration) (time.Duration, bool) {
	if d.CheckValid() != nil {
		return 0, false
	}
	return d.AsDuration(), true
}

func refUsable(info errs.Info) bool {
	return info.Reason != "" || info.HasRetryDelay || len(info.FieldViolations) > 0
}

// refTrailer applies the raw-trailer rules with proto.Unmarshal: keys matched
// case-insensitively (the canonical spelling first, then the others sorted), values in
// order, each as binary then as base64 text; the first usable one wins.
func refTrailer(md metadata.MD) errs.Info {
	var keys []string
	for k := range md {
		if strings.EqualFold(k, classify.StatusDetailsKey) {
			keys = append(keys, k)
		}
	}
	slices.SortFunc(keys, func(a, b string) int {
		switch {
		case a == b:
			return 0
		case a == classify.StatusDetailsKey:
			return -1
		case b == classify.StatusDetailsKey:
			return 1
		}
		return strings.Compare(a, b)
	})
	for _, k := range keys {
		for _, v := range md[k] {
			if info, ok := refStatus([]byte(v)); ok {
				return info
			}
			s := strings.TrimSpace(v)
			for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
				raw, err := enc.DecodeString(s)
				if err != nil {
					continue
				}
				if info, ok := refStatus(raw); ok {
					return info
				}
				break
			}
		}
	}
	return errs.Info{}
}

func refStatus(b []byte) (errs.Info, bool) {
	var sp spb.Status
	if proto.Unmarshal(b, &sp) != nil {
		return errs.Info{}, false
	}
	info := refParse(sp.GetDetails())
	return info, refUsable(info)
}

// normInfo makes an empty violation list nil, the one difference between two Infos that
// does not matter.
func normInfo(info errs.Info) errs.Info {
	if len(info.FieldViolations) == 0 {
		info.FieldViolations = nil
	}
	return info
}

// diffInfo compares two Infos exactly (a nil and an empty Metadata differ), except for an
// empty versus nil violation list.
func diffInfo(got, want errs.Info) string {
	return cmp.Diff(normInfo(want), normInfo(got))
}

// withDetails returns a status of code c and message msg with details, failing tb on error.
func withDetails(tb testing.TB, c codes.Code, msg string, details ...protoadapt.MessageV1) *status.Status {
	tb.Helper()
	st, err := status.New(c, msg).WithDetails(details...)
	if err != nil {
		tb.Fatalf("WithDetails: %v", err)
	}
	return st
}

// rawStatus returns a status whose details are the given Any messages, as sent.
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
