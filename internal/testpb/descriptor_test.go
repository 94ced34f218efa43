package testpb_test

import (
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/faultline-go/faultline/internal/testpb"
)

// TestIdempotencyLevels checks what the tests of descriptor-based
// idempotency rely on: each Echo method is registered in
// protoregistry.GlobalFiles with the level echo.proto declares.
func TestIdempotencyLevels(t *testing.T) {
	_ = testpb.Echo_ServiceDesc // the import registers echo.proto
	tests := []struct {
		method string
		want   descriptorpb.MethodOptions_IdempotencyLevel
	}{
		{"faultline.test.v1.Echo.Read", descriptorpb.MethodOptions_NO_SIDE_EFFECTS},
		{"faultline.test.v1.Echo.Put", descriptorpb.MethodOptions_IDEMPOTENT},
		{"faultline.test.v1.Echo.Do", descriptorpb.MethodOptions_IDEMPOTENCY_UNKNOWN},
		{"faultline.test.v1.Echo.Create", descriptorpb.MethodOptions_IDEMPOTENCY_UNKNOWN},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(tt.method))
			if err != nil {
				t.Fatalf("FindDescriptorByName(%s) error = %v", tt.method, err)
			}
			md, ok := d.(protoreflect.MethodDescriptor)
			if !ok {
				t.Fatalf("FindDescriptorByName(%s) = %T, want a MethodDescriptor", tt.method, d)
			}
			opts, _ := md.Options().(*descriptorpb.MethodOptions)
			if got := opts.GetIdempotencyLevel(); got != tt.want {
				t.Errorf("idempotency_level(%s) = %v, want %v", tt.method, got, tt.want)
			}
		})
	}
	// Create's request has the request_id field the key-filling tests use.
	fd := (&testpb.EchoRequest{}).ProtoReflect().Descriptor().Fields().ByName("request_id")
	if fd == nil || fd.Kind() != protoreflect.StringKind {
		t.Errorf("EchoRequest.request_id = %v, want a string field", fd)
	}
}
