package interceptor

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/retry"
)

// Stream returns the stream interceptor: errors from creating the stream, SendMsg, RecvMsg,
// Header and CloseSend are classified into *errs.Error (io.EOF stays io.EOF), and a stream
// is retried by its method's policy until it commits.
//
// A stream commits when the first response message or header reaches the caller (or the
// server's headers arrive while the caller is sending), or when the messages it sent exceed
// the replay limit. Before that, a failure is retried by the rules of package retry: a new
// stream is opened, the messages sent so far are replayed in order (and
// CloseSend, if the caller had called it), and RecvMsg carries on as if nothing happened.
// After it, errors are classified and returned, never retried, so no response is ever
// delivered twice. Methods that are never retried (StreamExec) are only classified. The
// policy's PerAttemptTimeout does not apply to streams, which may live long. A stream that
// gives up before committing returns a *retry.Error from RecvMsg (or from the stream's
// creation); after committing, an *errs.Error.
//
// The retried stream behaves as one stream: Context returns one context for the whole
// stream; Header waits for the outcome of an attempt that ends without headers and returns
// the headers of the attempt that delivers them, (nil, nil) only when the stream ended
// without any; once a failure will not be retried, SendMsg returns io.EOF and RecvMsg the
// error, as a plain grpc-go stream does; grpc.OnFinish runs once, with the final outcome.
// Header, RecvMsg, SendMsg and Context may be called from different goroutines as grpc-go
// allows.
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
	if retrying && !s.neverRetried(method) {
		var err error
		if rt, err = s.route(method, opts); err != nil {
			_, fns := onFinish(opts)
			finish(fns, err)
			return nil, err
		}
	}
	if rt == nil {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if !classifyOut {
			return cs, err
		}
		if err != nil {
			return nil, s.classify(ctx, cc, err, method, nil, opts)
		}
		return &classifiedStream{ClientStream: cs, set: s, ctx: ctx, cc: cc, method: method, opts: opts}, nil
	}
	rs := &retryStream{
		set: s, ctx: ctx, desc: desc, cc: cc, method: method, streamer: streamer,
		classifyOut: classifyOut, tracker: *rt.r.Track(),
	}
	if desc.ServerStreams && !desc.ClientStreams {
		rs.resumer = s.resumers[method]
	}
	if cc != nil {
		rs.tracker.SetTarget(cc)
	}
	rs.opts, rs.finishers = onFinish(opts)
	rs.sent = rs.inline[:0]
	rs.cond.L = &rs.mu
	// The first attempt runs under the caller's context itself: a failed attempt is finished
	// by grpc-go, so only later attempts need a context of their own to be abandoned.
	cs, err := streamer(ctx, desc, cc, method, rs.opts...)
	if err == nil {
		rs.cur = cs
		rs.watchFinish()
		return rs, nil
	}
	if _, err := rs.recover(nil, err); err != nil {
		return nil, err
	}
	rs.watchFinish()
	return rs, nil
}

// neverRetried reports whether the method's configured or built-in level is NeverRetry: its
// streams are only classified.
func (s *Set) neverRetried(method string) bool {
	if l, ok := lookup(s.levels, method); ok {
		return l == retry.NeverRetry
	}
	l, _ := lookup(builtinIdempotency, method)
	return l == retry.NeverRetry
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
	return c.set.classify(c.ctx, c.cc, err, c.method, first, c.opts)
}

