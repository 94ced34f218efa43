package interceptor

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/retry"
)

// Stream returns the stream interceptor: errors from creating the stream, SendMsg, RecvMsg,
// Header and CloseSend are classified into *errs.Error (io.EOF stays io.EOF), and a stream
// is retried by its method's policy until it commits.
//
// A stream commits when the first response message or header reaches the caller, or when
// the messages it sent exceed the replay limit. Before that, a failure is retried: a new
// stream is opened, the messages sent so far are replayed in order (and CloseSend, if the
// caller had called it), and RecvMsg carries on as if nothing happened. After it, errors are
// classified and returned, never retried, so no response is ever delivered twice.
// [StreamExec] is never retried. The policy's PerAttemptTimeout does not apply to streams,
// which may live long. A stream that gives up before committing returns a *retry.Error from
// RecvMsg (or from the stream's creation); after committing, an *errs.Error.
//
// Before commit, a SendMsg that finds the attempt ended returns nil: the message is kept
// and replayed if the stream is retried, and RecvMsg reports the outcome either way (what
// grpc-go does for streams that do not send many messages). Header returns nil metadata
// when the attempt ended before sending headers; RecvMsg then retries or reports.
func (s *Set) Stream() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return s.stream(ctx, desc, cc, method, streamer, opts, true, true)
	}
}

// StreamClassify returns the classifying half alone: stream errors become *errs.Error,
// nothing is retried.
func (s *Set) StreamClassify() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return s.stream(ctx, desc, cc, method, streamer, opts, true, false)
	}
}

// StreamRetry returns the retrying half alone: streams are retried until they commit, and
// the caller gets the errors the rest of the chain returned.
func (s *Set) StreamRetry() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		return s.stream(ctx, desc, cc, method, streamer, opts, false, true)
	}
}

func (s *Set) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
	streamer grpc.Streamer, opts []grpc.CallOption, classifyOut, retrying bool) (grpc.ClientStream, error) {
	var rt *route
	if retrying && method != StreamExec {
		rt = s.route(method, opts)
	}
	if rt == nil {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if !classifyOut {
			return cs, err
		}
		if err != nil {
			return nil, s.classify(err, method, nil, opts)
		}
		return &classifiedStream{ClientStream: cs, set: s, method: method, opts: opts}, nil
	}
	rs := &retryStream{
		set: s, ctx: ctx, desc: desc, cc: cc, method: method, streamer: streamer, opts: opts,
		classifyOut: classifyOut, tracker: *rt.r.Track(),
	}
	rs.sent = rs.inline[:0]
	if err := rs.start(); err != nil {
		return nil, err
	}
	return rs, nil
}

// classifiedStream classifies the errors of a stream that is not retried.
type classifiedStream struct {
	grpc.ClientStream
	set    *Set
	method string
	opts   []grpc.CallOption

	mu    sync.Mutex
	first any // the first message sent, for the call context (callers may not modify it)
}

func (c *classifiedStream) SendMsg(m any) error {
	c.mu.Lock()
	if c.first == nil {
		c.first = m
	}
	c.mu.Unlock()
	return c.err(c.ClientStream.SendMsg(m))
}

func (c *classifiedStream) RecvMsg(m any) error { return c.err(c.ClientStream.RecvMsg(m)) }
func (c *classifiedStream) CloseSend() error    { return c.err(c.ClientStream.CloseSend()) }

func (c *classifiedStream) Header() (metadata.MD, error) {
	md, err := c.ClientStream.Header()
	return md, c.err(err)
}

func (c *classifiedStream) err(err error) error {
	if err == nil || err == io.EOF {
		return err
	}
	c.mu.Lock()
	first := c.first
	c.mu.Unlock()
	return c.set.classify(err, c.method, first, c.opts)
}

// retryStream is a stream retried until it commits.
type retryStream struct {
	set         *Set
	ctx         context.Context
	desc        *grpc.StreamDesc
	cc          *grpc.ClientConn
	method      string
	streamer    grpc.Streamer
	opts        []grpc.CallOption
	classifyOut bool
	tracker     retry.Tracker // used only by the receiving side (start, RecvMsg, Header)

	mu        sync.Mutex
	cur       grpc.ClientStream
	cancel    context.CancelFunc // of cur's context
	committed bool               // no more retries
	settled   bool               // the budget was told the stream succeeded
	sent      []any              // the messages sent, until commit
	inline    [1]any             // sent's storage for the usual single request
	sentBytes int
	closeSent bool
	first     any // the first message sent, for the call context
}

// start opens the first attempt, retrying establishment failures.
func (rs *retryStream) start() error {
	if err := rs.open(); err != nil {
		return rs.failed(err) // nil once an attempt is open
	}
	return nil
}

// errCommitted is open's report that the stream committed while a retry waited, so the
// messages the new attempt would replay are gone.
var errCommitted = errors.New("interceptor: stream committed before the retry")

