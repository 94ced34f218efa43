package interceptor

import (
	"context"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/internal/calls"
	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/internal/transport"
	"github.com/faultline-go/faultline/retry"
)

// How a retried stream recovers from a failure, commits and ends.

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
	level := rs.set.b.Calls.Level(rs.method, calls.KeyNone)
	f := engine.Facts{Level: uint8(level), NotSent: notSent, Reported: rs.reported}
	if rs.cur != nil {
		// Response headers say the server's handler ran (the attempt was sent, whether or
		// not a message went out), and commit a call of unknown idempotency (gRFC A6),
		// whether or not the caller asked for them. The attempt has ended: Header returns
		// at once.
		if md, _ := rs.cur.Header(); md != nil {
			f.NotSent, f.Headers = false, true
		}
	}
	return rs.retryLocked(err, f, nil)
}

// failLocked ends a committed stream that could not go on after its failure: the tracker
// decides the stop reason (the policy's own, else retry.StopNotResumable) and tells the
// hooks, and the final error says why the stream was not resumed. Called with mu held; the
// tracker does not wait for such a failure.
func (rs *retryStream) failLocked(err *calls.NotResumed, level retry.Idempotency) error {
	if transport.Nested(err.Err) { // another faultline loop down the chain gave up: its error is final
		return rs.endLocked(rs.out(err.Err))
	}
	err.Err = rs.classified(err.Err)
	if stop := rs.tracker().Failed(rs.ctx, err, engine.Facts{Level: uint8(level), NotResumable: true, Reported: rs.reported}); stop != nil {
		return rs.endLocked(rs.finalOf(stop))
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
		if transport.Nested(err) { // another faultline loop down the chain gave up: never again
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
			return rs.endLocked(rs.finalOf(stop))
		case err == nil && rs.ended: // the caller's context ended meanwhile
			cancel()
			return rs.final
		case err == nil:
			if rs.attemptCancel != nil {
				rs.attemptCancel() // the attempt it replaces has ended: release it now
			}
			rs.attemptCancel = cancel
			rs.cur, rs.sent, rs.sinceOpen, rs.reported = cs, sent, 0, false
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
	if rs.set.b.Header != "" {
		ctx = withAttempt(ctx, rs.set.b.Header, attempt-1)
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

// commitLocked marks the stream committed: it is never retried from the start again, and
// the sent messages are dropped (a resumable stream keeps its first, the request it resumes
// from). A stream commits when a response reached the caller (see answeredLocked), and when
// it sent more than the replay limit: then nothing has succeeded yet. Called with mu held.
func (rs *retryStream) commitLocked() {
	if rs.committed {
		return
	}
	rs.committed = true
	if !rs.resumes {
		rs.replay.drop()
	}
	rs.cond.Broadcast()
}

// answeredLocked commits the stream on a response that reached the caller (a message, the
// headers, a clean end) and reports the current attempt's success to the budget and the
// throttle, once per attempt. Called with mu held.
func (rs *retryStream) answeredLocked() {
	rs.commitLocked()
	if rs.reported {
		return
	}
	rs.reported = true
	if rs.t == nil {
		rs.rt.Engine.Succeeded()
	} else {
		rs.t.Committed()
	}
}

// delivered counts a message delivered to the caller. Called with mu held.
func (rs *retryStream) delivered(m any) {
	rs.answeredLocked()
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

// awaitReceiver waits, with mu held, while another goroutine retries the stream or receives
// on attempt n: a receiver the stream already moved on to a later attempt is not waited for
// (it may wait for messages only the caller waiting here would send).
func (rs *retryStream) awaitReceiver(n int) {
	for (rs.retrying || rs.receiving) && !rs.ended && rs.n == n {
		rs.cond.Wait()
	}
}
