package integration_test

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/proto"
)

// h2Server is a raw HTTP/2 server on 127.0.0.1 that answers gRPC calls however a test says,
// including in ways grpc-go's server never would: any header value, huge header blocks,
// wrong codes, non-gRPC responses, ignored deadlines. It is built on the
// golang.org/x/net/http2 Framer and hpack, without net/http, so nothing between the test and
// the wire validates or drops what the test writes.
type h2Server struct {
	lis     net.Listener
	respond func(*h2Call)
	calls   atomic.Int64
	wg      sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]bool
	closed bool
}

// h2Call is one call (HTTP/2 stream) the server received. Its methods write the response;
// they must be called from the respond function only.
type h2Call struct {
	n      int    // 1 for the first call the server received
	path   string // :path, the full method
	header map[string][]string
	body   []byte        // the request's data frames, with the gRPC length prefixes
	done   chan struct{} // closed when the client resets the stream or the connection ends
	conn   *h2Conn
	id     uint32
}

type h2Conn struct {
	c   net.Conn
	wmu sync.Mutex // guards fr's writes and enc
	fr  *http2.Framer
	buf bytes.Buffer
	enc *hpack.Encoder
}

// startH2 serves respond on a new listener bound to 127.0.0.1 until the test ends, and
// returns the server and its address.
func startH2(t testing.TB, respond func(*h2Call)) (*h2Server, string) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("net.Listen() error = %v", err)
	}
	s := &h2Server{lis: lis, respond: respond, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.stop)
	return s, lis.Addr().String()
}

// Calls returns how many calls the server received.
func (s *h2Server) Calls() int { return int(s.calls.Load()) }

func (s *h2Server) stop() {
	s.lis.Close()
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *h2Server) accept() {
	defer s.wg.Done()
	for {
		c, err := s.lis.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = true
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serve(c)
			c.Close()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// serve speaks HTTP/2 on c until it fails or the client goes away.
func (s *h2Server) serve(c net.Conn) {
	hc := &h2Conn{c: c, fr: http2.NewFramer(c, c)}
	hc.enc = hpack.NewEncoder(&hc.buf)
	hc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	hc.fr.MaxHeaderListSize = 1 << 20
	preface := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, preface); err != nil || string(preface) != http2.ClientPreface {
		return
	}
	if hc.write(func() error { return hc.fr.WriteSettings() }) != nil {
		return
	}
	streams := map[uint32]*h2Call{}
	defer func() {
		for _, call := range streams {
			close(call.done)
		}
	}()
	for {
		f, err := hc.fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				if hc.write(hc.fr.WriteSettingsAck) != nil {
					return
				}
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				if hc.write(func() error { return hc.fr.WritePing(true, f.Data) }) != nil {
					return
				}
			}
		case *http2.MetaHeadersFrame:
			call := &h2Call{n: int(s.calls.Add(1)), header: map[string][]string{}, done: make(chan struct{}), conn: hc, id: f.StreamID}
			for _, hf := range f.Fields {
				if hf.Name == ":path" {
					call.path = hf.Value
				}
				call.header[hf.Name] = append(call.header[hf.Name], hf.Value)
			}
			streams[f.StreamID] = call
			if f.StreamEnded() {
				s.dispatch(call)
			}
		case *http2.DataFrame:
			call := streams[f.StreamID]
			if call == nil {
				continue
			}
			call.body = append(call.body, f.Data()...)
			if n := uint32(len(f.Data())); n > 0 {
				if hc.write(func() error {
					if err := hc.fr.WriteWindowUpdate(0, n); err != nil {
						return err
					}
					return hc.fr.WriteWindowUpdate(f.StreamID, n)
				}) != nil {
					return
				}
			}
			if f.StreamEnded() {
				s.dispatch(call)
			}
		case *http2.RSTStreamFrame:
			if call := streams[f.StreamID]; call != nil {
				close(call.done)
				delete(streams, f.StreamID)
			}
		case *http2.GoAwayFrame:
			return
		}
	}
}

