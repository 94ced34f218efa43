package connectfaultline

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"sync"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/faultline-go/faultline/internal/calls"
	"github.com/faultline-go/faultline/internal/engine"
)

// WrapStreamingClient returns the streaming client function with faultline around it:
// errors of Send, Receive, CloseRequest and CloseResponse are classified into *errs.Error
// (the end of a stream, an error wrapping io.EOF, stays as it is), and a stream is retried by
// its procedure's policy until it commits.
//
// A stream commits when the first response message reaches the caller, or when the
// messages it sent exceed the replay limit ([WithReplayLimit]). Before that, a failure is
// retried by the rules of package retry: a new stream is opened with the caller's request
// headers (and the attempt header), the messages sent so far are replayed in order as they
// were when Send took them (and CloseRequest, if the caller had called it), and Receive
// carries on as if nothing happened. After it, errors are classified and returned, never
// retried, so no response is ever delivered twice; a server stream with a resumer (see
// [WithResumer]) is resumed instead. A stream of a procedure that is never repeated
// (StreamExec) is retried only when its dial failed. The policy's PerAttemptTimeout does not
// apply to streams, which may live long. A stream that gives up before committing returns a
// *retry.Error from Receive; after committing, an *errs.Error (or a *retry.Error saying why it
// was not resumed).
//
// The retried stream behaves as one stream: once a failure will not be retried, Send returns
// io.EOF and Receive the error, as connect-go's streams do; ResponseHeader returns the
// headers of the attempt that delivered the first message (before that, of the current
// attempt once its response arrived: connect-go servers answer a failed stream with headers
// too, so these may be of an attempt that then fails and is retried), ResponseTrailer the
// last attempt's; the OnDone hook runs once, when the stream ends (Receive returns an error,
// or the caller calls CloseResponse). Send and Receive may be called from different
// goroutines as connect-go allows; the hooks run on them, and must not call the stream's
// methods. The request headers must be set before the first Send, as connect-go requires for
// them to be sent at all: retries send them as they were then.
func (i *Interceptor) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return func(ctx context.Context, spec connect.Spec) connect.StreamingClientConn {
		if i.err != nil {
			return &deadConn{spec: spec, header: make(http.Header), err: i.err}
		}
		rt := i.route(spec.Procedure)
		if rt == nil {
			return &classifiedConn{StreamingClientConn: next(ctx, spec), i: i, ctx: ctx}
		}
		return i.newStream(ctx, spec, next, rt)
	}
}

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

// stream is a stream retried until it commits, and resumed after it when it has a resumer.
// Every operation runs on the current attempt without the lock; a failure is decided about,
// and the next attempt opened and replayed, under the lock, by the goroutine that saw it
// (grpc-go's withRetry shape). While it decides and opens, it releases the lock with
// retrying set, and the other goroutines wait on cond (a goroutine blocked on a mutex would
// stop a testing/synctest bubble's clock; one waiting on a condition does not).
type stream struct {
	i       *Interceptor
	ctx     context.Context // the caller's
	spec    connect.Spec
	next    connect.StreamingClientFunc
	rt      *route
	resumes bool                        // resumed after commit: a server stream with a resumer
	first   connect.StreamingClientConn // the first attempt, whose request headers the caller set

	mu        sync.Mutex
	cond      sync.Cond
	t         engine.Tracker // made at the first failure: a stream that never fails needs none
	cur       connect.StreamingClientConn
	cancel    context.CancelFunc // of cur's own context; nil for the first attempt's
	n         int                // the current attempt's serial number, 0 for the first
	receiving bool               // a goroutine is in cur.Receive
	retrying  bool               // a goroutine is deciding about a failure, or opening the next attempt
	committed bool               // no more retries from the start
	ended     bool               // final is set
	final     error              // what Receive returns once the stream ended (wraps io.EOF for a clean end)
	clean     bool               // the stream ended with the server's clean end
	reporting bool               // the stream ended: unlock runs report
	replay    []proto.Message    // copies of the messages sent before commit, as Send took them
	bytes     int                // of replay, counted as on the wire
	started   bool               // Send(nil) asked for the request to start without a message
	closeSent bool
	firstMsg  any         // the first message sent, for the call's resources
	sinceOpen int         // messages the current attempt delivered
	last      any         // the last message delivered, when resumes is set
	header    http.Header // the response headers of the attempt that committed
}

