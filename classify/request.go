package classify

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/faultline-go/faultline/internal/sandboxapi"
)

// CallFromRequest returns the Call for method with the resources read from a request
// message's string fields sandbox_id, path, file_system_snapshot_id, runner_id and
// profile_name: at the
// top level first, then in the set message fields one level down (so the sandbox id of a
// StreamExec init message, or of a CreateSandboxRequest's sandbox, is found). A request that
// is not a proto message gives a Call with only the method.
func CallFromRequest(method string, req any) Call {
	call := Call{Method: method}
	m, ok := req.(proto.Message)
	if !ok || m == nil {
		return call
	}
	msg := m.ProtoReflect()
	if !msg.IsValid() {
		return call
	}
	fill(&call, msg)
	if r := call.Resource; r.SandboxID != "" && r.FilePath != "" && r.SnapshotID != "" && r.RunnerID != "" && r.ProfileName != "" {
		return call
	}
	// The set message fields in declaration order (a loop, not msg.Range, whose callback
	// would move call to the heap).
	fields := msg.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if fd.Kind() == protoreflect.MessageKind && fd.Cardinality() != protoreflect.Repeated && msg.Has(fd) {
			fill(&call, msg.Get(fd).Message())
		}
	}
	return call
}

// fill sets the resource fields still empty from msg's string fields of the same names.
func fill(call *Call, msg protoreflect.Message) {
	fields := msg.Descriptor().Fields()
	for i, name := range sandboxapi.ResourceFields {
		dst := sandboxapi.ResourceField(&call.Resource, i)
		if *dst != "" {
			continue
		}
		fd := fields.ByName(protoreflect.Name(name))
		if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() || fd.IsMap() {
			continue
		}
		*dst = msg.Get(fd).String()
	}
}
