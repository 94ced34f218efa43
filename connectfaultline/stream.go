package connectfaultline

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/faultline-go/faultline/internal/calls"
	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/internal/transport"
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
// apply to streams, which may live long. A stream that gives up returns a *retry.Error from
// Receive, wrapping the last attempt's *errs.Error; after commit, its stop reason says why
// the stream was not resumed (retry.StopNotResumable when the policy would have retried).
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
	rt      *transport.Route
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
	reported  bool               // the current attempt's success was reported to the budget and throttle
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

func (i *Interceptor) newStream(ctx context.Context, spec connect.Spec, next connect.StreamingClientFunc, rt *transport.Route) connect.StreamingClientConn {
	if err := rt.Engine.Admit(); err != nil {
		// Shed by the throttle: no attempt is made.
		t := rt.Engine.Track(spec.Procedure, nil)
		err = t.Failed(ctx, i.classify(ctx, err, spec.Procedure, nil), engine.Facts{NotSent: true})
		return &deadConn{spec: spec, header: make(http.Header), err: err}
	}
	cs := next(ctx, spec)
	s := &stream{i: i, ctx: ctx, spec: spec, next: next, rt: rt, first: cs, cur: cs,
		resumes: spec.StreamType == connect.StreamTypeServer && i.b.Calls.Resumes(spec.Procedure)}
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

func (s *stream) Send(m any) error {
	s.mu.Lock()
	defer s.unlock()
	s.await(false)
	if s.ended {
		return io.EOF
	}
	s.took(m)
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
	return s.sendEndedLocked(n, cs)
}

// took keeps m, which the caller is sending, for replay (or commits the stream when it
// cannot), and as the call's first message. Called with mu held.
func (s *stream) took(m any) {
	if m == nil {
		s.started = true // connect-go's Send(nil): send the request headers now
		return
	}
	if s.firstMsg == nil {
		s.firstMsg = m
	}
	if !s.committed && !s.keep(m) {
		s.commitLocked() // past the replay limit, or not a proto message: no more retries
	}
}

// sendEndedLocked deals with a Send on attempt n, cs, that learnt the attempt had ended
// before commit. The message is kept: a retry replays it. It learns how the attempt ended
// without taking a message from the caller (the attempt's response is in, or comes at
// once), and returns nil when a new attempt replayed the message, else io.EOF (Receive
// then reports the outcome). Called with mu held.
func (s *stream) sendEndedLocked(n int, cs connect.StreamingClientConn) error {
	s.mu.Unlock()
	h := cs.ResponseHeader()
	s.mu.Lock()
	s.awaitReceiver(n) // a Receive on the ended attempt returns soon and deals with it
	switch {
	case s.ended, s.committed:
		return io.EOF
	case n != s.n:
		return nil
	case !noMessage(h):
		// The server answered: what it sent is the caller's to receive, so the stream
		// commits and Receive reports the outcome, as connect-go's would.
		s.commitLocked()
		return io.EOF
	}
	if err := s.settleLocked(n, cs); err != nil {
		return io.EOF // not retried: Receive returns the error
	}
	return nil // retried: the new attempt replayed the message
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
		s.answeredLocked()
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
			s.answeredLocked()
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
		s.awaitReceiver(n)
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
			f := engine.Facts{Level: uint8(s.i.level(s.spec, calls.KeyNone)), Reported: s.reported}
			var final error = c
			if stop := s.t.Failed(s.ctx, c, f); stop != nil { // never nil: the context ended
				final = s.finalOf(stop)
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
