package connectfaultline

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/internal/calls"
	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/internal/transport"
)

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
		s.t = s.rt.Engine.Track(s.spec.Procedure, peer(s.first.Peer().Addr))
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

// finalOf is the stream's final error when the engine ended it with stop: stop itself, or
// the last attempt's own error for a stream that makes one attempt.
func (s *stream) finalOf(stop error) error {
	if !s.rt.Retries {
		return transport.Single(stop)
	}
	return stop
}

// awaitReceiver waits, with mu held, while another goroutine retries the stream or receives
// on attempt n: a receiver the stream already moved on to a later attempt is not waited for
// (it may wait for messages only the caller waiting here would send).
func (s *stream) awaitReceiver(n int) {
	for (s.retrying || s.receiving) && !s.ended && s.n == n {
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
}

// answeredLocked commits the stream on a response that reached the caller (a message, a
// clean end) and reports the current attempt's success to the budget and the throttle,
// once per attempt. Called with mu held.
func (s *stream) answeredLocked() {
	s.commitLocked()
	if s.reported {
		return
	}
	s.reported = true
	if s.t == nil {
		s.rt.Engine.Succeeded()
	} else {
		s.t.Committed()
	}
}

// delivered counts a message delivered to the caller by the current attempt. Called with mu
// held, by the goroutine that received it.
func (s *stream) delivered(m any) {
	if !s.committed {
		s.header = s.cur.ResponseHeader() // at once: a message arrived
	}
	s.answeredLocked()
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
	if s.bytes+size > s.i.b.ReplayLimit {
		return false
	}
	s.replay = append(s.replay, proto.Clone(pm))
	s.bytes += size
	return true
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
	return s.retryLocked(err, engine.Facts{Level: uint8(s.i.level(s.spec, calls.KeyNone)), Reported: s.reported}, nil)
}

// resumeLocked handles the failure err of the current attempt after the stream committed,
// for a stream with a resumer: it opens the attempt that continues the stream (after the
// policy's wait) and returns nil, or ends the stream and returns its final error, saying why
// it was not resumed. Called with mu held.
func (s *stream) resumeLocked(err error) error {
	level := s.i.level(s.spec, calls.KeyNone)
	if transport.Nested(err) { // another faultline loop down the chain gave up: its error is final
		return s.endLocked(s.out(err))
	}
	var req proto.Message // nil when the caller sent a nil request: never read
	if len(s.replay) > 0 && calls.Valid(s.replay[0]) {
		req = s.replay[0] // as it was sent
	}
	last, _ := s.last.(proto.Message)
	c := s.i.classify(s.ctx, err, s.spec.Procedure, s.firstMsg)
	next, why := s.i.b.Calls.ResumeRequest(s.spec.Procedure, level, c, req, last)
	if why != "" {
		stop := s.tracker().Failed(s.ctx, &calls.NotResumed{Err: c, Why: why}, engine.Facts{Level: uint8(level), NotResumable: true, Reported: s.reported})
		return s.endLocked(s.finalOf(stop)) // never nil: a failure that cannot go on is never retried
	}
	f := engine.Facts{Level: uint8(level), Resume: true, Progressed: s.sinceOpen > 0, Reported: s.reported}
	return s.retryLocked(err, f, next)
}

// retryLocked puts the failure err of the current attempt to the tracker and, when it says
// go on, opens the next attempt: a retry from the start (replaying what was sent), or, with
// next set, a resume that sends next. It returns nil when an attempt is open, else the
// stream's final error. Called with mu held, released while waiting and opening.
func (s *stream) retryLocked(err error, f engine.Facts, next proto.Message) error {
	if transport.Nested(err) { // another faultline loop down the chain gave up: never again
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
		return s.endLocked(s.finalOf(stop))
	case s.ended: // the caller closed the stream meanwhile
		cancel()
		return s.final
	}
	s.cur, s.cancel, s.sinceOpen, s.reported = cs, cancel, 0, false
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
	if s.i.b.Header != "" {
		cs.RequestHeader()[s.i.b.Header] = []string{strconv.Itoa(attempt - 1)}
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
