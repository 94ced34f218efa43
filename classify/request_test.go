package classify_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/genproto/googleapis/rpc/context/attribute_context"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
)

// requestFile declares test request messages shaped like the sandbox API's: the resource
// fields at the top level and inside a nested "init" message, plus fields that must not be
// read (a deeper level, a repeated message, fields of the wrong type).
func requestFile(t *testing.T) protoreflect.FileDescriptor {
	t.Helper()
	str := func(name string, num int32) *descriptorpb.FieldDescriptorProto {
		return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(num),
			Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()}
	}
	msg := func(name string, num int32, typ string, repeated bool) *descriptorpb.FieldDescriptorProto {
		label := descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL
		if repeated {
			label = descriptorpb.FieldDescriptorProto_LABEL_REPEATED
		}
		return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(num),
			Type: descriptorpb.FieldDescriptorProto_TYPE_MESSAGE.Enum(), Label: label.Enum(), TypeName: proto.String(typ)}
	}
	resources := func() []*descriptorpb.FieldDescriptorProto {
		return []*descriptorpb.FieldDescriptorProto{
			str("sandbox_id", 1), str("path", 2), str("file_system_snapshot_id", 3), str("runner_id", 4)}
	}
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("faultline/classify/request_test.proto"),
		Package: proto.String("faultline.test"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("Deep"), Field: resources()},
			{Name: proto.String("Init"), Field: append(resources(), msg("deep", 5, ".faultline.test.Deep", false))},
			{Name: proto.String("Request"), Field: append(resources(),
				msg("init", 5, ".faultline.test.Init", false),
				msg("others", 6, ".faultline.test.Init", true))},
			{Name: proto.String("OddRequest"), Field: []*descriptorpb.FieldDescriptorProto{
				{Name: proto.String("sandbox_id"), Number: proto.Int32(1), Type: descriptorpb.FieldDescriptorProto_TYPE_INT64.Enum(),
					Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()},
				{Name: proto.String("path"), Number: proto.Int32(2), Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(),
					Label: descriptorpb.FieldDescriptorProto_LABEL_REPEATED.Enum()},
				{Name: proto.String("runner_id"), Number: proto.Int32(3), Type: descriptorpb.FieldDescriptorProto_TYPE_BYTES.Enum(),
					Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()},
				msg("init", 5, ".faultline.test.Init", false),
			}},
		},
	}
	fd, err := protodesc.NewFile(fdp, new(protoregistry.Files))
	if err != nil {
		t.Fatalf("protodesc.NewFile: %v", err)
	}
	return fd
}

// fields is a set of string field values by name, for a dynamic message.
type fields map[string]string

func setFields(m protoreflect.Message, fs fields) {
	for name, v := range fs {
		fd := m.Descriptor().Fields().ByName(protoreflect.Name(name))
		switch {
		case fd.Kind() == protoreflect.StringKind && !fd.IsList():
			m.Set(fd, protoreflect.ValueOfString(v))
		case fd.Kind() == protoreflect.Int64Kind:
			m.Set(fd, protoreflect.ValueOfInt64(int64(len(v))))
		case fd.Kind() == protoreflect.BytesKind:
			m.Set(fd, protoreflect.ValueOfBytes([]byte(v)))
		case fd.IsList():
			m.Mutable(fd).List().Append(protoreflect.ValueOfString(v))
		}
	}
}