func (i *Interceptor) newStream(ctx context.Context, spec connect.Spec, next connect.StreamingClientFunc, rt *route) connect.StreamingClientConn {
	if err := rt.e.Admit(); err != nil {
		// Shed by the throttle: no attempt is made.
		t := rt.e.Track(spec.Procedure, nil)
		err = t.Failed(ctx, i.classify(ctx, err, spec.Procedure, nil), engine.Facts{NotSent: true})
		return &deadConn{spec: spec, header: make(http.Header), err: err}
	}
	cs := next(ctx, spec)
	s := &stream{i: i, ctx: ctx, spec: spec, next: next, rt: rt, first: cs, cur: cs,
		resumes: spec.StreamType == connect.StreamTypeServer && i.calls.Resumes(spec.Procedure)}
	s.cond.L = &s.mu
	return s
}

func (s *stream) Spec() connect.Spec           { return s.spec }
func (s *stream) Peer() connect.Peer           { return s.first.Peer() }
func (s *stream) RequestHeader() http.Header   { return s.first.RequestHeader() }
func (s *stream) ResponseTrailer() http.Header { return s.current().ResponseTrailer() }

func (s *stream) current() connect.StreamingClientConn {
	s.mu.Lock()
	defer s.unlock()
	return s.cur
}

// unlock releases the lock, then, once after the stream ended, reports its end outside the
// lock (the OnDone hook may take time, or locks of its own), and releases the contexts the
// stream made.
func (s *stream) unlock() {
	if !s.reporting {
		s.mu.Unlock()
		return
	}
	s.reporting = false
	cancel, t, clean := s.cancel, s.t, s.clean
	s.cancel = nil
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if t != nil && clean {
		t.End(s.ctx) // a failure was told to the hooks by the tracker's Failed
	}
}

// tracker returns the stream's tracker, made at its first need. Called with mu held.
func (s *stream) tracker() engine.Tracker {
	if s.t == nil {
		s.t = s.rt.e.Track(s.spec.Procedure, peer(s.first.Peer().Addr))
	}
	return s.t
}

// out is an error as the caller sees it: classified (the end of the stream as it is).
func (s *stream) out(err error) error {
	if err == nil || errors.Is(err, io.EOF) {
		return err
	}
	return s.i.final(s.ctx, err, s.spec.Procedure, s.firstMsg)
}

// await waits, with mu held, while another goroutine retries the stream, and, when
// receiving is set, while one receives on it.
func (s *stream) await(receiving bool) {
	for (s.retrying || receiving && s.receiving) && !s.ended {
		s.cond.Wait()
	}
}

// endLocked ends the stream once with err, what Receive returns from then on (an error
// wrapping io.EOF for the server's clean end), and returns it (the first one, if the stream
// had already ended). The OnDone hook runs once the lock is released. Called with mu held.
func (s *stream) endLocked(err error) error {
	if s.ended {
		return s.final
	}
	s.ended, s.final, s.reporting = true, err, true
	s.clean = errors.Is(err, io.EOF)
	s.replay, s.bytes = nil, 0
	s.cond.Broadcast()
	return err
}

// commitLocked marks the stream committed: the caller has seen a response, so it is never
// retried from the start again, and the sent messages are dropped (a resumable stream keeps
// its request, which it resumes from). The budget is told the stream succeeded. Called with
// mu held.
func (s *stream) commitLocked() {
	if s.committed {
		return
	}
	s.committed = true
	if !s.resumes {
		s.replay, s.bytes = nil, 0
	}
	s.cond.Broadcast()
	if s.t == nil {
		s.rt.e.Succeeded()
	} else {
		s.t.Committed()
	}
}

