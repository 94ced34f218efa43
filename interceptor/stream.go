package interceptor

import (
	"context"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/faultline-go/faultline/internal/calls"
	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/retry"
)

// Stream returns the stream interceptor: errors from creating the stream, SendMsg, RecvMsg,
// Header and CloseSend are classified into *errs.Error (io.EOF stays io.EOF), and a stream
// is retried by its method's policy until it commits.
//
// A stream commits when the first response message or header reaches the caller (or the
// server's headers arrive while the caller is sending), or when the messages it sent exceed
// the replay limit. Before that, a failure is retried by the rules of package retry: a new
// stream is opened, the messages sent so far are replayed in order as they were when
// SendMsg took them (and CloseSend, if the caller had called it), and RecvMsg carries on as
// if nothing happened. After it, errors are classified and returned, never retried, so no
// response is ever delivered twice; a server stream with a resumer (see [WithResumer]) is
// resumed instead. A stream of a method that is never repeated (StreamExec) is retried only
// when its attempt never reached a transport. The policy's PerAttemptTimeout does not apply
// to streams, which may live long. A stream that gives up before committing returns a
// *retry.Error from RecvMsg (or from the stream's creation); after committing, an
// *errs.Error.
//
// The retried stream behaves as one stream: Context returns one context for the whole
// stream; Header waits for the outcome of an attempt that ends without headers and returns
// the headers of the attempt that delivers them, (nil, nil) only when the stream ended
// without any; once a failure will not be retried, SendMsg returns io.EOF and RecvMsg the
// error, as a plain grpc-go stream does; grpc.OnFinish runs once, with the final outcome,
// and the OnDone hook once, when the stream is over. Header, RecvMsg, SendMsg and Context
// may be called from different goroutines as grpc-go allows; the hooks run on them, and
// must not call the stream's methods.
func (s *Set) Stream() grpc.StreamClientInterceptor {
	return s.stream
}

func (s *Set) stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string,
	streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	rt, err := s.route(method, opts)
	if err != nil {
		_, fns := onFinish(opts)
		finish(fns, err)
		return nil, err
	}
	if rt == nil {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, s.classify(ctx, cc, err, method, nil, opts)
		}
		return &classifiedStream{ClientStream: cs, set: s, ctx: ctx, cc: cc, method: method, opts: opts}, nil
	}
	rs := &retryStream{set: s, ctx: ctx, desc: desc, cc: cc, method: method, streamer: streamer, rt: rt}
	rs.resumes = desc.ServerStreams && !desc.ClientStreams && s.calls.Resumes(method)
	rs.opts, rs.finishers = onFinish(opts)
	rs.cond.L = &rs.mu
	rs.mu.Lock()
	defer rs.unlock()
	err = rt.e.Admit()
	if err == nil {
		// The first attempt runs under the caller's context itself: a failed attempt is
		// finished by grpc-go, so only later attempts need a context of their own.
		var cs grpc.ClientStream
		if cs, err = streamer(ctx, desc, cc, method, rs.opts...); err == nil {
			rs.cur = cs
			rs.watchFinish()
			return rs, nil
		}
	}
	// Not created: the attempt never reached a transport.
	if err := rs.recoverLocked(0, err, true); err != nil {
		return nil, err
	}
	rs.watchFinish()
	return rs, nil
}

// classifiedStream classifies the errors of a stream that is not retried.
type classifiedStream struct {
	grpc.ClientStream
	set    *Set
	ctx    context.Context
	cc     *grpc.ClientConn
	method string
	opts   []grpc.CallOption

	mu    sync.Mutex
	first any // the first message sent, for the call context
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
	return c.set.classify(c.ctx, c.cc, err, c.method, first, c.opts)
}

