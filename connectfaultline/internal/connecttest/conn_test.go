package connecttest

import (
	"bytes"
	"net"
	"testing"
)

// recordingConn records what is written to it and whether it was closed.
type recordingConn struct {
	net.Conn // nil: only Write and Close are called
	buf      bytes.Buffer
	closed   bool
}

func (c *recordingConn) Write(b []byte) (int, error) { return c.buf.Write(b) }
func (c *recordingConn) Close() error                { c.closed = true; return nil }

// frame returns an HTTP/2 frame of type typ with a payload of n bytes.
func frame(typ byte, n int) []byte {
	b := []byte{byte(n >> 16), byte(n >> 8), byte(n), typ, 0, 0, 0, 0, 1}
	return append(b, bytes.Repeat([]byte{typ}, n)...)
}

// TestServerConnCutsBeforeRST writes frames in chunks of every size: an armed
// connection sends every byte before the first RST_STREAM frame, then closes.
func TestServerConnCutsBeforeRST(t *testing.T) {
	const (
		data     = 0x0
		settings = 0x4
	)
	before := append(append(frame(settings, 6), frame(data, 20)...), frame(frameRSTStream, 4)[:0]...)
	stream := append(append(append([]byte{}, before...), frame(frameRSTStream, 4)...), frame(data, 3)...)
	for chunk := 1; chunk <= len(stream); chunk++ {
		rc := &recordingConn{}
		c := &serverConn{Conn: rc}
		// A RST_STREAM before arming goes through.
		if _, err := c.Write(frame(frameRSTStream, 4)); err != nil {
			t.Fatalf("Write(RST_STREAM) before arming error = %v", err)
		}
		c.resetBeforeRST()
		var err error
		for i := 0; i < len(stream) && err == nil; i += chunk {
			_, err = c.Write(stream[i:min(i+chunk, len(stream))])
		}
		want := append(frame(frameRSTStream, 4), before...)
		if !bytes.Equal(rc.buf.Bytes(), want) || !rc.closed || err == nil {
			t.Errorf("chunks of %d: wrote %d bytes (closed %v, last error %v), want the %d bytes before the RST_STREAM, closed, an error",
				chunk, rc.buf.Len(), rc.closed, err, len(want))
		}
	}
}
