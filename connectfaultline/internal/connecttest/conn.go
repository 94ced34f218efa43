package connecttest

import (
	"net"
	"sync"
)

// resetListener hands out [serverConn]s, so that [CloseConn] can reset them.
type resetListener struct{ net.Listener }

func (l resetListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &serverConn{Conn: c}, nil
}

// serverConn is a server-side connection that [CloseConn] can reset without
// losing what the server already sent.
//
// On HTTP/1.1 a flushed response is on the connection, so reset closes it at
// once. The HTTP/2 server buffers its frames and writes them when its queue
// empties, so a message a handler has sent may still be in that buffer: instead,
// resetBeforeRST arms the connection and the handler aborts its stream; the
// server then writes its buffered frames followed by the RST_STREAM of the
// aborted stream, and Write sends every byte before that RST_STREAM, then
// resets. To find it, Write follows the frame boundaries of everything the
// server writes (an HTTP/2 server writes nothing but frames); once armed, it
// holds back the bytes of a frame header until the header is complete.
type serverConn struct {
	net.Conn

	mu     sync.Mutex // guards the fields below; Write is only called by one goroutine at a time
	armed  bool       // reset before the next RST_STREAM frame
	done   bool       // reset or closed
	hdr    [9]byte    // the frame header being read
	nhdr   int        // bytes of it seen
	held   int        // the last held of them, not written yet (armed only)
	remain int        // payload bytes of the current frame still to come
}

// frameRSTStream is the type of an HTTP/2 RST_STREAM frame (RFC 9113, 6.4).
const frameRSTStream = 0x3

func (c *serverConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	out, reset := c.filter(b)
	c.mu.Unlock()
	if len(out) > 0 {
		if _, err := c.Conn.Write(out); err != nil {
			return 0, err
		}
	}
	if reset {
		c.reset()
		return 0, net.ErrClosed
	}
	return len(b), nil
}

// filter follows the HTTP/2 frames in b and returns the bytes to write now,
// and whether to reset the connection after them: b itself unless the
// connection is armed; armed, the bytes before the first RST_STREAM frame (then
// reset is true), or else before an incomplete frame header at the end, which
// is held back for the next write. (The bytes of a header begun before the
// connection was armed are already written: such a header cannot be the
// RST_STREAM of the aborted stream.)
func (c *serverConn) filter(b []byte) (out []byte, reset bool) {
	pending := b
	if c.held > 0 {
		pending = append(append(make([]byte, 0, c.held+len(b)), c.hdr[c.nhdr-c.held:c.nhdr]...), b...)
		c.nhdr -= c.held
		c.held = 0
	}
	for pos := 0; pos < len(pending); {
		if c.remain > 0 {
			n := min(c.remain, len(pending)-pos)
			c.remain -= n
			pos += n
			continue
		}
		start := max(pos-c.nhdr, 0)
		n := copy(c.hdr[c.nhdr:], pending[pos:])
		c.nhdr += n
		pos += n
		if c.nhdr < len(c.hdr) {
			if c.armed {
				c.held = len(pending) - start
				return pending[:start], false
			}
			break
		}
		c.nhdr = 0
		if c.armed && c.hdr[3] == frameRSTStream {
			return pending[:start], true
		}
		c.remain = int(c.hdr[0])<<16 | int(c.hdr[1])<<8 | int(c.hdr[2])
	}
	return pending, false
}

// reset closes the connection now; on TCP with SO_LINGER 0, so that the peer
// reads a TCP RST. (No lock is held over I/O: a write to a pipe blocks until
// the client reads.)
func (c *serverConn) reset() {
	if !c.finish() {
		return
	}
	if tc, ok := c.Conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Conn.Close()
}

// resetBeforeRST arms the connection: it resets itself instead of writing the
// next RST_STREAM frame.
func (c *serverConn) resetBeforeRST() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.armed = true
}

func (c *serverConn) Close() error {
	if !c.finish() {
		return nil
	}
	return c.Conn.Close()
}

// finish marks the connection done and reports whether it was not already.
func (c *serverConn) finish() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	first := !c.done
	c.done = true
	return first
}