// retryStream is a stream retried until it commits, and resumed after it when it has a
// resumer. Every operation goes through withRetry (grpc-go's shape): it runs on the
// current attempt without the lock; a failure is decided about, and the next attempt
// opened and replayed, under the lock, by the goroutine that saw it. cond reports changes
// of the attempt and of who receives on it.
type retryStream struct {
	set       *Set
	ctx       context.Context // the caller's
	desc      *grpc.StreamDesc
	cc        *grpc.ClientConn
	method    string
	streamer  grpc.Streamer
	opts      []grpc.CallOption // without grpc.OnFinish
	finishers []func(error)     // grpc.OnFinish callbacks, run once by end
	rt        *route
	resumes   bool // the stream is resumed after commit (a server stream with a resumer)

	mu        sync.Mutex
	cond      sync.Cond
	t         engine.Tracker // made at the first failure: a stream that never fails needs none
	cur       grpc.ClientStream
	n         int  // the current attempt's serial number, 0 for the first
	sent      bool // a SendMsg on cur reached its transport
	receiving bool // a goroutine is in cur.RecvMsg
	retrying  bool // a goroutine is deciding about a failure, or opening the next attempt
	committed bool // no more retries from the start
	ended     bool // final is set: io.EOF for a clean end, else the error RecvMsg returns
	final     error
	replay    replay // the messages sent before commit, as SendMsg took them
	closeSent bool
	first     any                  // the first message sent, for the call context
	lctx      context.Context      // the stream's context, made when asked for before commit
	cancels   []context.CancelFunc // of lctx and of the attempts after the first
	stopWatch func() bool          // stops watchFinish's context.AfterFunc
	sinceOpen int                  // messages the current attempt delivered
	last      any                  // the last message delivered, when resumer is set
	header    metadata.MD          // the committed attempt's headers, kept when resuming
	reporting bool                 // the stream ended: unlock runs report
}

// unlock releases the lock, then, once after the stream ended, reports its end outside the
// lock (the OnFinish callbacks and the OnDone hook may take time, or locks of their own).
func (rs *retryStream) unlock() {
	if !rs.reporting {
		rs.mu.Unlock()
		return
	}
	rs.reporting = false
	cancels, stop, t, outcome := rs.cancels, rs.stopWatch, rs.t, rs.final
	rs.cancels = nil
	rs.mu.Unlock()
	if outcome == io.EOF {
		outcome = nil
	}
	if stop != nil {
		stop()
	}
	for _, c := range cancels {
		c()
	}
	if t != nil && outcome == nil {
		t.End(rs.ctx) // a failure was told to the hooks by the tracker's Failed
	}
	finish(rs.finishers, outcome)
}

// watchFinish ends the stream when the caller's context ends before the stream does, as
// grpc-go does for a stream abandoned by its caller: OnFinish and OnDone run then. It
// watches when there are OnFinish callbacks, or a tracker (the stream failed once: its
// OnDone is due); a stream without either has nothing to report. Called with mu held.
func (rs *retryStream) watchFinish() {
	if rs.stopWatch != nil || rs.ended || len(rs.finishers) == 0 && rs.t == nil {
		return
	}
	rs.stopWatch = context.AfterFunc(rs.ctx, func() {
		rs.mu.Lock()
		defer rs.unlock()
		if rs.retrying || rs.ended {
			return // the goroutine retrying learns of the context's end itself
		}
		err := rs.classified(status.FromContextError(rs.ctx.Err()).Err())
		f := engine.Facts{Level: uint8(rs.set.calls.Level(rs.method, calls.KeyNone))}
		if stop := rs.tracker().Failed(rs.ctx, err, f); stop != nil { // never nil: the context ended
			err = stop
		}
		rs.endLocked(err)
	})
}

// tracker returns the stream's tracker, made at its first need. Called with mu held.
func (rs *retryStream) tracker() engine.Tracker {
	if rs.t == nil {
		rs.t = rs.rt.e.Track(rs.method, conn(rs.cc))
		if rs.cur != nil {
			rs.watchFinish()
		}
	}
	return rs.t
}

// out is the error as the caller sees it: classified.
func (rs *retryStream) out(err error) error {
	if err == nil || err == io.EOF || nested(err) && holdsClassified(err) {
		return err
	}
	return rs.classified(err)
}

// classified classifies err with what the stream is about. Called with mu held.
func (rs *retryStream) classified(err error) error {
	return rs.set.classify(rs.ctx, rs.cc, err, rs.method, rs.first, rs.opts)
}

