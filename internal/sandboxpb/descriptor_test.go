package sandboxpb_test

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/faultline-go/faultline/internal/sandboxpb"
)

// TestNoIdempotencyLevels checks that sandbox.proto declares no
// idempotency_level, as the real API publishes none: the retry class of
// its methods must come from faultline's built-in table, and tests of that
// table would pass for the wrong reason if the descriptor decided first.
func TestNoIdempotencyLevels(t *testing.T) {
	services := sandboxpb.File_internal_sandboxpb_sandbox_proto.Services()
	for i := range services.Len() {
		methods := services.Get(i).Methods()
		for j := range methods.Len() {
			m := methods.Get(j)
			opts, _ := m.Options().(*descriptorpb.MethodOptions)
			if got := opts.GetIdempotencyLevel(); got != descriptorpb.MethodOptions_IDEMPOTENCY_UNKNOWN {
				t.Errorf("idempotency_level(%s) = %v, want none", m.FullName(), got)
			}
		}
	}
	// The methods the safe-retries tests call are there, with their request_id.
	for _, name := range []protoreflect.FullName{
		"coreweave.sandbox.v1.SandboxService.Exec",
		"coreweave.sandbox.v1.SandboxService.CreateFileSystemSnapshot",
	} {
		if d := services.ByName("SandboxService").Methods().ByName(name.Name()); d == nil {
			t.Errorf("method %s missing", name)
		}
	}
	for _, m := range []protoreflect.ProtoMessage{
		&sandboxpb.CreateSandboxRequest{}, &sandboxpb.CreateFileSystemSnapshotRequest{}, &sandboxpb.DeleteSandboxRequest{},
	} {
		fd := m.ProtoReflect().Descriptor().Fields().ByName("request_id")
		if fd == nil || fd.Kind() != protoreflect.StringKind {
			t.Errorf("%s.request_id = %v, want a string field", m.ProtoReflect().Descriptor().FullName(), fd)
		}
	}
}