func (s *h2Server) dispatch(call *h2Call) {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.respond(call)
	}()
}

func (hc *h2Conn) write(f func() error) error {
	hc.wmu.Lock()
	defer hc.wmu.Unlock()
	return f()
}

// maxFrame is the largest frame payload the client accepts (SETTINGS_MAX_FRAME_SIZE's
// default; grpc-go does not raise it).
const maxFrame = 16384

// headers writes one header block, split into HEADERS and CONTINUATION frames. Values are
// written as given: nothing is validated.
func (c *h2Call) headers(fields [][2]string, endStream bool) error {
	hc := c.conn
	return hc.write(func() error {
		hc.buf.Reset()
		for _, f := range fields {
			if err := hc.enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
				return err
			}
		}
		block := hc.buf.Bytes()
		first := true
		for first || len(block) > 0 {
			n := min(len(block), maxFrame)
			frag, last := block[:n], n == len(block)
			block = block[n:]
			var err error
			if first {
				err = hc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: c.id, BlockFragment: frag, EndStream: endStream, EndHeaders: last})
				first = false
			} else {
				err = hc.fr.WriteContinuation(c.id, last, frag)
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// data writes b in DATA frames (the tests keep responses well inside the client's window).
func (c *h2Call) data(b []byte, endStream bool) error {
	hc := c.conn
	return hc.write(func() error {
		for first := true; first || len(b) > 0; first = false {
			n := min(len(b), maxFrame)
			if err := hc.fr.WriteData(c.id, endStream && n == len(b), b[:n]); err != nil {
				return err
			}
			b = b[n:]
		}
		return nil
	})
}

// rst resets the stream with code.
func (c *h2Call) rst(code http2.ErrCode) error {
	return c.conn.write(func() error { return c.conn.fr.WriteRSTStream(c.id, code) })
}

// grpcHeaders are the response headers of a gRPC response.
var grpcHeaders = [][2]string{{":status", "200"}, {"content-type", "application/grpc"}}

// trailersOnly answers with a single header block that ends the stream: the gRPC
// "trailers-only" response, with the given fields after the response headers.
func (c *h2Call) trailersOnly(fields ...[2]string) error {
	return c.headers(append(append([][2]string{}, grpcHeaders...), fields...), true)
}

// reply answers with headers, m as the one response message, and an OK status.
func (c *h2Call) reply(m proto.Message) error {
	b, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	frame := make([]byte, 5, 5+len(b))
	binary.BigEndian.PutUint32(frame[1:], uint32(len(b)))
	frame = append(frame, b...)
	if err := c.headers(grpcHeaders, false); err != nil {
		return err
	}
	if err := c.data(frame, false); err != nil {
		return err
	}
	return c.headers([][2]string{{"grpc-status", "0"}}, true)
}

// stall waits until the client gives up on the call (or the connection ends).
func (c *h2Call) stall() { <-c.done }

// statusFields returns grpc-status, grpc-message (percent-encoded as the protocol says)
// and, when st is not nil, grpc-status-details-bin with st in unpadded base64.
func statusFields(code int, msg string, st *status.Status) [][2]string {
	f := [][2]string{{"grpc-status", strconv.Itoa(code)}, {"grpc-message", percentEncode(msg)}}
	if st != nil {
		b, err := proto.Marshal(st)
		if err != nil {
			panic(err)
		}
		f = append(f, [2]string{"grpc-status-details-bin", base64.RawStdEncoding.EncodeToString(b)})
	}
	return f
}

// percentEncode encodes msg for grpc-message: bytes outside printable ASCII and '%' as %XX.
func percentEncode(msg string) string {
	var b []byte
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c >= 0x20 && c < 0x7f && c != '%' {
			b = append(b, c)
			continue
		}
		b = append(b, '%', "0123456789ABCDEF"[c>>4], "0123456789ABCDEF"[c&15])
	}
	return string(b)
}
