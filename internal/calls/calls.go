// Package calls is what the transports (package interceptor for grpc-go, connectfaultline
// for connect-go) know of a call before its attempts, in one place for both: what repeating
// a call of a method does (safety.md section 2: the caller's configuration, an idempotency
// key, the method's descriptor, the sandbox API's table, the default), its idempotency key
// (AIP-155, filled once per call), and how its server stream is resumed.
package calls

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"

	"github.com/faultline-go/faultline/internal/sandboxapi"
	"github.com/faultline-go/faultline/retry"
)

// Config is what a transport's options say of the methods it calls. Names are full method
// names ("/pkg.Service/Method") or, for Levels, services ("/pkg.Service/").
type Config struct {
	Levels   map[string]retry.Idempotency // configured levels
	Default  retry.Idempotency            // the level of methods nothing describes
	Keys     map[string]string            // method -> key field; "" removes a built-in key
	KeysOff  bool                         // no key is ever set
	Resumers map[string]Resumer           // nil removes a built-in resumer
	// StreamLogs tells whether a resumer is the transport's ResumeStreamLogs, which New
	// checks against the method's registered descriptor.
	StreamLogs func(Resumer) bool
}

// Methods answers a transport's questions about a call. Build it with [New]; it is safe for
// concurrent use.
type Methods struct {
	levels   map[string]retry.Idempotency
	def      retry.Idempotency
	keys     map[string]keySpec
	keysOff  bool
	resumers map[string]Resumer
	cache    atomic.Pointer[map[string]*Method]
}

// Method is what a transport needs of a method on every call: its level as far as it does
// not depend on the request, and its idempotency key. [Methods.Of] looks it up once per
// call.
type Method struct {
	level level
	key   keySpec
	keyed bool // the method takes an idempotency key
}

// keySpec is where a method's request carries its idempotency key: the string field, and,
// when set, the bool field that must be true for the key to be needed.
type keySpec struct {
	field protoreflect.Name
	when  protoreflect.Name
}

// New checks c and returns the Methods it describes, with the sandbox API's keys and
// resumers (as c changes them). Errors name the entry: a malformed name, a level that is
// not one, a key for a method that is never repeated or whose registered request has no
// such string field, a resumer for a method that is not server-streaming or whose
// descriptor lacks what ResumeStreamLogs reads.
func New(c Config) (*Methods, error) {
	m := &Methods{levels: c.Levels, def: c.Default, keysOff: c.KeysOff,
		keys: map[string]keySpec{}, resumers: map[string]Resumer{}}
	m.cache.Store(&map[string]*Method{})
	for method, row := range sandboxapi.Methods {
		if row.Key != "" {
			m.keys[method] = keySpec{field: protoreflect.Name(row.Key), when: protoreflect.Name(row.KeyWhen)}
		}
		if row.Resumed {
			m.resumers[method] = ResumeStreamLogs
		}
	}
	for _, err := range []error{m.setLevels(c), m.setKeys(c.Keys), m.setResumers(c)} {
		if err != nil {
			return nil, err
		}
	}
	return m, nil
}

func (m *Methods) setLevels(c Config) error {
	for name, l := range c.Levels {
		if !ValidName(name) {
			return fmt.Errorf("idempotency entry %q: want \"/pkg.Service/\" or \"/pkg.Service/Method\"", name)
		}
		if l > retry.NeverRetry {
			return fmt.Errorf("idempotency of %s is %v, not a level", name, l)
		}
	}
	if c.Default > retry.NeverRetry {
		return fmt.Errorf("default idempotency is %v, not a level", c.Default)
	}
	return nil
}

