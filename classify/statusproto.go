package classify

import (
	"unsafe"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// statusDetails returns the details of st for reading only.
//
// The public accessor, (*status.Status).Proto, deep-copies the whole status through
// reflection: on the error path that copy costs more than everything else the classifier
// does (about 1 us and 10 allocations for three details). grpc-go's Status is a struct
// holding one *spb.Status; when a probe at start-up confirms that layout with the running
// grpc-go version, the details are read in place, never modified and never retained (the
// parser copies what it keeps). If the probe fails, as it would after a change in grpc-go,
// the copy is used: slower, never wrong.
func statusDetails(st *status.Status) []*anypb.Any {
	if inPlace {
		if p := *(**spb.Status)(unsafe.Pointer(st)); p != nil {
			return p.GetDetails()
		}
		return nil
	}
	return st.Proto().GetDetails()
}

var inPlace = probeLayout()

func probeLayout() bool {
	var s status.Status
	if unsafe.Sizeof(s) != unsafe.Sizeof((*spb.Status)(nil)) {
		return false
	}
	probe, err := status.New(codes.Aborted, "layout probe").WithDetails(&errdetails.ErrorInfo{Reason: "PROBE"})
	if err != nil {
		return false
	}
	p := *(**spb.Status)(unsafe.Pointer(probe))
	return p != nil && p.GetCode() == int32(codes.Aborted) && proto.Equal(p, probe.Proto())
}
