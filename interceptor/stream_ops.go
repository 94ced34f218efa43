package interceptor

import (
	"context"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/emptypb"
)

// The grpc.ClientStream methods of a retried stream.

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
			rs.answeredLocked()
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
	rs.awaitReceiver(n) // a RecvMsg on the ended attempt returns at once and deals with it
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
		rs.answeredLocked()
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
			rs.answeredLocked()
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
	if !rs.committed && !rs.replay.keep(m, rs.set.b.ReplayLimit) {
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