func (m *Methods) setKeys(keys map[string]string) error {
	for method, field := range keys {
		if !ValidName(method) || strings.HasSuffix(method, "/") {
			return fmt.Errorf("idempotency key method %q: want \"/pkg.Service/Method\"", method)
		}
		if field == "" {
			delete(m.keys, method)
			continue
		}
		if sandboxapi.LevelOf(method) == sandboxapi.Never {
			return fmt.Errorf("idempotency key of %s: the method is never repeated", method)
		}
		if !protoreflect.Name(field).IsValid() {
			return fmt.Errorf("idempotency key field %q of %s is not a field name", field, method)
		}
		if md := Registered(method); md != nil {
			if md.IsStreamingClient() || md.IsStreamingServer() {
				return fmt.Errorf("idempotency key of %s: keys are set on unary requests only", method)
			}
			fd := md.Input().Fields().ByName(protoreflect.Name(field))
			if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
				return fmt.Errorf("idempotency key of %s: %s has no string field %q", method, md.Input().FullName(), field)
			}
		}
		m.keys[method] = keySpec{field: protoreflect.Name(field)}
	}
	return nil
}

func (m *Methods) setResumers(c Config) error {
	for method, r := range c.Resumers {
		if !ValidName(method) || strings.HasSuffix(method, "/") {
			return fmt.Errorf("resumer method %q: want \"/pkg.Service/Method\"", method)
		}
		if md := Registered(method); md != nil && r != nil && (!md.IsStreamingServer() || md.IsStreamingClient()) {
			return fmt.Errorf("resumer for %s: only server-streaming methods are resumed", method)
		}
		if r == nil {
			delete(m.resumers, method)
		} else {
			m.resumers[method] = r
		}
	}
	for _, method := range slices.Sorted(maps.Keys(m.resumers)) {
		r := m.resumers[method]
		if _, configured := c.Resumers[method]; !configured || c.StreamLogs != nil && c.StreamLogs(r) {
			if err := checkStreamLogs(method); err != nil {
				return err
			}
		}
	}
	return nil
}

// Resumes reports whether a server stream of method has a resumer.
func (m *Methods) Resumes(method string) bool { return m.resumers[method] != nil }

// Key is what a request says about its idempotency key.
type Key uint8

const (
	KeyNone    Key = iota // the method has no key, or does not need one for this request
	KeyPresent            // the request carries a key: the caller's or one set by WithKey
	KeyMissing            // the request needs a key and has none
)

// WithKey returns the request to send on every attempt of a call of method: req itself,
// or, when the method takes an idempotency key that req leaves empty and keys are on, a copy
// of req with a fresh UUIDv4 in it (the caller's message is never modified). A nil request
// (a nil pointer of the request type) goes out as the transport sends it, an empty message:
// no key is set into it, so it has none.
func (m *Methods) WithKey(method string, req any) (any, Key) { return m.KeyOf(m.Of(method), req) }

// KeyOf is [Methods.WithKey] for a method already looked up.
func (m *Methods) KeyOf(mt *Method, req any) (any, Key) {
	if !mt.keyed {
		return req, KeyNone
	}
	return m.keyOf(mt.key, req)
}

func (m *Methods) keyOf(spec keySpec, req any) (any, Key) {
	pm, ok := req.(proto.Message)
	if !ok || pm == nil {
		return req, KeyNone
	}
	msg := pm.ProtoReflect()
	fields := msg.Descriptor().Fields()
	fd := fields.ByName(spec.field)
	if fd == nil || fd.Kind() != protoreflect.StringKind || fd.IsList() {
		return req, KeyNone
	}
	if spec.when != "" {
		cond := fields.ByName(spec.when)
		if cond == nil || cond.Kind() != protoreflect.BoolKind || cond.IsList() || !msg.Get(cond).Bool() {
			return req, KeyNone
		}
	}
	if msg.Get(fd).String() != "" {
		return req, KeyPresent
	}
	if m.keysOff || !msg.IsValid() { // a nil message reads as empty but cannot be copied or set
		return req, KeyMissing
	}
	c := proto.Clone(pm)
	c.ProtoReflect().Set(fd, protoreflect.ValueOfString(uuid.NewString()))
	return c, KeyPresent
}