// delivered counts a message delivered to the caller by the current attempt. Called with mu
// held, by the goroutine that received it.
func (s *stream) delivered(m any) {
	if s.sinceOpen == 0 && s.committed && s.n > 0 && s.resumes {
		s.t.Committed() // a resumed attempt delivered: it succeeded
	}
	if !s.committed {
		s.header = s.cur.ResponseHeader() // at once: a message arrived
		s.commitLocked()
	}
	s.sinceOpen++
	if s.resumes {
		s.last = m
	}
}

// keep keeps a copy of m for replay; it reports false when it cannot: over the replay limit
// (counted as on the wire: its size plus the 5-byte envelope prefix), or not a proto
// message.
func (s *stream) keep(m any) bool {
	pm, ok := m.(proto.Message)
	if !ok {
		return false
	}
	size := proto.Size(pm) + 5
	if s.bytes+size > s.i.replayLimit {
		return false
	}
	s.replay = append(s.replay, proto.Clone(pm))
	s.bytes += size
	return true
}

func (s *stream) Send(m any) error {
	s.mu.Lock()
	defer s.unlock()
	s.await(false)
	if s.ended {
		return io.EOF
	}
	if m == nil {
		s.started = true // connect-go's Send(nil): send the request headers now
	} else {
		if s.firstMsg == nil {
			s.firstMsg = m
		}
		if !s.committed && !s.keep(m) {
			s.commitLocked() // past the replay limit, or not a proto message: no more retries
		}
	}
	cs, n, committed := s.cur, s.n, s.committed
	s.mu.Unlock()
	err := cs.Send(m)
	s.mu.Lock()
	s.await(false)
	switch {
	case s.ended:
		return io.EOF
	case n != s.n:
		return nil // a new attempt replaced this one and replayed m
	case err == nil:
		return nil
	case committed:
		return s.out(err)
	case !errors.Is(err, io.EOF):
		// A failure of the send itself, which connect-go reports only for what the client
		// made (a message over the send limit, a codec error: never retried) or its context.
		return s.recoverLocked(n, err)
	}
	// The attempt ended (the server answered, or the request failed). m is kept: a retry
	// replays it. Learn how the attempt ended without taking a message from the caller:
	// its response is in, or comes at once.
	s.mu.Unlock()
	h := cs.ResponseHeader()
	s.mu.Lock()
	s.await(true) // a Receive on the ended attempt returns soon and deals with it
	switch {
	case s.ended:
		return io.EOF
	case n != s.n:
		return nil
	case s.committed:
		return io.EOF
	case !noMessage(h):
		// The server answered: what it sent is the caller's to receive, so the stream
		// commits and Receive reports the outcome, as connect-go's would.
		s.commitLocked()
		return io.EOF
	}
	if err := s.settleLocked(n, cs); err != nil {
		return io.EOF // not retried: Receive returns the error
	}
	return nil // retried: the new attempt replayed m
}

// noMessage reports whether response headers h say the response holds no message: there
// was no response (connect-go gives an empty header then), or it is a gRPC trailers-only
// response (its status is in its headers).
func noMessage(h http.Header) bool {
	return len(h) == 0 || h.Get("Grpc-Status") != ""
}

// settleLocked learns how attempt n, which ended before commit without a message for the
// caller, ended, and retries it or ends the stream; it returns nil when the stream goes
// on, else its final error. Called with mu held and no goroutine receiving.
func (s *stream) settleLocked(n int, cs connect.StreamingClientConn) error {
	err := cs.Receive(new(emptypb.Empty)) // returns at once with the attempt's error
	if err == nil || errors.Is(err, io.EOF) {
		// A message or a clean end cannot come from a response without one; if it does, the
		// stream is over as the server said.
		s.commitLocked()
		return s.endLocked(io.EOF)
	}
	return s.recoverLocked(n, err)
}

func (s *stream) Receive(m any) error {
	s.mu.Lock()
	defer s.unlock()
	for {
		s.await(true)
		if s.ended {
			return s.final
		}
		cs, n := s.cur, s.n
		s.receiving = true
		s.mu.Unlock()
		err := cs.Receive(m)
		s.mu.Lock()
		s.receiving = false
		s.cond.Broadcast()
		s.await(false)
		switch {
		case n != s.n:
			continue // another goroutine moved the stream to a new attempt
		case err == nil:
			s.delivered(m)
			return nil
		case errors.Is(err, io.EOF):
			s.commitLocked()
			return s.endLocked(err)
		}
		if err := s.recoverLocked(n, err); err != nil {
			return err
		}
	}
}