// recoverLocked handles the failure err of attempt n: before commit it retries (waiting as
// the policy says, then opening the next attempt and replaying what was sent); after
// commit it resumes, for a stream with a resumer, or ends the stream. It returns nil when
// the stream goes on with a new attempt (or another goroutine already replaced attempt n),
// else the stream's final error. notSent says whether attempt n reached no transport.
// Called with mu held; it releases mu while it waits and opens the next attempt, with
// retrying set, so that the other operations wait for it on cond (a goroutine blocked on a
// mutex would stop a testing/synctest bubble's clock; one waiting on cond does not).
func (rs *retryStream) recoverLocked(n int, err error, notSent bool) error {
	switch {
	case rs.ended:
		return rs.final
	case n != rs.n:
		return nil
	case rs.committed:
		return rs.resumeLocked(err)
	}
	f := engine.Facts{Level: uint8(rs.set.calls.Level(rs.method, calls.KeyNone)), NotSent: notSent}
	return rs.retryLocked(err, f, nil)
}

// failLocked ends a committed stream that could not go on after its failure: the tracker
// decides the stop reason (the policy's own, else retry.StopNotResumable) and tells the
// hooks, and the final error says why the stream was not resumed. Called with mu held; the
// tracker does not wait for such a failure.
func (rs *retryStream) failLocked(err *calls.NotResumed, level retry.Idempotency) error {
	if nested(err.Err) { // another faultline loop down the chain gave up: its error is final
		return rs.endLocked(rs.out(err.Err))
	}
	err.Err = rs.classified(err.Err)
	if stop := rs.tracker().Failed(rs.ctx, err, engine.Facts{Level: uint8(level), NotResumable: true}); stop != nil {
		return rs.endLocked(stop)
	}
	return rs.endLocked(err) // not reached: a failure that cannot go on is never retried
}

// retryLocked puts the failure err of the current attempt to the tracker and, while it says
// go on, opens the next attempt: a retry from the start (replaying what was sent), or, with
// next set, a resume that sends next. It returns nil when an attempt is open, else the
// stream's final error. Called with mu held, released while waiting and opening.
func (rs *retryStream) retryLocked(err error, f engine.Facts, next proto.Message) error {
	rs.retrying = true
	defer func() {
		rs.retrying = false
		rs.cond.Broadcast()
	}()
	t := rs.tracker()
	for {
		if nested(err) { // another faultline loop down the chain gave up: never again
			return rs.endLocked(rs.out(err))
		}
		classified := rs.classified(err)
		rs.mu.Unlock()
		stop := t.Failed(rs.ctx, classified, f)
		var cs grpc.ClientStream
		var cancel context.CancelFunc
		var sent bool
		if stop == nil {
			cs, cancel, sent, err = rs.open(t.Attempt(), next)
		}
		rs.mu.Lock()
		switch {
		case stop != nil:
			return rs.endLocked(stop)
		case err == nil && rs.ended: // the caller's context ended meanwhile
			cancel()
			return rs.final
		case err == nil:
			rs.cancels = append(rs.cancels, cancel)
			rs.cur, rs.sent, rs.sinceOpen = cs, sent, 0
			rs.n++
			return nil
		}
		f.NotSent, f.Progressed = true, false // the stream was not created
	}
}

// open opens attempt number attempt under a context of its own (released when the stream
// ends), with the attempt header, and replays what was sent; or, with next set (a resume),
// sends next and closes the send side. It reports whether a message reached the attempt's
// transport. Called with retrying set and mu released: the replay does not change.
func (rs *retryStream) open(attempt int, next proto.Message) (grpc.ClientStream, context.CancelFunc, bool, error) {
	ctx, cancel := context.WithCancel(rs.ctx)
	if rs.set.header != "" {
		ctx = withAttempt(ctx, rs.set.header, attempt-1)
	}
	cs, err := rs.streamer(ctx, rs.desc, rs.cc, rs.method, rs.opts...)
	if err != nil {
		cancel()
		return nil, nil, false, err
	}
	if next != nil {
		sent := cs.SendMsg(next) == nil
		_ = cs.CloseSend() // a server stream's one request
		return cs, cancel, sent, nil
	}
	sent := rs.replay.to(cs)
	if rs.closeSent {
		_ = cs.CloseSend() // the attempt's outcome is learnt by the next receive or send
	}
	return cs, cancel, sent, nil
}