// retryStream is a stream retried until it commits.
//
// Two locks: retryMu is held by the one goroutine that decides about a failed attempt and
// opens the next (the tracker is used only under it; another goroutine that finds the same
// attempt failed waits for that outcome); mu guards the state below it, and is held only
// briefly (and while a new attempt replays the sent messages). cond, on mu, reports changes
// of the current attempt and of who receives on it.
type retryStream struct {
	set         *Set
	ctx         context.Context // the caller's
	desc        *grpc.StreamDesc
	cc          *grpc.ClientConn
	method      string
	streamer    grpc.Streamer
	opts        []grpc.CallOption // without grpc.OnFinish
	finishers   []func(error)     // grpc.OnFinish callbacks, run once by end
	classifyOut bool
	resumer     Resumer // nil: the stream is not resumed after commit

	retryMu sync.Mutex
	tracker retry.Tracker

	mu          sync.Mutex
	cond        sync.Cond
	cur         grpc.ClientStream
	attemptSent bool // a SendMsg on cur reached its transport
	receiving   bool // a goroutine is in cur.RecvMsg
	committed   bool // no more retries
	settled     bool // the budget was told the stream succeeded
	final       error
	ended       bool // final is set: io.EOF for a clean end, else the error RecvMsg returns
	sent        []any
	inline      [1]any // sent's storage for the usual single request
	sentBytes   int
	closeSent   bool
	first       any                  // the first message sent, for the call context
	lctx        context.Context      // the stream's context, made when asked for before commit
	cancels     []context.CancelFunc // of lctx and of the attempts after the first
	stopWatch   func() bool          // stops watchFinish's context.AfterFunc
	retries     int                  // attempts opened after the first, resumes included
	last        any                  // the last message delivered, when resumer is set
	sinceOpen   int                  // messages delivered by cur, when resumer is set
	header      metadata.MD          // the committed attempt's headers, kept when resuming
}

// watchFinish runs the OnFinish callbacks, if any, when the caller's context ends before the
// stream does, as grpc-go would for a stream abandoned by its caller.
func (rs *retryStream) watchFinish() {
	if len(rs.finishers) == 0 {
		return
	}
	stop := context.AfterFunc(rs.ctx, func() {
		rs.end(status.FromContextError(rs.ctx.Err()).Err())
	})
	rs.mu.Lock()
	rs.stopWatch = stop
	rs.mu.Unlock()
}

// out is the error as the caller sees it: classified, or as the chain returned it.
func (rs *retryStream) out(err error) error {
	if !rs.classifyOut || err == nil || err == io.EOF || nested(err) && holdsClassified(err) {
		return err
	}
	return rs.classified(err)
}

func (rs *retryStream) classified(err error) *errs.Error {
	rs.mu.Lock()
	first := rs.first
	rs.mu.Unlock()
	return rs.set.classify(rs.ctx, rs.cc, err, rs.method, first, rs.opts)
}

// recover handles the failure err of attempt cs (nil: the stream could not be opened)
// before commit: it returns the attempt to carry on with, or the stream's final error.
func (rs *retryStream) recover(cs grpc.ClientStream, err error) (grpc.ClientStream, error) {
	rs.retryMu.Lock()
	defer rs.retryMu.Unlock()
	if next, done, final := rs.dealtWith(cs); done {
		return next, final
	}
	rs.mu.Lock()
	committed, notSent := rs.committed, !rs.attemptSent
	rs.mu.Unlock()
	if committed { // by a SendMsg past the replay limit, while the attempt was failing
		return nil, rs.end(rs.out(err))
	}
	f := retry.Failure{Method: rs.method, Idempotency: rs.set.idempotency(rs.method, keyNone)}
	return rs.retry(err, f, notSent, rs.open)
}

// dealtWith reports whether attempt cs's failure needs no decision: the stream ended (its
// final error), or another goroutine already replaced the attempt (the next one). Called
// with retryMu held.
func (rs *retryStream) dealtWith(cs grpc.ClientStream) (next grpc.ClientStream, done bool, final error) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	switch {
	case rs.ended:
		return nil, true, rs.final
	case rs.cur != cs:
		return rs.cur, true, nil
	}
	return nil, false, nil
}