// Level resolves what repeating a call of method does, first match wins: the caller's
// configuration, an idempotency key in the request, the method's registered descriptor, the
// sandbox API's table, the configured default. It costs no lock and no allocation once the
// method was asked for.
func (m *Methods) Level(method string, key Key) retry.Idempotency { return m.Of(method).Level(key) }

// Level is [Methods.Level] for a method already looked up.
func (mt *Method) Level(key Key) retry.Idempotency {
	if mt.level.configured {
		return mt.level.level
	}
	switch key {
	case KeyPresent:
		return retry.Idempotent
	case KeyMissing:
		return retry.NotIdempotent
	}
	return mt.level.level
}

// level is what a method's level is without its request: configured, or else what its
// descriptor, the sandbox API's table or the default say.
type level struct {
	level      retry.Idempotency
	configured bool
}

// maxMethods bounds the cache of methods; past it a method is worked out on each call.
const maxMethods = 1024

// Of returns what a transport needs of method on every call, from a copy-on-write cache:
// one map lookup per call once the method was asked for. The Method is shared: read only.
func (m *Methods) Of(method string) *Method {
	if mt := (*m.cache.Load())[method]; mt != nil {
		return mt
	}
	return m.add(method)
}

// add works out a method the cache does not hold, and adds it while the cache has room.
func (m *Methods) add(method string) *Method {
	mt := &Method{level: m.levelOf(method)}
	mt.key, mt.keyed = m.keys[method]
	if cache := m.cache.Load(); len(*cache) < maxMethods {
		next := maps.Clone(*cache)
		next[method] = mt
		m.cache.CompareAndSwap(cache, &next) // a lost race only costs a later recomputation
	}
	return mt
}

// levelOf works out method's level without its request.
// A method the sandbox API's table never repeats (Exec, StreamExec: they run the user's
// command) changes only by an entry of its own: a service-wide entry does not reach it, so
// declaring a whole service idempotent cannot make a command run twice.
func (m *Methods) levelOf(method string) level {
	if l, ok := m.levels[method]; ok {
		return level{level: l, configured: true}
	}
	if sandboxapi.LevelOf(method) == sandboxapi.Never {
		return level{level: retry.NeverRetry, configured: true}
	}
	if l, ok := Lookup(m.levels, method); ok {
		return level{level: l, configured: true}
	}
	l := level{level: known(method)}
	if l.level == retry.IdempotencyUnknown {
		l.level = m.def
	}
	return l
}

// known is what the method's descriptor, then the sandbox API's table, say.
func known(method string) retry.Idempotency {
	if md := Registered(method); md != nil {
		if opts, ok := md.Options().(*descriptorpb.MethodOptions); ok {
			switch opts.GetIdempotencyLevel() {
			case descriptorpb.MethodOptions_NO_SIDE_EFFECTS:
				return retry.NoSideEffects
			case descriptorpb.MethodOptions_IDEMPOTENT:
				return retry.Idempotent
			}
		}
	}
	return retry.Idempotency(sandboxapi.LevelOf(method))
}

// Registered returns the descriptor of a full method name ("/pkg.Service/Method") as
// generated code registers it in protoregistry.GlobalFiles, or nil.
func Registered(method string) protoreflect.MethodDescriptor {
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

// Lookup finds a method's entry, exact name first, then its service ("/pkg.Service/").
func Lookup[V any](m map[string]V, method string) (V, bool) {
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

// ValidName reports whether name is "/pkg.Service/" or "/pkg.Service/Method": a non-empty
// service, and no further slash.
func ValidName(name string) bool {
	if !strings.HasPrefix(name, "/") || len(name) < 3 {
		return false
	}
	rest := name[1:]
	i := strings.IndexByte(rest, '/')
	return i > 0 && strings.IndexByte(rest[i+1:], '/') < 0
}
