package interceptor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

// field is a field of a message in the descriptors built below.
func field(name string, n int32, typ descriptorpb.FieldDescriptorProto_Type) *descriptorpb.FieldDescriptorProto {
	return &descriptorpb.FieldDescriptorProto{Name: proto.String(name), Number: proto.Int32(n), Type: typ.Enum(),
		Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum(), JsonName: proto.String(name)}
}

// logAPI is the StreamLogs method of the sandbox API as another version of the API may
// declare it: the same full names, the offsets of the given kind. A client generated from it
// sends and receives messages the descriptors registered by sandboxpb do not describe.
func logAPI(t *testing.T, offset descriptorpb.FieldDescriptorProto_Type) (req, entry protoreflect.MessageDescriptor) {
	t.Helper()
	s := descriptorpb.FieldDescriptorProto_TYPE_STRING
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("other/sandbox.proto"),
		Package: proto.String("coreweave.sandbox.v1"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			{Name: proto.String("StreamLogsRequest"), Field: []*descriptorpb.FieldDescriptorProto{
				field("sandbox_id", 1, s), field("tail_lines", 3, descriptorpb.FieldDescriptorProto_TYPE_INT64),
				field("resume_log_session_id", 7, s), field("resume_log_offset", 8, offset)}},
			{Name: proto.String("LogEntry"), Field: []*descriptorpb.FieldDescriptorProto{
				field("data", 1, descriptorpb.FieldDescriptorProto_TYPE_BYTES), field("log_session_id", 3, s),
				field("next_log_offset", 4, offset)}},
		},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		t.Fatalf("protodesc.NewFile: %v", err)
	}
	return fd.Messages().ByName("StreamLogsRequest"), fd.Messages().ByName("LogEntry")
}

// getInt and setInt read and write an integer field of any of protobuf's integer kinds.
func getInt(m protoreflect.Message, name protoreflect.Name) int64 {
	fd := m.Descriptor().Fields().ByName(name)
	switch fd.Kind() {
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return int64(m.Get(fd).Uint())
	case protoreflect.StringKind:
		n, _ := strconv.ParseInt(m.Get(fd).String(), 10, 64)
		return n
	}
	return m.Get(fd).Int()
}

func setInt(m protoreflect.Message, name protoreflect.Name, v int64) {
	fd := m.Descriptor().Fields().ByName(name)
	var val protoreflect.Value
	switch fd.Kind() {
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		val = protoreflect.ValueOfInt32(int32(v))
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		val = protoreflect.ValueOfInt64(v)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		val = protoreflect.ValueOfUint32(uint32(v))
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		val = protoreflect.ValueOfUint64(uint64(v))
	case protoreflect.StringKind:
		val = protoreflect.ValueOfString(fmt.Sprint(v))
	}
	m.Set(fd, val)
}

// serveLogAPI serves StreamLogs with the messages of req and entry: lines entries from the
// request's resume_log_offset, each with the cursor ("s", offset+1, or at while the
// offsets are given by at). The injector fails calls as scripted.
func serveLogAPI(t *testing.T, inj *faultlinetest.Injector, req, entry protoreflect.MessageDescriptor, lines int64,
	at func(off int64) int64, opts ...interceptor.Option) *grpc.ClientConn {
	t.Helper()
	handler := func(_ any, ss grpc.ServerStream) error {
		in := dynamicpb.NewMessage(req)
		if err := ss.RecvMsg(in); err != nil {
			return err
		}
		for off := getInt(in, "resume_log_offset"); off < lines; off++ {
			e := dynamicpb.NewMessage(entry)
			e.Set(entry.Fields().ByName("data"), protoreflect.ValueOfBytes(fmt.Appendf(nil, "line %d\n", off)))
			e.Set(entry.Fields().ByName("log_session_id"), protoreflect.ValueOfString("s"))
			setInt(e, "next_log_offset", at(off))
			if err := ss.SendMsg(e); err != nil {
				return err
			}
		}
		return nil
	}
	desc := &grpc.ServiceDesc{
		ServiceName: "coreweave.sandbox.v1.SandboxService",
		HandlerType: (*any)(nil),
		Streams:     []grpc.StreamDesc{{StreamName: "StreamLogs", ServerStreams: true, Handler: handler}},
	}
	all := append([]interceptor.Option{noBudget(secondsPolicy(), retry.WithBudget(nil))}, opts...)
	return faultlinetest.Serve(t, func(s *grpc.Server) { s.RegisterService(desc, struct{}{}) }, inj.ServerOptions(),
		interceptor.DialOptions(all...)...)
}