// retry puts the failure err of the current attempt to the policy, waits, and makes the next
// attempt with open, until one opens or the policy says stop: it returns the new attempt, or
// the stream's final error. notSent says whether err's attempt sent nothing. Called with
// retryMu held.
func (rs *retryStream) retry(err error, f retry.Failure, notSent bool, open func() (grpc.ClientStream, error)) (grpc.ClientStream, error) {
	f.Interrupt = closeWatch(rs.cc)
	for {
		if nested(err) { // another faultline loop down the chain gave up: never again
			return nil, rs.end(rs.out(err))
		}
		f.Classified = rs.classified(err)
		switch {
		case localFailure(f.Classified):
			f.Origin = retry.OriginLocal
		case notSent:
			f.Origin = retry.OriginNotSent
		default:
			f.Origin = retry.OriginUnknown
		}
		out := err
		if rs.classifyOut {
			out = f.Classified
		}
		if stop := rs.tracker.Failed(rs.ctx, out, f); stop != nil {
			return nil, rs.end(stop)
		}
		next, oerr := open()
		switch {
		case oerr == nil:
			return next, nil
		case errors.Is(oerr, errCommitted):
			return nil, rs.end(out)
		}
		err, notSent = oerr, true
	}
}

// errCommitted is open's report that the stream committed while a retry waited, so the
// messages the new attempt would replay are gone.
var errCommitted = errors.New("interceptor: stream committed before the retry")

// open opens a stream for the next attempt, under a context of its own (released when the
// stream ends), with the attempt header, and replays what was sent. Called with retryMu held.
func (rs *retryStream) open() (grpc.ClientStream, error) {
	return rs.openWith(nil)
}

// openWith is open, sending msg and closing the send side instead of replaying when msg is
// not nil (a resumed stream).
func (rs *retryStream) openWith(msg any) (grpc.ClientStream, error) {
	if rs.stale(msg) { // committed (or ended) while the retry waited: nothing to replay
		return nil, errCommitted
	}
	ctx, cancel := context.WithCancel(rs.ctx)
	rs.retries++
	if rs.set.header != "" {
		ctx = withAttempt(ctx, rs.set.header, rs.retries)
	}
	cs, err := rs.streamer(ctx, rs.desc, rs.cc, rs.method, rs.opts...)
	if err != nil {
		cancel()
		return nil, err
	}
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.staleLocked(msg) { // committed while the stream was being opened
		cancel()
		return nil, errCommitted
	}
	sent := false
	if msg != nil {
		sent = cs.SendMsg(msg) == nil
		_ = cs.CloseSend() // a server stream's one request
	} else {
		for _, m := range rs.sent {
			if cs.SendMsg(m) != nil {
				break // the attempt ended; the next receive or send learns how
			}
			sent = true
		}
		if rs.closeSent {
			_ = cs.CloseSend() // as above
		}
	}
	rs.cancels = append(rs.cancels, cancel)
	rs.cur, rs.attemptSent, rs.sinceOpen = cs, sent, 0
	rs.cond.Broadcast()
	return cs, nil
}

// stale reports whether a new attempt would be of no use: the stream ended, or (for a retry,
// msg nil) it committed, so the messages to replay are gone.
func (rs *retryStream) stale(msg any) bool {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.staleLocked(msg)
}

func (rs *retryStream) staleLocked(msg any) bool { return rs.ended || rs.committed && msg == nil }

// end finishes the stream with err (io.EOF or nil for a clean end) once: later receives
// return it, sends return io.EOF, the OnFinish callbacks run, and the contexts the stream
// made are released. It returns the final error (the first one, if the stream had already
// ended).
func (rs *retryStream) end(err error) error {
	if err == nil {
		err = io.EOF
	}
	rs.mu.Lock()
	if rs.ended {
		final := rs.final
		rs.mu.Unlock()
		return final
	}
	rs.ended, rs.final = true, err
	rs.sent, rs.sentBytes = nil, 0
	cancels, stop := rs.cancels, rs.stopWatch
	rs.cancels = nil
	rs.cond.Broadcast()
	rs.mu.Unlock()
	if stop != nil {
		stop()
	}
	for _, c := range cancels {
		c()
	}
	outcome := err
	if outcome == io.EOF {
		outcome = nil
	}
	finish(rs.finishers, outcome)
	return err
}