func (s *stream) ResponseHeader() http.Header {
	s.mu.Lock()
	defer s.unlock()
	for {
		s.await(false)
		if s.header != nil {
			return s.header
		}
		cs, n := s.cur, s.n
		if s.ended {
			s.mu.Unlock()
			h := cs.ResponseHeader() // at once: the attempt is over
			s.mu.Lock()
			return h
		}
		s.mu.Unlock()
		h := cs.ResponseHeader()
		s.mu.Lock()
		s.await(false)
		switch {
		case n != s.n:
			continue
		case s.header != nil:
			return s.header
		case s.ended || !noMessage(h):
			return h
		}
		// The attempt ended without a response: whether the stream goes on, or ended, the
		// next turn of the loop says what to return.
		s.await(true)
		if !s.ended && n == s.n {
			_ = s.settleLocked(n, cs)
		}
	}
}

func (s *stream) CloseRequest() error {
	s.mu.Lock()
	s.await(false)
	if s.ended {
		s.unlock()
		return nil
	}
	s.closeSent = true
	cs := s.cur
	s.unlock()
	if err := cs.CloseRequest(); err != nil {
		return s.out(err)
	}
	return nil
}

// CloseResponse closes the stream's receive side: the caller is done with it. A stream that
// had not ended ends here: when the caller's context had ended and the stream had failed
// before, the hooks report the call ended by the context; otherwise it ends as a clean end.
func (s *stream) CloseResponse() error {
	s.mu.Lock()
	s.await(false)
	if !s.ended {
		ctxErr := s.ctx.Err()
		if ctxErr != nil && s.t != nil {
			code := connect.CodeCanceled
			if errors.Is(ctxErr, context.DeadlineExceeded) {
				code = connect.CodeDeadlineExceeded
			}
			c := s.i.classify(s.ctx, connect.NewError(code, ctxErr), s.spec.Procedure, s.firstMsg)
			f := engine.Facts{Level: uint8(s.i.level(s.spec, calls.KeyNone))}
			var final error = c
			if stop := s.t.Failed(s.ctx, c, f); stop != nil { // never nil: the context ended
				final = stop
			}
			s.endLocked(final)
		} else {
			s.endLocked(io.EOF)
		}
	}
	cs := s.cur
	s.unlock()
	return s.out(cs.CloseResponse())
}

// recoverLocked handles the failure err of attempt n: before commit it retries (waiting as
// the policy says, then opening the next attempt and replaying what was sent); after commit
// it resumes, for a stream with a resumer, or ends the stream. It returns nil when the
// stream goes on with a new attempt (or another goroutine already replaced attempt n), else
// the stream's final error. Called with mu held.
func (s *stream) recoverLocked(n int, err error) error {
	switch {
	case s.ended:
		return s.final
	case n != s.n:
		return nil
	case s.committed:
		return s.resumeLocked(err)
	}
	return s.retryLocked(err, engine.Facts{Level: uint8(s.i.level(s.spec, calls.KeyNone))}, nil)
}

// resumeLocked handles the failure err of the current attempt after the stream committed,
// for a stream with a resumer: it opens the attempt that continues the stream (after the
// policy's wait) and returns nil, or ends the stream and returns its final error, saying why
// it was not resumed. Called with mu held.
func (s *stream) resumeLocked(err error) error {
	level := s.i.level(s.spec, calls.KeyNone)
	if nested(err) { // another faultline loop down the chain gave up: its error is final
		return s.endLocked(s.out(err))
	}
	var req proto.Message // nil when the caller sent a nil request: never read
	if len(s.replay) > 0 && calls.Valid(s.replay[0]) {
		req = s.replay[0] // as it was sent
	}
	last, _ := s.last.(proto.Message)
	c := s.i.classify(s.ctx, err, s.spec.Procedure, s.firstMsg)
	next, why := s.i.calls.ResumeRequest(s.spec.Procedure, level, c, req, last)
	if why != "" {
		stop := s.tracker().Failed(s.ctx, &calls.NotResumed{Err: c, Why: why}, engine.Facts{Level: uint8(level), NotResumable: true})
		return s.endLocked(stop) // never nil: a failure that cannot go on is never retried
	}
	f := engine.Facts{Level: uint8(level), Resume: true, Progressed: s.sinceOpen > 0}
	return s.retryLocked(err, f, next)
}

