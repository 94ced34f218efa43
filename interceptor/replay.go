package interceptor

import (
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// replay keeps the messages a stream sent before commit, encoded as SendMsg took them (the
// caller may reuse a message and change it for the next send: grpc-go's own retries replay
// the encoded bytes too), for a new attempt to send again. Its buffer comes from a pool and
// goes back at commit.
type replay struct {
	buf    *[]byte
	msgs   []kept
	inline [1]kept // msgs' storage for the usual single request
	bytes  int     // counted as grpc-go counts them on the wire: each message plus its header
}

// kept is one message of a replay: its type, and where its bytes end in the buffer.
type kept struct {
	typ protoreflect.MessageType
	end int
}

// messageHeaderLen is the gRPC message header on the wire: a compression flag and a 4-byte
// length.
const messageHeaderLen = 5

var replayBufs = sync.Pool{New: func() any { return new([]byte) }}

// keep encodes m for replay; it reports false when it cannot keep it: over limit bytes (as
// on the wire), not a proto message (its size is unknown), or failing to encode.
func (r *replay) keep(m any, limit int) bool {
	pm, ok := m.(proto.Message)
	if !ok {
		return false
	}
	size := proto.Size(pm)
	if r.bytes+size+messageHeaderLen > limit {
		return false
	}
	if r.buf == nil {
		r.buf = replayBufs.Get().(*[]byte)
	}
	start := len(*r.buf)
	b, err := proto.MarshalOptions{UseCachedSize: true}.MarshalAppend(*r.buf, pm)
	if err != nil {
		*r.buf = (*r.buf)[:start]
		return false
	}
	*r.buf = b
	if r.msgs == nil {
		r.msgs = r.inline[:0]
	}
	r.msgs = append(r.msgs, kept{typ: pm.ProtoReflect().Type(), end: len(b)})
	r.bytes += size + messageHeaderLen
	return true
}

// message returns a new message equal to the i-th kept one as it was sent.
func (r *replay) message(i int) proto.Message {
	start := 0
	if i > 0 {
		start = r.msgs[i-1].end
	}
	m := r.msgs[i].typ.New().Interface()
	if err := proto.Unmarshal((*r.buf)[start:r.msgs[i].end], m); err != nil {
		return nil // cannot happen: the bytes were marshalled from a message of this type
	}
	return m
}

// to sends the kept messages on cs, in order, and reports whether any was sent.
func (r *replay) to(cs grpc.ClientStream) bool {
	sent := false
	for i := range r.msgs {
		if cs.SendMsg(r.message(i)) != nil {
			break // the attempt ended; the next receive or send learns how
		}
		sent = true
	}
	return sent
}

// drop forgets the kept messages and gives the buffer back.
func (r *replay) drop() {
	if r.buf != nil {
		*r.buf = (*r.buf)[:0]
		replayBufs.Put(r.buf)
	}
	*r = replay{}
}
