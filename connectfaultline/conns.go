package connectfaultline

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"

	"connectrpc.com/connect"
)

// classifiedConn classifies the errors of a stream that is not retried.
type classifiedConn struct {
	connect.StreamingClientConn
	i   *Interceptor
	ctx context.Context

	mu    sync.Mutex
	first any // the first message sent, for the call's resources
}

func (c *classifiedConn) Send(m any) error {
	if m != nil {
		c.mu.Lock()
		if c.first == nil {
			c.first = m
		}
		c.mu.Unlock()
	}
	return c.err(c.StreamingClientConn.Send(m))
}

func (c *classifiedConn) Receive(m any) error  { return c.err(c.StreamingClientConn.Receive(m)) }
func (c *classifiedConn) CloseRequest() error  { return c.err(c.StreamingClientConn.CloseRequest()) }
func (c *classifiedConn) CloseResponse() error { return c.err(c.StreamingClientConn.CloseResponse()) }
func (c *classifiedConn) err(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	c.mu.Lock()
	first := c.first
	c.mu.Unlock()
	return c.i.final(c.ctx, err, c.Spec().Procedure, first)
}

// deadConn is a stream that failed before it began: every operation fails with err, except
// Send and CloseRequest, which report io.EOF (the stream is over: Receive says why).
type deadConn struct {
	spec   connect.Spec
	header http.Header
	err    error
}

func (d *deadConn) Spec() connect.Spec           { return d.spec }
func (d *deadConn) Peer() connect.Peer           { return connect.Peer{} }
func (d *deadConn) Send(any) error               { return io.EOF }
func (d *deadConn) RequestHeader() http.Header   { return d.header }
func (d *deadConn) CloseRequest() error          { return nil }
func (d *deadConn) Receive(any) error            { return d.err }
func (d *deadConn) ResponseHeader() http.Header  { return http.Header{} }
func (d *deadConn) ResponseTrailer() http.Header { return http.Header{} }
func (d *deadConn) CloseResponse() error         { return nil }