// retryLocked puts the failure err of the current attempt to the tracker and, when it says
// go on, opens the next attempt: a retry from the start (replaying what was sent), or, with
// next set, a resume that sends next. It returns nil when an attempt is open, else the
// stream's final error. Called with mu held, released while waiting and opening.
func (s *stream) retryLocked(err error, f engine.Facts, next proto.Message) error {
	if nested(err) { // another faultline loop down the chain gave up: never again
		return s.endLocked(s.out(err))
	}
	s.retrying = true
	defer func() {
		s.retrying = false
		s.cond.Broadcast()
	}()
	t := s.tracker()
	c := s.i.classify(s.ctx, err, s.spec.Procedure, s.firstMsg)
	f.NotSent, _ = factsOf(c)
	old, oldCancel := s.cur, s.cancel
	s.mu.Unlock()
	stop := t.Failed(s.ctx, c, f)
	// The failed attempt is over: release it (its request was sent, so closing does not
	// start it, and its response is in, so closing does not wait).
	if oldCancel != nil {
		oldCancel()
	}
	_ = old.CloseRequest()
	_ = old.CloseResponse()
	var cs connect.StreamingClientConn
	var cancel context.CancelFunc
	if stop == nil {
		cs, cancel = s.open(t.Attempt(), next)
	}
	s.mu.Lock()
	s.cancel = nil
	switch {
	case stop != nil:
		return s.endLocked(stop)
	case s.ended: // the caller closed the stream meanwhile
		cancel()
		return s.final
	}
	s.cur, s.cancel, s.sinceOpen = cs, cancel, 0
	s.n++
	return nil
}

// open opens attempt number attempt under a context of its own (released when the stream
// ends or retries), with the caller's request headers and the attempt header, and replays
// what was sent; or, with next set (a resume), sends next and closes the send side. A
// failure of the replay is learnt by the next receive or send. Called with retrying set and
// mu released: the replay does not change.
func (s *stream) open(attempt int, next proto.Message) (connect.StreamingClientConn, context.CancelFunc) {
	ctx, cancel := context.WithCancel(s.ctx)
	cs := s.next(ctx, s.spec)
	copyHeaders(cs.RequestHeader(), s.first.RequestHeader())
	if s.i.header != "" {
		cs.RequestHeader()[s.i.header] = []string{strconv.Itoa(attempt - 1)}
	}
	if next != nil {
		_ = cs.Send(next)
		_ = cs.CloseRequest() // a server stream's one request
		return cs, cancel
	}
	if len(s.replay) == 0 && s.started {
		_ = cs.Send(nil)
	}
	for _, m := range s.replay {
		if cs.Send(m) != nil {
			break // the attempt ended; the next receive or send learns how
		}
	}
	if s.closeSent {
		_ = cs.CloseRequest()
	}
	return cs, cancel
}

// timeoutHeaders are the request headers in which connect-go sends a call's deadline (gRPC
// and gRPC-Web; Connect): each attempt's own, set when it is created.
var timeoutHeaders = [...]string{"Grpc-Timeout", "Connect-Timeout-Ms"}

// copyHeaders gives a new attempt's request headers dst what the caller set in the first
// attempt's, src: every header whose values differ from those connect-go gave the new
// attempt (the protocol's own are the same for every attempt), except the deadline, which
// is the new attempt's own.
func copyHeaders(dst, src http.Header) {
	for k, vs := range src {
		if slices.Contains(timeoutHeaders[:], k) || slices.Equal(dst[k], vs) {
			continue
		}
		dst[k] = slices.Clone(vs)
	}
}