// tailLogAPI opens StreamLogs on conn with a request of type req for sandbox sb-1 and reads
// it to its end: the entries' data, and the error that ended it (nil for io.EOF).
func tailLogAPI(conn *grpc.ClientConn, req, entry protoreflect.MessageDescriptor) ([]string, error) {
	st, err := conn.NewStream(context.Background(), &grpc.StreamDesc{ServerStreams: true}, streamLogs)
	if err != nil {
		return nil, err
	}
	r := dynamicpb.NewMessage(req)
	r.Set(req.Fields().ByName("sandbox_id"), protoreflect.ValueOfString("sb-1"))
	r.Set(req.Fields().ByName("tail_lines"), protoreflect.ValueOfInt64(100))
	if err := st.SendMsg(r); err != nil {
		return nil, err
	}
	if err := st.CloseSend(); err != nil {
		return nil, err
	}
	var got []string
	for {
		m := dynamicpb.NewMessage(entry)
		if err := st.RecvMsg(m); err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return got, err
		}
		got = append(got, string(m.Get(entry.Fields().ByName("data")).Bytes()))
	}
}

// resumeTestFile is registered in protoregistry.GlobalFiles, as generated code registers
// its descriptors: a log service whose methods give ResumeStreamLogs usable fields or not.
var resumeTestFile = func() protoreflect.FileDescriptor {
	s, i64, u64 := descriptorpb.FieldDescriptorProto_TYPE_STRING, descriptorpb.FieldDescriptorProto_TYPE_INT64,
		descriptorpb.FieldDescriptorProto_TYPE_UINT64
	msg := func(name string, fields ...*descriptorpb.FieldDescriptorProto) *descriptorpb.DescriptorProto {
		return &descriptorpb.DescriptorProto{Name: proto.String(name), Field: fields}
	}
	tail := func(name, in, out string) *descriptorpb.MethodDescriptorProto {
		return &descriptorpb.MethodDescriptorProto{Name: proto.String(name), InputType: proto.String(".faultline.test.resume.v1." + in),
			OutputType: proto.String(".faultline.test.resume.v1." + out), ServerStreaming: proto.Bool(true)}
	}
	fdp := &descriptorpb.FileDescriptorProto{
		Name:    proto.String("faultline/test/resume.proto"),
		Package: proto.String("faultline.test.resume.v1"),
		Syntax:  proto.String("proto3"),
		MessageType: []*descriptorpb.DescriptorProto{
			msg("TailRequest", field("resume_log_session_id", 1, s), field("resume_log_offset", 2, i64)),
			msg("Entry", field("log_session_id", 1, s), field("next_log_offset", 2, descriptorpb.FieldDescriptorProto_TYPE_SINT64)),
			msg("TextOffsetRequest", field("resume_log_session_id", 1, s), field("resume_log_offset", 2, s)),
			msg("NoSessionEntry", field("next_log_offset", 1, u64)),
		},
		Service: []*descriptorpb.ServiceDescriptorProto{{Name: proto.String("Logs"), Method: []*descriptorpb.MethodDescriptorProto{
			tail("Tail", "TailRequest", "Entry"),
			tail("TailTextOffset", "TextOffsetRequest", "Entry"),
			tail("TailNoSession", "TailRequest", "NoSessionEntry"),
		}}},
	}
	fd, err := protodesc.NewFile(fdp, nil)
	if err != nil {
		panic(err)
	}
	if err := protoregistry.GlobalFiles.RegisterFile(fd); err != nil {
		panic(err)
	}
	return fd
}()

