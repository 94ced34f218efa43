package interceptor

import (
	"context"
	"maps"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/faultline-go/faultline/retry"
)

// The sandbox API's services, as they appear in method names.
const (
	sandboxService  = "/coreweave.sandbox.v1.SandboxService/"
	settingsService = "/coreweave.sandbox.v1.SettingsService/"
)

// builtinIdempotency is the retry class of every method of the sandbox API, by
// full method name or by service ("/pkg.Service/"). CreateSandbox, CreateSandboxFromTemplate
// and CreateFileSystemSnapshot are idempotent only with a request id (builtinKeys fills one);
// DeleteSandbox with snapshot_volumes set only with one.
var builtinIdempotency = map[string]retry.Idempotency{
	sandboxService + "GetSandbox":                retry.NoSideEffects,
	sandboxService + "ListSandboxes":             retry.NoSideEffects,
	sandboxService + "GetFileSystemSnapshot":     retry.NoSideEffects,
	sandboxService + "ListFileSystemSnapshots":   retry.NoSideEffects,
	sandboxService + "ReadFile":                  retry.NoSideEffects,
	sandboxService + "StreamLogs":                retry.NoSideEffects,
	sandboxService + "CreateSandbox":             retry.NotIdempotent,
	sandboxService + "CreateSandboxFromTemplate": retry.NotIdempotent,
	sandboxService + "CreateFileSystemSnapshot":  retry.NotIdempotent,
	sandboxService + "DeleteSandbox":             retry.Idempotent,
	sandboxService + "DeleteFileSystemSnapshot":  retry.Idempotent,
	sandboxService + "WriteFile":                 retry.Idempotent,
	sandboxService + "PurgeSandboxes":            retry.NotIdempotent,
	sandboxService + "Exec":                      retry.NeverRetry,
	sandboxService + "StreamExec":                retry.NeverRetry,

	"/coreweave.sandbox.v1.DiscoveryService/": retry.NoSideEffects,
}

// mutatingServices are the services of the sandbox API whose mutations have no idempotency
// key: their methods are not idempotent unless their name says they read (Get, List) or, in
// SettingsService, replace in full (Update).
var mutatingServices = map[string]bool{
	settingsService: true,
	"/coreweave.sandbox.v1.SandboxTemplateService/": true,
	"/coreweave.sandbox.v1.VolumeService/":          true,
}

// keySpec is where a method's request carries its idempotency key (AIP-155): the string
// field, and, when set, the bool field that must be true for the key to be needed.
type keySpec struct {
	field protoreflect.Name
	when  protoreflect.Name
}

// builtinKeys are the sandbox API's request ids.
var builtinKeys = map[string]keySpec{
	sandboxService + "CreateSandbox":             {field: "request_id"},
	sandboxService + "CreateSandboxFromTemplate": {field: "request_id"},
	sandboxService + "CreateFileSystemSnapshot":  {field: "request_id"},
	sandboxService + "DeleteSandbox":             {field: "request_id", when: "snapshot_volumes"},
}

// keyState is what a request says about its idempotency key.
type keyState uint8

const (
	keyNone    keyState = iota // the method has no key, or does not need one for this request
	keyPresent                 // the request carries a key: the caller's or one set here
	keyMissing                 // the request needs a key and has none
)

// withKey returns the request to send on every attempt of a call of method: req itself,
// or, when the method takes an idempotency key that req leaves empty and keys are on, a copy
// of req with a fresh UUIDv4 in it (the caller's message is never modified). A nil request
// (a nil pointer of the request type) goes out as grpc-go sends it, an empty message: no key
// is set into it, so it has none.
func (s *Set) withKey(method string, req any) (any, keyState) {
	spec, ok := s.keys[method]
	if !ok {
		return req, keyNone
	}
	pm, ok := req.(proto.Message)
	if !ok || pm == nil {
		return req, keyNone
	}
	m := pm.ProtoReflect()
	fields := m.Descriptor().Fields()
	fd := fields.ByName(spec.field)
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
		return req, keyNone
	}
	if spec.when != "" {
		cond := fields.ByName(spec.when)
		if cond == nil || cond.Kind() != protoreflect.BoolKind || cond.IsList() || !m.Get(cond).Bool() {
			return req, keyNone
		}
	}
	if m.Get(fd).String() != "" {
		return req, keyPresent
	}
	if s.keysOff || !m.IsValid() { // a nil message reads as empty but cannot be copied or set
		return req, keyMissing
	}
	c := proto.Clone(pm)
	c.ProtoReflect().Set(fd, protoreflect.ValueOfString(uuid.NewString()))
	return c, keyPresent
}

// idempotency resolves what repeating a call of method does, first
// match wins: the caller's configuration, an idempotency key in the request, the method's
// registered descriptor, the built-in table, the configured default.
func (s *Set) idempotency(method string, key keyState) retry.Idempotency {
	l := s.levelOf(method)
	if l.configured {
		return l.level
	}
	switch key {
	case keyPresent:
		return retry.Idempotent
	case keyMissing:
		return retry.NotIdempotent
	}
	return l.level
}