func TestCallFromRequest(t *testing.T) {
	fd := requestFile(t)
	request := fd.Messages().ByName("Request")
	odd := fd.Messages().ByName("OddRequest")
	const method = "/coreweave.sandbox.v1.SandboxService/Exec"
	all := fields{"sandbox_id": "sb-top", "path": "/top", "file_system_snapshot_id": "fss-top", "runner_id": "r-top"}
	nestedAll := fields{"sandbox_id": "sb-init", "path": "/init", "file_system_snapshot_id": "fss-init", "runner_id": "r-init"}
	tests := []struct {
		name   string
		desc   protoreflect.MessageDescriptor
		top    fields
		init   fields // nil: init unset
		deep   fields // inside init.deep
		others fields // in a repeated Init
		want   classify.Call
	}{
		{"top level", request, all, nil, nil, nil,
			classify.Call{Method: method, Resource: errs.Resource{SandboxID: "sb-top", FilePath: "/top", SnapshotID: "fss-top", RunnerID: "r-top"}}},
		{"nested init", request, nil, nestedAll, nil, nil,
			classify.Call{Method: method, Resource: errs.Resource{SandboxID: "sb-init", FilePath: "/init", SnapshotID: "fss-init", RunnerID: "r-init"}}},
		{"top level wins over nested", request, fields{"sandbox_id": "sb-top", "path": "/top"}, nestedAll, nil, nil,
			classify.Call{Method: method, Resource: errs.Resource{SandboxID: "sb-top", FilePath: "/top", SnapshotID: "fss-init", RunnerID: "r-init"}}},
		{"every field at the top level skips nested", request, all, nestedAll, nil, nil,
			classify.Call{Method: method, Resource: errs.Resource{SandboxID: "sb-top", FilePath: "/top", SnapshotID: "fss-top", RunnerID: "r-top"}}},
		{"empty init", request, fields{"runner_id": "r-top"}, fields{}, nil, nil,
			classify.Call{Method: method, Resource: errs.Resource{RunnerID: "r-top"}}},
		{"two levels down is not read", request, nil, fields{}, all, nil,
			classify.Call{Method: method}},
		{"repeated messages are not read", request, nil, nil, nil, all,
			classify.Call{Method: method}},
		{"fields of the wrong type are not read", odd, fields{"sandbox_id": "xx", "path": "/p", "runner_id": "r"}, fields{"sandbox_id": "sb-init"}, nil, nil,
			classify.Call{Method: method, Resource: errs.Resource{SandboxID: "sb-init"}}},
		{"nothing set", request, nil, nil, nil, nil, classify.Call{Method: method}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := dynamicpb.NewMessage(tc.desc)
			setFields(m, tc.top)
			if tc.init != nil || tc.deep != nil {
				init := m.Mutable(tc.desc.Fields().ByName("init")).Message()
				setFields(init, tc.init)
				if tc.deep != nil {
					setFields(init.Mutable(init.Descriptor().Fields().ByName("deep")).Message(), tc.deep)
				}
			}
			if tc.others != nil {
				list := m.Mutable(tc.desc.Fields().ByName("others")).List()
				elem := list.NewElement()
				setFields(elem.Message(), tc.others)
				list.Append(elem)
			}
			got := classify.CallFromRequest(method, m)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("CallFromRequest(%q, %v) differs (-want +got):\n%s", method, m, diff)
			}
		})
	}
}

// TestCallFromRequestGenerated uses generated messages of the well-known types and genproto.
func TestCallFromRequestGenerated(t *testing.T) {
	const method = "/coreweave.sandbox.v1.SandboxService/ReadFile"
	tests := []struct {
		name string
		req  any
		want classify.Call
	}{
		{"top-level path", &attribute_context.AttributeContext_Request{Path: "/v1/files", Id: "req-1"},
			classify.Call{Method: method, Resource: errs.Resource{FilePath: "/v1/files"}}},
		{"path one level down", &attribute_context.AttributeContext{Request: &attribute_context.AttributeContext_Request{Path: "/nested"}},
			classify.Call{Method: method, Resource: errs.Resource{FilePath: "/nested"}}},
		{"nested message unset", &attribute_context.AttributeContext{}, classify.Call{Method: method}},
		{"no such fields", &errdetails.ErrorInfo{Reason: "R", Metadata: map[string]string{"path": "/x", "sandbox_id": "sb"}},
			classify.Call{Method: method}},
		{"empty message", &emptypb.Empty{}, classify.Call{Method: method}},
		{"typed nil message", (*emptypb.Empty)(nil), classify.Call{Method: method}},
		{"typed nil with the field", (*attribute_context.AttributeContext_Request)(nil), classify.Call{Method: method}},
		{"not a message", "sandbox_id=sb-1", classify.Call{Method: method}},
		{"nil", nil, classify.Call{Method: method}},
		{"no method", &attribute_context.AttributeContext_Request{Path: "/p"}, classify.Call{Resource: errs.Resource{FilePath: "/p"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := method
			if tc.want.Method == "" {
				m = ""
			}
			if diff := cmp.Diff(tc.want, classify.CallFromRequest(m, tc.req)); diff != "" {
				t.Errorf("CallFromRequest(%q, %v) differs (-want +got):\n%s", m, tc.req, diff)
			}
		})
	}
}