// TestResumersSayWhenTheyCannotWork (issue 16, instance 9): ResumeStreamLogs reads offsets
// of every integer kind protobuf has (a negative offset is no position); a resumer whose
// method's registered descriptor lacks the fields it needs is an error from New, naming the
// field; a resumer result that is not the method's request type ends the stream with an
// error that says so, and no request is sent; and a stream that could not be resumed says
// why, in its final error (stop reason "not resumable") and its stop event.
func TestResumersSayWhenTheyCannotWork(t *testing.T) {
	t.Run("offset kinds", func(t *testing.T) {
		for _, k := range []descriptorpb.FieldDescriptorProto_Type{
			descriptorpb.FieldDescriptorProto_TYPE_INT32, descriptorpb.FieldDescriptorProto_TYPE_INT64,
			descriptorpb.FieldDescriptorProto_TYPE_UINT32, descriptorpb.FieldDescriptorProto_TYPE_UINT64,
			descriptorpb.FieldDescriptorProto_TYPE_SINT32, descriptorpb.FieldDescriptorProto_TYPE_SINT64,
			descriptorpb.FieldDescriptorProto_TYPE_FIXED32, descriptorpb.FieldDescriptorProto_TYPE_FIXED64,
			descriptorpb.FieldDescriptorProto_TYPE_SFIXED32, descriptorpb.FieldDescriptorProto_TYPE_SFIXED64,
		} {
			t.Run(k.String(), func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					req, entry := logAPI(t, k)
					var inj faultlinetest.Injector
					inj.Script(streamLogs, faultlinetest.SendThenFail(3, unavailable()))
					conn := serveLogAPI(t, &inj, req, entry, 7, func(off int64) int64 { return off + 1 })
					got, err := tailLogAPI(conn, req, entry)
					if err != nil || fmt.Sprint(got) != fmt.Sprint(lines(0, 7)) {
						t.Fatalf("stream with %v offsets = %q, %v; want %q once each, resumed", k, got, err, lines(0, 7))
					}
					calls := inj.Calls(streamLogs)
					if len(calls) != 2 || len(calls[1].Requests) != 1 {
						t.Fatalf("server calls = %d, want 2", len(calls))
					}
					resumed := calls[1].Requests[0].ProtoReflect()
					if off := resumed.Get(resumed.Descriptor().Fields().ByName("resume_log_offset")); fmt.Sprint(off) != "3" {
						t.Errorf("resumed at offset %v, want 3", off)
					}
				})
			})
		}
	})

	notResumed := []struct {
		name   string
		offset descriptorpb.FieldDescriptorProto_Type
		at     func(off int64) int64
		opts   []interceptor.Option
		why    string // in the final error's text
	}{
		{name: "negative offset", offset: descriptorpb.FieldDescriptorProto_TYPE_SINT64,
			at: func(int64) int64 { return -5 }, why: "not resumed"},
		{name: "offset of kind string", offset: descriptorpb.FieldDescriptorProto_TYPE_STRING,
			at: func(off int64) int64 { return off + 1 }, why: "not resumed"},
		{name: "resumer returns another message", offset: descriptorpb.FieldDescriptorProto_TYPE_UINT64,
			at: func(off int64) int64 { return off + 1 },
			opts: []interceptor.Option{interceptor.WithResumer(streamLogs, func(req, last proto.Message) (proto.Message, bool) {
				return &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}, true
			})},
			why: "coreweave.sandbox.v1.GetSandboxRequest"},
		{name: "resumer returns a nil request", offset: descriptorpb.FieldDescriptorProto_TYPE_UINT64,
			at: func(off int64) int64 { return off + 1 },
			opts: []interceptor.Option{interceptor.WithResumer(streamLogs, func(req, last proto.Message) (proto.Message, bool) {
				return (*sandboxpb.StreamLogsRequest)(nil), true
			})},
			why: "not resumed"},
		{name: "resumer finds no cursor", offset: descriptorpb.FieldDescriptorProto_TYPE_UINT64,
			at: func(off int64) int64 { return off + 1 },
			opts: []interceptor.Option{interceptor.WithResumer(streamLogs, func(req, last proto.Message) (proto.Message, bool) {
				return nil, false
			})},
			why: "not resumed"},
	}
	for _, tc := range notResumed {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				req, entry := logAPI(t, tc.offset)
				var inj faultlinetest.Injector
				inj.Script(streamLogs, faultlinetest.SendThenFail(3, unavailable()))
				var dones []retry.DoneEvent
				hooks := retry.Hooks{OnDone: func(_ context.Context, ev retry.DoneEvent) { dones = append(dones, ev) }}
				conn := serveLogAPI(t, &inj, req, entry, 7, tc.at, append(tc.opts, noBudget(retry.DefaultPolicy(), retry.WithHooks(hooks)))...)
				got, err := tailLogAPI(conn, req, entry)
				if fmt.Sprint(got) != fmt.Sprint(lines(0, 3)) || status.Code(err) != codes.Unavailable {
					t.Errorf("stream = %q, %v; want %q, then the UNAVAILABLE", got, err, lines(0, 3))
				}
				if n := inj.Count(streamLogs); n != 1 {
					t.Errorf("server calls = %d, want 1: no request is sent when the stream cannot be resumed", n)
				}
				if stop, _ := stopOf(err); stop != retry.StopNotResumable {
					t.Errorf("stop = %v, want %v (err %v)", stop, retry.StopNotResumable, err)
				}
				if err == nil || !strings.Contains(err.Error(), tc.why) {
					t.Errorf("error %q, want it to say why (%q)", err, tc.why)
				}
				if len(dones) != 1 || dones[0].Reason != retry.StopNotResumable {
					t.Errorf("done events = %v, want one, reason %v", dones, retry.StopNotResumable)
				}
			})
		})
	}

	t.Run("registered descriptors are checked by New", func(t *testing.T) {
		const svc = "/faultline.test.resume.v1.Logs/"
		custom := func(req, last proto.Message) (proto.Message, bool) { return nil, false }
		for _, tc := range []struct {
			method string
			r      interceptor.Resumer
			want   string // in New's error; "" for none
		}{
			{method: svc + "Tail", r: interceptor.ResumeStreamLogs},
			{method: svc + "TailTextOffset", r: interceptor.ResumeStreamLogs, want: "resume_log_offset"},
			{method: svc + "TailNoSession", r: interceptor.ResumeStreamLogs, want: "log_session_id"},
			{method: svc + "TailTextOffset", r: custom}, // what a custom resumer needs is its own business
			{method: svc + "TailTextOffset", r: nil},
			{method: streamLogs, r: interceptor.ResumeStreamLogs},
		} {
			_, err := interceptor.New(interceptor.WithResumer(tc.method, tc.r))
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("New(WithResumer(%s)) = %v, want nil", tc.method, err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.method)):
				t.Errorf("New(WithResumer(%s)) = %v, want an error naming the method and %s", tc.method, err, tc.want)
			}
		}
		if resumeTestFile.Services().Len() != 1 {
			t.Fatal("the test descriptors are not built")
		}
	})

	t.Run("another request type is never sent", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			wrong := func(req, last proto.Message) (proto.Message, bool) {
				return &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}, true
			}
			e := logEnv(t, 10, []interceptor.Option{noBudget(secondsPolicy()), interceptor.WithResumer(streamLogs, wrong)},
				sandboxtest.StreamLogsScript{Entries: 3, Err: unavailable()})
			st, err := e.sb.StreamLogs(context.Background(), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
			if err != nil {
				t.Fatal(err)
			}
			got, err := recvLogs(st)
			if fmt.Sprint(got) != fmt.Sprint(lines(0, 3)) || status.Code(err) != codes.Unavailable {
				t.Errorf("stream = %d entries, %v; want %q, then the UNAVAILABLE", len(got), err, lines(0, 3))
			}
			if n := e.srv.Calls(streamLogs); n != 1 {
				t.Errorf("server calls = %d, want 1", n)
			}
		})
	})
}