// level is what a method's level is without its request: configured, or else what its
// descriptor, the built-in table or the default say.
type level struct {
	level      retry.Idempotency
	configured bool
}

// maxLevels bounds the cache of methods' levels; past it a method's level is worked out
// on each call that needs it.
const maxLevels = 1024

// levelOf returns method's level, from a copy-on-write cache: every call of a method of
// unknown idempotency asks for it, so it must cost no lock and no allocation.
func (s *Set) levelOf(method string) level {
	cache := s.levelCache.Load()
	if cache != nil {
		if l, ok := (*cache)[method]; ok {
			return l
		}
	}
	l := level{configured: true}
	var ok bool
	if l.level, ok = lookup(s.levels, method); !ok {
		l = level{level: knownIdempotency(method)}
		if l.level == retry.IdempotencyUnknown {
			l.level = s.defaultLevel
		}
	}
	if cache == nil || len(*cache) < maxLevels {
		next := make(map[string]level, 1)
		if cache != nil {
			next = maps.Clone(*cache)
		}
		next[method] = l
		s.levelCache.CompareAndSwap(cache, &next) // a lost race only costs a later recomputation
	}
	return l
}

// knownIdempotency is what the method's descriptor, then the built-in table, say.
func knownIdempotency(method string) retry.Idempotency {
	if l := descriptorIdempotency(method); l != retry.IdempotencyUnknown {
		return l
	}
	if l, ok := lookup(builtinIdempotency, method); ok {
		return l
	}
	if i := strings.LastIndexByte(method, '/'); i > 0 {
		svc, name := method[:i+1], method[i+1:]
		reads := strings.HasPrefix(name, "Get") || strings.HasPrefix(name, "List")
		switch {
		case svc == settingsService && strings.HasPrefix(name, "Get"):
			return retry.NoSideEffects
		case svc == settingsService && strings.HasPrefix(name, "Update"):
			return retry.Idempotent // full replacement
		case mutatingServices[svc] && !reads:
			return retry.NotIdempotent
		}
	}
	return retry.IdempotencyUnknown
}

// registered returns the descriptor of a full method name ("/pkg.Service/Method") as
// generated code registers it in protoregistry.GlobalFiles, or nil.
func registered(method string) protoreflect.MethodDescriptor {
	name := protoreflect.FullName(strings.ReplaceAll(strings.TrimPrefix(method, "/"), "/", "."))
	if !name.IsValid() {
		return nil
	}
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(name)
	if err != nil {
		return nil
	}
	md, _ := d.(protoreflect.MethodDescriptor)
	return md
}

// descriptorIdempotency reads the idempotency_level of the method's registered descriptor.
func descriptorIdempotency(method string) retry.Idempotency {
	md := registered(method)
	if md == nil {
		return retry.IdempotencyUnknown
	}
	opts, ok := md.Options().(*descriptorpb.MethodOptions)
	if !ok {
		return retry.IdempotencyUnknown
	}
	switch opts.GetIdempotencyLevel() {
	case descriptorpb.MethodOptions_NO_SIDE_EFFECTS:
		return retry.NoSideEffects
	case descriptorpb.MethodOptions_IDEMPOTENT:
		return retry.Idempotent
	}
	return retry.IdempotencyUnknown
}

// lookup finds a method's entry, exact name first, then its service ("/pkg.Service/").
func lookup[V any](m map[string]V, method string) (V, bool) {
	if v, ok := m[method]; ok {
		return v, true
	}
	if i := strings.LastIndexByte(method, '/'); i > 0 {
		if v, ok := m[method[:i+1]]; ok {
			return v, true
		}
	}
	var zero V
	return zero, false
}

// already in the outgoing metadata (a proxy forwarding what it received), never appending.
func withAttempt(ctx context.Context, key string, n int) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx) // a copy
	if md == nil {
		md = metadata.MD{}
	}
	md.Set(key, strconv.Itoa(n))
	return metadata.NewOutgoingContext(ctx, md)
}

// onFinish takes grpc.OnFinish options out of opts: grpc-go would run them once per attempt,
// but they mean "once per RPC". It returns opts unchanged, and no callbacks, when there are
// none (no allocation).
func onFinish(opts []grpc.CallOption) ([]grpc.CallOption, []func(error)) {
	n := 0
	for _, o := range opts {
		if _, ok := o.(grpc.OnFinishCallOption); ok {
			n++
		}
	}
	if n == 0 {
		return opts, nil
	}
	rest := make([]grpc.CallOption, 0, len(opts)-n)
	fns := make([]func(error), 0, n)
	for _, o := range opts {
		if f, ok := o.(grpc.OnFinishCallOption); ok {
			fns = append(fns, f.OnFinish)
		} else {
			rest = append(rest, o)
		}
	}
	return rest, fns
}

// finish runs the OnFinish callbacks with the call's final error.
func finish(fns []func(error), err error) {
	for _, f := range fns {
		f(err)
	}
}