// open opens a stream for the tracker's current attempt, under a context of its own that
// is cancelled when the attempt is abandoned or the stream is over, and replays what was
// sent.
func (rs *retryStream) open() error {
	ctx, cancel := context.WithCancel(rs.ctx)
	if n := rs.tracker.Attempt(); n > 1 && rs.set.header != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, rs.set.header, strconv.Itoa(n-1))
	}
	cs, err := rs.streamer(ctx, rs.desc, rs.cc, rs.method, rs.opts...)
	if err != nil {
		cancel()
		return err
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.committed {
		// A SendMsg committed the stream (past the replay limit) while this retry waited:
		// the messages to replay were dropped, so the new attempt cannot be used.
		cancel()
		return errCommitted
	}
	for _, m := range rs.sent {
		if err := cs.SendMsg(m); err != nil {
			break // the attempt ended; RecvMsg reports how
		}
	}
	if rs.closeSent {
		_ = cs.CloseSend() // as above
	}
	if rs.cancel != nil {
		rs.cancel() // the abandoned attempt
	}
	rs.cur, rs.cancel = cs, cancel
	return nil
}

// failed handles a failure before commit: nil when a new attempt is open, else the final
// error.
func (rs *retryStream) failed(err error) error {
	for {
		err = rs.out(err)
		if _, committed := rs.current(); committed {
			rs.end() // committed by a SendMsg while the attempt was failing
			return err
		}
		if stop := rs.tracker.Failed(rs.ctx, err); stop != nil {
			rs.end()
			return stop
		}
		switch oerr := rs.open(); oerr {
		case nil:
			return nil
		case errCommitted:
			rs.end()
			return err
		default:
			err = oerr
		}
	}
}

// out is the error as the caller sees it: classified, or as the chain returned it.
func (rs *retryStream) out(err error) error {
	if !rs.classifyOut || err == nil || err == io.EOF {
		return err
	}
	rs.mu.Lock()
	first := rs.first
	rs.mu.Unlock()
	return rs.set.classify(err, rs.method, first, rs.opts)
}

func (rs *retryStream) current() (grpc.ClientStream, bool) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.cur, rs.committed
}

func (rs *retryStream) commit() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	rs.commitLocked()
	if !rs.settled {
		rs.settled = true
		rs.tracker.Succeeded()
	}
}

// end releases the current attempt once the stream is over.
func (rs *retryStream) end() {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.cancel != nil {
		rs.cancel()
	}
}

func (rs *retryStream) RecvMsg(m any) error {
	for {
		cs, committed := rs.current()
		err := cs.RecvMsg(m)
		if committed || err == nil || err == io.EOF {
			if err == nil || err == io.EOF {
				rs.commit()
			}
			if err != nil || !rs.desc.ServerStreams {
				// The stream is over (a stream without server streaming ends with its one
				// response): release its context.
				rs.end()
			}
			return rs.out(err)
		}
		if err := rs.failed(err); err != nil {
			return err
		}
	}
}

func (rs *retryStream) Header() (metadata.MD, error) {
	for {
		cs, committed := rs.current()
		md, err := cs.Header()
		switch {
		case committed:
			return md, rs.out(err)
		case err == nil && md != nil:
			rs.commit()
			return md, nil
		case err == nil:
			return nil, nil // the attempt ended without headers; RecvMsg retries or reports
		}
		if err := rs.failed(err); err != nil {
			return nil, err
		}
	}
}

func (rs *retryStream) SendMsg(m any) error {
	rs.mu.Lock()
	if !rs.committed {
		rs.keep(m)
	}
	cs, committed := rs.cur, rs.committed
	rs.mu.Unlock()
	err := cs.SendMsg(m)
	if errors.Is(err, io.EOF) && !committed {
		return nil // kept for replay; RecvMsg reports the outcome
	}
	return rs.out(err)
}

// keep keeps m for replay, or commits when it cannot (over the limit, or not a proto
// message, whose size is unknown). grpc-go's contract makes it safe to keep m itself: the
// caller may not modify a message after SendMsg. The first message also serves as the call
// context. Called with mu held.
func (rs *retryStream) keep(m any) {
	if rs.first == nil {
		rs.first = m
	}
	pm, ok := m.(proto.Message)
	if !ok {
		rs.commitLocked()
		return
	}
	size := proto.Size(pm)
	if rs.sentBytes+size > rs.set.replayLimit {
		rs.commitLocked()
		return
	}
	rs.sent = append(rs.sent, m)
	rs.sentBytes += size
}

func (rs *retryStream) commitLocked() {
	rs.committed = true
	rs.sent, rs.sentBytes = nil, 0
}

func (rs *retryStream) CloseSend() error {
	rs.mu.Lock()
	rs.closeSent = true
	cs := rs.cur
	rs.mu.Unlock()
	return rs.out(cs.CloseSend())
}

func (rs *retryStream) Context() context.Context {
	cs, _ := rs.current()
	return cs.Context()
}

func (rs *retryStream) Trailer() metadata.MD {
	cs, _ := rs.current()
	return cs.Trailer()
}