// endLocked ends the stream with err (nil or io.EOF for a clean end) once: later receives
// return it, sends return io.EOF; the OnFinish callbacks and the hooks run once the lock is
// released, and the contexts the stream made are released. It returns the final error (the
// first one, if the stream had already ended). Called with mu held.
func (rs *retryStream) endLocked(err error) error {
	if rs.ended {
		return rs.final
	}
	if err == nil {
		err = io.EOF
	}
	rs.ended, rs.final, rs.reporting = true, err, true
	rs.replay.drop()
	rs.cond.Broadcast()
	return err
}

// commitLocked marks the stream committed: the caller has seen a response, so it is never
// retried from the start again, and the sent messages are dropped (a resumable stream keeps
// its first, the request it resumes from). The budget is told the stream succeeded. Called
// with mu held.
func (rs *retryStream) commitLocked() {
	if rs.committed {
		return
	}
	rs.committed = true
	if !rs.resumes {
		rs.replay.drop()
	}
	rs.cond.Broadcast()
	if rs.t == nil {
		rs.rt.e.Succeeded()
	} else {
		rs.t.Committed()
	}
}

// delivered counts a message delivered to the caller. Called with mu held.
func (rs *retryStream) delivered(m any) {
	if rs.sinceOpen == 0 && rs.committed && rs.n > 0 && rs.resumes {
		rs.t.Committed() // a resumed attempt delivered: it succeeded
	}
	rs.commitLocked()
	rs.sinceOpen++
	if rs.resumes {
		rs.last = m
	}
}

// await waits, with mu held, while another goroutine retries the stream, and, when
// receiving is set, while one receives on it. Called with mu held.
func (rs *retryStream) await(receiving bool) {
	for (rs.retrying || receiving && rs.receiving) && !rs.ended {
		rs.cond.Wait()
	}
}

func (rs *retryStream) RecvMsg(m any) error {
	rs.mu.Lock()
	defer rs.unlock()
	for {
		rs.await(true) // a Header or SendMsg learning how an ended attempt ended: brief
		if rs.ended {
			return rs.final
		}
		cs, n := rs.cur, rs.n
		rs.receiving = true
		rs.mu.Unlock()
		err := cs.RecvMsg(m)
		rs.mu.Lock()
		rs.receiving = false
		rs.cond.Broadcast()
		rs.await(false)
		switch {
		case n != rs.n:
			continue // another goroutine moved the stream to a new attempt
		case err == nil:
			rs.delivered(m)
			if !rs.desc.ServerStreams {
				rs.endLocked(nil) // its one response: the stream is over
			}
			return nil
		case err == io.EOF:
			rs.commitLocked()
			return rs.endLocked(nil)
		}
		if err := rs.recoverLocked(n, err, !rs.sent); err != nil {
			return err
		}
	}
}

// settleLocked learns how attempt n, which ended without headers before commit, ended, and
// retries it or ends the stream; it returns nil when the stream goes on, else its final
// error (io.EOF for a clean end). An attempt without headers holds no message, so receiving
// on it takes nothing from the caller. Called with mu held.
func (rs *retryStream) settleLocked(n int, cs grpc.ClientStream) error {
	rs.await(true) // a RecvMsg on the ended attempt returns at once and deals with it
	if rs.ended {
		return rs.final
	}
	if rs.n != n {
		return nil
	}
	err := cs.RecvMsg(new(emptypb.Empty)) // returns at once: the attempt is over
	if err == nil || err == io.EOF {
		// A message without headers cannot arrive; an ended attempt with a clean status and
		// no headers is the end of the stream.
		rs.commitLocked()
		return rs.endLocked(nil)
	}
	return rs.recoverLocked(n, err, !rs.sent)
}

