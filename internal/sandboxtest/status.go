package sandboxtest

import (
	"fmt"
	"maps"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/protoadapt"
	"google.golang.org/protobuf/types/known/durationpb"
)

// Domain is the ErrorInfo domain of the sandbox service.
const Domain = "cwsandbox.com"

// ErrorInfo reasons the Server itself returns.
const (
	ReasonSandboxNotFound = "CWSANDBOX_SANDBOX_NOT_FOUND" // metadata: sandbox_id
	ReasonFileNotFound    = "CWSANDBOX_FILE_NOT_FOUND"    // metadata: filepath
	ReasonFSSNotFound     = "CWSANDBOX_FSS_NOT_FOUND"     // metadata: file_system_snapshot_id
	ReasonRunnerNotFound  = "CWSANDBOX_RUNNER_NOT_FOUND"  // metadata: runner_id
)

// Status returns a status with code c, message msg and the given details
// (for example [ErrorInfo], [RetryInfo], [BadRequest]), in that order, the
// way the sandbox service builds its AIP-193 errors.
//
// Status panics if details are given with [codes.OK] or cannot be
// marshaled: it is meant for test setup, where that is a bug in the test.
func Status(c codes.Code, msg string, details ...proto.Message) *status.Status {
	st := status.New(c, msg)
	if len(details) == 0 {
		return st
	}
	v1 := make([]protoadapt.MessageV1, len(details))
	for i, d := range details {
		v1[i] = protoadapt.MessageV1Of(d)
	}
	st, err := st.WithDetails(v1...)
	if err != nil {
		panic(fmt.Sprintf("sandboxtest.Status(%v, %q): %v", c, msg, err))
	}
	return st
}

// ErrorInfo returns an ErrorInfo with the given reason and metadata in
// [Domain]. md is copied; it may be nil.
func ErrorInfo(reason string, md map[string]string) *errdetails.ErrorInfo {
	return ErrorInfoDomain(Domain, reason, md)
}

// ErrorInfoDomain is like [ErrorInfo] with another domain, for example to
// check that reasons from untrusted domains are not trusted.
func ErrorInfoDomain(domain, reason string, md map[string]string) *errdetails.ErrorInfo {
	return &errdetails.ErrorInfo{Reason: reason, Domain: domain, Metadata: maps.Clone(md)}
}

// RetryInfo returns a RetryInfo whose retry_delay is d.
func RetryInfo(d time.Duration) *errdetails.RetryInfo {
	return &errdetails.RetryInfo{RetryDelay: durationpb.New(d)}
}

// BadRequest returns a BadRequest with one field violation, plus one more for
// each further (field, description) pair in more. It panics if more has an
// odd length.
func BadRequest(field, description string, more ...string) *errdetails.BadRequest {
	if len(more)%2 != 0 {
		panic("sandboxtest.BadRequest: odd number of field/description strings")
	}
	br := &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: field, Description: description},
	}}
	for i := 0; i < len(more); i += 2 {
		br.FieldViolations = append(br.FieldViolations,
			&errdetails.BadRequest_FieldViolation{Field: more[i], Description: more[i+1]})
	}
	return br
}
