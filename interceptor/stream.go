package interceptor

import (
	"context"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/internal/calls"
	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/internal/transport"
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
// if nothing happened; an attempt of a method of unknown idempotency whose response headers
// had arrived is not repeated (gRFC A6). After it, errors are classified and returned, never
// retried, so no response is ever delivered twice; a server stream with a resumer (see
// [WithResumer]) is resumed instead. A stream of a method that is never repeated
// (StreamExec) is retried only when its attempt never reached a transport. The policy's
// PerAttemptTimeout does not apply to streams, which may live long. A stream whose policy
// retries returns a *retry.Error holding the last attempt's *errs.Error when it gives up,
// before or after committing (after committing, its stop reason says why it was not
// resumed: "not resumable", or the policy's own reason); a stream of one attempt returns
// the *errs.Error itself.
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
	if rt.Bare {
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			return nil, s.classify(ctx, cc, err, method, nil, opts)
		}
		return &classifiedStream{ClientStream: cs, set: s, ctx: ctx, cc: cc, method: method, opts: opts}, nil
	}
	rs := &retryStream{set: s, ctx: ctx, desc: desc, cc: cc, method: method, streamer: streamer, rt: rt}
	rs.resumes = desc.ServerStreams && !desc.ClientStreams && s.b.Calls.Resumes(method)
	rs.opts, rs.finishers = onFinish(opts)
	rs.cond.L = &rs.mu
	rs.mu.Lock()
	defer rs.unlock()
	err = rt.Engine.Admit()
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
// resumer. Each operation (RecvMsg, SendMsg, Header, CloseSend) runs on the current attempt
// without the lock; a failure is handed to recoverLocked, which decides about it and opens
// and replays the next attempt, under the lock, in the goroutine that saw it (the role of
// grpc-go's withRetry). cond reports changes of the attempt and of who receives on it.
type retryStream struct {
	set       *Set
	ctx       context.Context // the caller's
	desc      *grpc.StreamDesc
	cc        *grpc.ClientConn
	method    string
	streamer  grpc.Streamer
	opts      []grpc.CallOption // without grpc.OnFinish
	finishers []func(error)     // grpc.OnFinish callbacks, run once by end
	rt        *transport.Route
	resumes   bool // the stream is resumed after commit (a server stream with a resumer)

	mu            sync.Mutex
	cond          sync.Cond
	t             engine.Tracker // made at the first failure: a stream that never fails needs none
	cur           grpc.ClientStream
	n             int  // the current attempt's serial number, 0 for the first
	sent          bool // a SendMsg on cur reached its transport
	receiving     bool // a goroutine is in cur.RecvMsg
	retrying      bool // a goroutine is deciding about a failure, or opening the next attempt
	committed     bool // no more retries from the start
	reported      bool // the current attempt's success was reported to the budget and throttle
	ended         bool // final is set: io.EOF for a clean end, else the error RecvMsg returns
	final         error
	replay        replay // the messages sent before commit, as SendMsg took them
	closeSent     bool
	first         any                  // the first message sent, for the call context
	lctx          context.Context      // the stream's context, made when asked for before commit
	cancels       []context.CancelFunc // of lctx
	attemptCancel context.CancelFunc   // of the current attempt, when it is not the first
	stopWatch     func() bool          // stops watchFinish's context.AfterFunc
	sinceOpen     int                  // messages the current attempt delivered
	last          any                  // the last message delivered, when resumer is set
	header        metadata.MD          // the committed attempt's headers, kept when resuming
	reporting     bool                 // the stream ended: unlock runs report
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
	if rs.attemptCancel != nil {
		cancels = append(cancels, rs.attemptCancel)
	}
	rs.cancels, rs.attemptCancel = nil, nil
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
		f := engine.Facts{Level: uint8(rs.set.b.Calls.Level(rs.method, calls.KeyNone)), Reported: rs.reported}
		if stop := rs.tracker().Failed(rs.ctx, err, f); stop != nil { // never nil: the context ended
			err = rs.finalOf(stop)
		}
		rs.endLocked(err)
	})
}

// tracker returns the stream's tracker, made at its first need. Called with mu held.
func (rs *retryStream) tracker() engine.Tracker {
	if rs.t == nil {
		rs.t = rs.rt.Engine.Track(rs.method, conn(rs.cc))
		if rs.cur != nil {
			rs.watchFinish()
		}
	}
	return rs.t
}

// finalOf is the stream's final error when the engine ended it with stop: stop itself, or
// the last attempt's own error for a stream that makes one attempt.
func (rs *retryStream) finalOf(stop error) error {
	if !rs.rt.Retries {
		return transport.Single(stop)
	}
	return stop
}

// out is the error as the caller sees it: classified.
func (rs *retryStream) out(err error) error {
	if err == nil || err == io.EOF || transport.Nested(err) && transport.HoldsClassified(err) {
		return err
	}
	return rs.classified(err)
}

// classified classifies err with what the stream is about. Called with mu held.
func (rs *retryStream) classified(err error) error {
	return rs.set.classify(rs.ctx, rs.cc, err, rs.method, rs.first, rs.opts)
}
