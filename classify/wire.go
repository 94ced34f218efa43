package classify

import (
	"math"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
)

// A minimal reader of the protobuf wire format over a string, enough for google.rpc.Status,
// google.protobuf.Any, ErrorInfo, RetryInfo, BadRequest and Duration. It follows what
// proto.Unmarshal does for these messages (last value of a scalar wins, repeated occurrences
// of a message field merge, a known field with the wrong wire type is an unknown field,
// proto3 strings must be valid UTF-8, unknown fields and groups are skipped), without
// allocating: strings are sliced out of the input. A differential fuzz test holds it to
// proto.Unmarshal.

const (
	wireVarint = 0
	wireI64    = 1
	wireBytes  = 2
	wireStart  = 3
	wireEnd    = 4
	wireI32    = 5

	// maxGroupDepth is how deeply unknown groups may nest: as deep as proto.Unmarshal allows
	// (protowire.ConsumeFieldValue), so that bytes it accepts are not skipped here. The
	// work stays linear in the input: every level costs at least one byte.
	maxGroupDepth = protowire.DefaultRecursionLimit + 1
)

// reader walks one message. After an error ok is false and next reports false.
type reader struct {
	s  string
	ok bool
}

func newReader(s string) reader { return reader{s: s, ok: true} }

// next reads the next field's tag. It reports false at the end of the message or on error.
func (r *reader) next() (num uint64, typ int, more bool) {
	if !r.ok || r.s == "" {
		return 0, 0, false
	}
	tag := r.varint()
	if !r.ok {
		return 0, 0, false
	}
	num, typ = tag>>3, int(tag&7)
	if num == 0 || num > 1<<29-1 {
		r.ok = false
		return 0, 0, false
	}
	return num, typ, true
}

func (r *reader) varint() uint64 {
	if r.s != "" && r.s[0] < 0x80 { // the common one-byte case
		v := uint64(r.s[0])
		r.s = r.s[1:]
		return v
	}
	var v uint64
	for i := 0; i < 10; i++ {
		if i >= len(r.s) {
			r.ok = false
			return 0
		}
		b := r.s[i]
		if i == 9 && b > 1 {
			r.ok = false
			return 0
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			r.s = r.s[i+1:]
			return v
		}
	}
	r.ok = false
	return 0
}

// bytes reads a length-delimited value.
func (r *reader) bytes() string {
	n := r.varint()
	if !r.ok || n > uint64(len(r.s)) {
		r.ok = false
		return ""
	}
	v := r.s[:n]
	r.s = r.s[n:]
	return v
}

// str reads a proto3 string: length-delimited and valid UTF-8.
func (r *reader) str() string {
	v := r.bytes()
	if r.ok && !utf8.ValidString(v) {
		r.ok = false
	}
	return v
}

// skip skips the value of a field of wire type typ and number num.
func (r *reader) skip(num uint64, typ int) { r.skipDepth(num, typ, 0) }

func (r *reader) skipDepth(num uint64, typ int, depth int) {
	switch typ {
	case wireVarint:
		r.varint()
	case wireI64:
		r.fixed(8)
	case wireI32:
		r.fixed(4)
	case wireBytes:
		r.bytes()
	case wireStart:
		if depth >= maxGroupDepth {
			r.ok = false
			return
		}
		for {
			n, t, more := r.next()
			if !more {
				r.ok = false // a group must end with its end tag
				return
			}
			if t == wireEnd {
				if n != num {
					r.ok = false
				}
				return
			}
			r.skipDepth(n, t, depth+1)
		}
	default: // a lone end-group tag, or wire types 6 and 7
		r.ok = false
	}
}

func (r *reader) fixed(n int) {
	if len(r.s) < n {
		r.ok = false
		return
	}
	r.s = r.s[n:]
}

// duration reads a google.protobuf.Duration into seconds and nanos, merging into what an
// earlier occurrence of the same field set (proto's merge semantics).
func duration(s string, seconds *int64, nanos *int32) bool {
	r := newReader(s)
	for num, typ, more := r.next(); more; num, typ, more = r.next() {
		switch {
		case num == 1 && typ == wireVarint:
			*seconds = int64(r.varint())
		case num == 2 && typ == wireVarint:
			*nanos = int32(r.varint())
		default:
			r.skip(num, typ)
		}
	}
	return r.ok
}

// toDuration converts a Duration to time.Duration: false when the value fails
// durationpb.CheckValid or does not fit in time.Duration.
func toDuration(seconds int64, nanos int32) (time.Duration, bool) {
	const maxSeconds = 315576000000 // durationpb's +10000 years
	switch {
	case seconds < -maxSeconds || seconds > maxSeconds:
		return 0, false
	case nanos <= -1e9 || nanos >= 1e9:
		return 0, false
	case seconds > 0 && nanos < 0 || seconds < 0 && nanos > 0:
		return 0, false
	}
	if seconds > math.MaxInt64/int64(time.Second) || seconds < math.MinInt64/int64(time.Second) {
		return 0, false
	}
	d := time.Duration(seconds) * time.Second
	sum := d + time.Duration(nanos)
	if (nanos > 0 && sum < d) || (nanos < 0 && sum > d) {
		return 0, false
	}
	return sum, true
}