func (rs *retryStream) Header() (metadata.MD, error) {
	rs.mu.Lock()
	defer rs.unlock()
	for {
		rs.await(false)
		switch {
		case rs.header != nil:
			return rs.header, nil
		case rs.ended && !rs.committed:
			if rs.final == io.EOF {
				return nil, nil
			}
			return nil, rs.final
		}
		cs, n, committed := rs.cur, rs.n, rs.committed
		rs.mu.Unlock()
		md, err := cs.Header()
		rs.mu.Lock()
		rs.await(false) // a retry of this attempt in another goroutine is not undone
		switch {
		case n != rs.n && !committed:
			continue
		case committed:
			return md, rs.out(err)
		case err == nil && md != nil:
			rs.header = md
			rs.commitLocked()
			return md, nil
		case err != nil:
			_ = rs.recoverLocked(n, err, !rs.sent)
		default:
			// The attempt ended without headers: whether the stream goes on, or ended, the
			// next turn of the loop says what to return.
			_ = rs.settleLocked(n, cs)
		}
	}
}

func (rs *retryStream) SendMsg(m any) error {
	rs.mu.Lock()
	defer rs.unlock()
	rs.await(false)
	if rs.ended {
		return io.EOF
	}
	if rs.first == nil {
		rs.first = m
	}
	if !rs.committed && !rs.replay.keep(m, rs.set.replayLimit) {
		rs.commitLocked() // past the replay limit, or not a proto message: no more retries
	}
	cs, n, committed := rs.cur, rs.n, rs.committed
	rs.mu.Unlock()
	err := cs.SendMsg(m)
	rs.mu.Lock()
	rs.await(false)
	switch {
	case rs.ended:
		return io.EOF
	case n != rs.n:
		return nil // a new attempt replaced this one and replayed m
	case err == nil:
		rs.sent = true
		return nil
	case committed:
		return rs.out(err)
	case err != io.EOF:
		// grpc-go finished the stream on an error of the send itself (a message over the
		// send limit, a codec error: the client made it and would make it again, so it is
		// not retried): m is kept, and a retry, if any, replays it.
		if err := rs.recoverLocked(n, err, !rs.sent); err != nil {
			return err
		}
		return nil
	}
	// The attempt ended. m is kept: a retry replays it. Learn how the attempt ended.
	if md, _ := cs.Header(); md != nil { // returns at once: the attempt is over
		// The server answered before failing: what it sent is the caller's to receive, so
		// the stream commits and RecvMsg reports the outcome, as grpc-go's would.
		rs.header = md
		rs.commitLocked()
		return io.EOF
	}
	if err := rs.settleLocked(n, cs); err != nil {
		return io.EOF // not retried: RecvMsg returns the error
	}
	return nil // retried: the new attempt replayed m
}

func (rs *retryStream) CloseSend() error {
	rs.mu.Lock()
	rs.await(false)
	if rs.ended {
		rs.unlock()
		return nil
	}
	rs.closeSent = true
	cs := rs.cur
	rs.unlock()
	if err := cs.CloseSend(); err != nil {
		rs.mu.Lock()
		defer rs.unlock()
		return rs.out(err)
	}
	return nil
}

// Context returns the stream's context. Asked for before the stream commits, or on a stream
// that may be resumed, it is a context of the logical stream (a child of the caller's, done
// when the stream ends), so a retry does not cancel it; after commit, grpc-go's context of
// the attempt that committed.
func (rs *retryStream) Context() context.Context {
	rs.mu.Lock()
	defer rs.unlock()
	if rs.lctx != nil {
		return rs.lctx
	}
	if rs.committed && !rs.resumes {
		return rs.cur.Context()
	}
	ctx, cancel := context.WithCancel(rs.ctx)
	if rs.ended {
		cancel()
	} else {
		rs.cancels = append(rs.cancels, cancel)
	}
	rs.lctx = ctx
	return ctx
}

func (rs *retryStream) Trailer() metadata.MD {
	rs.mu.Lock()
	cs := rs.cur
	rs.unlock()
	return cs.Trailer()
}

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