// commit marks the stream committed: the caller has seen a response, so it is never retried
// again and the sent messages are dropped.
func (rs *retryStream) commit() {
	rs.mu.Lock()
	if rs.committed {
		rs.mu.Unlock()
		return
	}
	rs.commitLocked()
	rs.mu.Unlock()
	// Tell the budget, unless a goroutine is deciding about a failed attempt right now: that
	// retry is then abandoned (open finds the stream committed) and the stream ends failed.
	if rs.retryMu.TryLock() {
		rs.settle()
		rs.retryMu.Unlock()
	}
}

// settle tells the budget the stream succeeded, once. Called with retryMu held.
func (rs *retryStream) settle() {
	rs.mu.Lock()
	done := rs.settled || rs.ended
	rs.settled = true
	rs.mu.Unlock()
	if !done {
		rs.tracker.Succeeded(rs.ctx, rs.method)
	}
}

func (rs *retryStream) commitLocked() {
	rs.committed = true
	rs.sent, rs.sentBytes = nil, 0
	rs.cond.Broadcast()
}

// receive calls cs.RecvMsg(m) as the one goroutine receiving on the stream: a RecvMsg and a
// Header that probes an ended attempt never receive on it at once.
func (rs *retryStream) receive(cs grpc.ClientStream, m any) error {
	err := cs.RecvMsg(m)
	rs.mu.Lock()
	rs.receiving = false
	rs.cond.Broadcast()
	rs.mu.Unlock()
	return err
}

func (rs *retryStream) RecvMsg(m any) error {
	for {
		rs.mu.Lock()
		for rs.receiving && !rs.ended {
			rs.cond.Wait() // a Header probing an ended attempt: brief
		}
		if rs.ended {
			final := rs.final
			rs.mu.Unlock()
			return final
		}
		cs, committed := rs.cur, rs.committed
		rs.receiving = true
		rs.mu.Unlock()

		err := rs.receive(cs, m)
		switch {
		case err == nil:
			rs.commit()
			if rs.resumer != nil {
				rs.mu.Lock()
				rs.last = m
				rs.sinceOpen++
				rs.mu.Unlock()
			}
			if !rs.desc.ServerStreams {
				rs.end(nil) // its one response: the stream is over
			}
			return nil
		case err == io.EOF:
			rs.commit()
			return rs.end(nil)
		case committed && rs.resumer != nil:
			if _, err := rs.resume(cs, err); err != nil {
				return err
			}
			continue
		case committed:
			return rs.end(rs.out(err))
		}
		if _, err := rs.recover(cs, err); err != nil {
			return err
		}
	}
}

// settleEnded learns how attempt cs, which ended without headers before commit, ended, and
// retries it or ends the stream: it returns the attempt to carry on with, or the final error
// (io.EOF for a clean end). An attempt without headers holds no message, so receiving on it
// takes nothing from the caller.
func (rs *retryStream) settleEnded(cs grpc.ClientStream) (grpc.ClientStream, error) {
	rs.mu.Lock()
	for rs.receiving && rs.cur == cs && !rs.ended {
		rs.cond.Wait() // a RecvMsg on the ended attempt returns at once and deals with it
	}
	switch {
	case rs.ended:
		final := rs.final
		rs.mu.Unlock()
		return nil, final
	case rs.cur != cs:
		next := rs.cur
		rs.mu.Unlock()
		return next, nil
	}
	rs.receiving = true
	rs.mu.Unlock()
	err := rs.receive(cs, new(emptypb.Empty))
	if err == nil || err == io.EOF {
		// A message without headers cannot arrive; an ended attempt with a clean status and
		// no headers is the end of the stream.
		rs.commit()
		return nil, rs.end(nil)
	}
	return rs.recover(cs, err)
}

func (rs *retryStream) Header() (metadata.MD, error) {
	for {
		rs.mu.Lock()
		cs, committed, ended, final := rs.cur, rs.committed, rs.ended, rs.final
		rs.mu.Unlock()
		if ended && !committed {
			if final == io.EOF {
				return nil, nil
			}
			return nil, final
		}
		if committed {
			rs.mu.Lock()
			kept := rs.header
			rs.mu.Unlock()
			if kept != nil {
				return kept, nil
			}
		}
		md, err := cs.Header()
		switch {
		case committed:
			return md, rs.out(err)
		case err == nil && md != nil:
			rs.commit()
			return md, nil
		case err != nil:
			_, _ = rs.recover(cs, err)
			continue // the stream goes on with the next attempt, or it ended: see above
		}
		// The attempt ended without headers: wait for its outcome. Whether the stream goes on,
		// or ended (it may have committed on a later attempt meanwhile: its headers are the
		// stream's), the next turn of the loop says what to return.
		_, _ = rs.settleEnded(cs)
	}
}

func (rs *retryStream) SendMsg(m any) error {
	rs.mu.Lock()
	if rs.ended {
		rs.mu.Unlock()
		return io.EOF
	}
	if !rs.committed {
		rs.keep(m)
	}
	cs, committed := rs.cur, rs.committed
	rs.mu.Unlock()
	err := cs.SendMsg(m)
	switch {
	case err == nil:
		rs.mu.Lock()
		if rs.cur == cs {
			rs.attemptSent = true
		}
		rs.mu.Unlock()
		return nil
	case committed:
		return rs.out(err)
	case err != io.EOF:
		// grpc-go finishes a stream on an error of the send itself (a message over the
		// send limit, a codec error): the client made it and would make it again.
		return rs.end(rs.out(err))
	}
	// The attempt ended. m is kept: a retry replays it. Learn how the attempt ended.
	if md, _ := cs.Header(); md != nil { // returns at once: the attempt is over
		// The server answered before failing: what it sent is the caller's to receive, so
		// the stream commits and RecvMsg reports the outcome, as grpc-go's would.
		rs.commit()
		return io.EOF
	}
	if _, err := rs.settleEnded(cs); err != nil {
		return io.EOF // not retried: RecvMsg returns the error
	}
	// Retried: every attempt opened after m was kept replays it.
	return nil
}

// keep keeps m for replay, or commits when it cannot: over the replay limit, counted as
// grpc-go counts a message on the wire (its encoded size plus the 5-byte message header), or
// not a proto message, whose size is unknown. grpc-go's contract makes it safe to keep m
// itself: the caller may not modify a message after SendMsg. The first message also serves
// as the call context. Called with mu held.
func (rs *retryStream) keep(m any) {
	if rs.first == nil {
		rs.first = m
	}
	pm, ok := m.(proto.Message)
	if !ok {
		rs.commitLocked()
		return
	}
	size := proto.Size(pm) + messageHeaderLen
	if rs.sentBytes+size > rs.set.replayLimit {
		rs.commitLocked()
		return
	}
	rs.sent = append(rs.sent, m)
	rs.sentBytes += size
}

// messageHeaderLen is the gRPC message header on the wire: a compression flag and a 4-byte
// length.
const messageHeaderLen = 5

func (rs *retryStream) CloseSend() error {
	rs.mu.Lock()
	if rs.ended {
		rs.mu.Unlock()
		return nil
	}
	rs.closeSent = true
	cs := rs.cur
	rs.mu.Unlock()
	return rs.out(cs.CloseSend())
}

// Context returns the stream's context. Asked for before the stream commits, or on a stream
// that may be resumed, it is a context of the logical stream (a child of the caller's, done
// when the stream ends), so a retry does not cancel it; after commit, grpc-go's context of
// the attempt that committed.
func (rs *retryStream) Context() context.Context {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if rs.lctx != nil {
		return rs.lctx
	}
	if rs.committed && rs.resumer == nil {
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
	rs.mu.Unlock()
	return cs.Trailer()
}
