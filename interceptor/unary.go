package interceptor

import (
	"context"
	"net"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/calls"
	"github.com/faultline-go/faultline/internal/ended"
	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/internal/sandboxapi"
	"github.com/faultline-go/faultline/internal/transport"
	"github.com/faultline-go/faultline/retry"
)

// Unary returns the unary interceptor: each attempt's failure is classified into an
// *errs.Error, and failures are retried by the method's policy. A call that gives up
// returns a *retry.Error wrapping the last attempt's *errs.Error; a call with
// [WithoutRetry] or a one-attempt policy returns the *errs.Error itself. Interceptors chained
// after this one see every attempt; those before it see one call.
//
// A call that succeeds the first time allocates nothing here and reads no details.
func (s *Set) Unary() grpc.UnaryClientInterceptor {
	return s.unary
}

func (s *Set) unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	rt, err := s.route(method, opts)
	if err != nil {
		_, fns := onFinish(opts)
		finish(fns, err) // the call ended before it began: once, with its error
		return err
	}
	if rt.Bare {
		return s.once(ctx, method, req, reply, cc, invoker, opts)
	}
	// The attempts are made here, step by step, rather than in a closure handed to
	// Retrier.Do: the success path then costs the budget's deposit and little else.
	mt := s.b.Calls.Of(method)
	req, key := s.b.Calls.KeyOf(mt, req)
	level := mt.Level(key)
	opts, finishers := onFinish(opts)
	var t engine.Tracker
	actx := ctx
	if rt.Timeout > 0 { // the first attempt needs a context of its own
		t = rt.Engine.Track(method, conn(cc))
		actx = t.Context(ctx)
	}
	// A call that may be repeated after an ambiguous failure only if its server did not
	// commit to it (gRFC A6: response headers commit a call) asks grpc-go for the headers.
	headers := key == calls.KeyNone && level == retry.IdempotencyUnknown
	var pr *probe
	if err = rt.Engine.Admit(); err == nil {
		if pr, err = s.attempt(actx, method, req, reply, cc, invoker, opts, headers); err == nil {
			pr.release()
			if t != nil {
				t.Succeeded(ctx)
			} else {
				rt.Engine.Succeeded()
			}
			finish(finishers, nil)
			return nil
		}
	}
	if t == nil {
		t = rt.Engine.Track(method, conn(cc))
	}
	c := &unaryCall{method: method, req: req, reply: reply, cc: cc, invoker: invoker, opts: opts,
		level: level, headers: headers, once: !rt.Retries}
	err = s.retryUnary(ctx, c, t, pr, err)
	finish(finishers, err)
	return err
}

// once makes a call that is not retried and that nothing observes: one attempt, its
// failure classified.
func (s *Set) once(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts []grpc.CallOption) error {
	if err := invoker(ctx, method, req, reply, cc, opts...); err != nil {
		return s.classify(ctx, cc, err, method, req, opts)
	}
	return nil
}

// unaryCall is what the retries of a unary call need to know of it. It is made only once
// the first attempt failed: the success path allocates nothing.
type unaryCall struct {
	method     string
	req, reply any
	cc         *grpc.ClientConn
	invoker    grpc.UnaryInvoker
	opts       []grpc.CallOption
	level      retry.Idempotency
	headers    bool // each attempt asks grpc-go for the response headers
	once       bool // the call makes one attempt: its error is the attempt's, not a *retry.Error
}

// retryUnary puts the failure err of the call's last attempt, probed by pr, to its tracker
// t, and makes the next attempt while t says go on. It returns the call's result.
func (s *Set) retryUnary(ctx context.Context, c *unaryCall, t engine.Tracker, pr *probe, err error) error {
	for {
		if transport.Nested(err) {
			// Another faultline retry loop down the chain gave up: its error is the call's,
			// never retried again (attempts must not multiply). The tracker still hears of
			// it (it releases the attempt's context, and tells the budget), and the error is
			// classified if it is not yet.
			pr.release()
			err = t.Failed(ctx, err, engine.Facts{Level: uint8(c.level)})
			if !transport.HoldsClassified(err) {
				err = s.classify(ctx, c.cc, err, c.method, c.req, c.opts)
			}
			return err
		}
		f := engine.Facts{Level: uint8(c.level), NotSent: pr.notSent(), Headers: pr.headers()}
		pr.release()
		if stop := t.Failed(ctx, s.classify(ctx, c.cc, err, c.method, c.req, c.opts), f); stop != nil {
			if c.once {
				return transport.Single(stop)
			}
			return stop
		}
		actx := t.Context(ctx)
		if s.b.Header != "" {
			actx = withAttempt(actx, s.b.Header, t.Attempt()-1)
		}
		if pr, err = s.attempt(actx, c.method, c.req, c.reply, c.cc, c.invoker, c.opts, c.headers); err == nil {
			pr.release()
			t.Succeeded(ctx)
			return nil
		}
	}
}

// attempt makes one attempt of a unary call, asking grpc-go, through call options, what the
// retry loop may need to know of a failure (a pooled probe, so that asking costs no
// allocation of ours): the attempt's peer, when the connection is not ready as the attempt
// starts (a failed attempt without one never got a transport stream, so it provably ran
// nothing); its response headers, when headers is set. It returns the probe, nil when it
// asked for nothing.
func (s *Set) attempt(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts []grpc.CallOption, headers bool) (*probe, error) {
	if peer := cc != nil && cc.GetState() != connectivity.Ready; peer || headers {
		return probed(ctx, method, req, reply, cc, invoker, opts, peer, headers)
	}
	return nil, invoker(ctx, method, req, reply, cc, opts...)
}

// probed makes an attempt that asks grpc-go for its peer, its response headers, or both.
func probed(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn,
	invoker grpc.UnaryInvoker, opts []grpc.CallOption, peer, headers bool) (*probe, error) {
	pr := newProbe(opts, peer, headers)
	return pr, invoker(ctx, method, req, reply, cc, pr.opts...)
}

// probe holds the answers of grpc-go's grpc.Peer and grpc.Header call options for one
// attempt.
type probe struct {
	peer      peer.Peer
	header    metadata.MD
	asked     struct{ peer, header bool }
	opts      []grpc.CallOption
	peerOpt   grpc.CallOption // grpc.Peer(&peer), made once per probe
	headerOpt grpc.CallOption // grpc.Header(&header)
}

var probes = sync.Pool{New: func() any {
	pr := new(probe)
	pr.peerOpt, pr.headerOpt = grpc.Peer(&pr.peer), grpc.Header(&pr.header)
	return pr
}}

func newProbe(opts []grpc.CallOption, peer, header bool) *probe {
	pr := probes.Get().(*probe)
	pr.asked.peer, pr.asked.header = peer, header
	pr.peer.Addr = unsent // grpc-go overwrites the whole peer when the attempt got a stream
	pr.opts = append(pr.opts[:0], opts...)
	if peer {
		pr.opts = append(pr.opts, pr.peerOpt)
	}
	if header {
		pr.opts = append(pr.opts, pr.headerOpt)
	}
	return pr
}

// notSent reports whether the probed attempt never got a transport stream: grpc-go copies
// the stream's peer over the probe's only when the attempt had a stream, so a failed
// attempt whose peer is still the marker sent nothing. (A peer's address may itself be nil:
// a custom dialer's connection may have none.)
func (pr *probe) notSent() bool { return pr != nil && pr.asked.peer && pr.peer.Addr == unsent }

// unsent marks a probe's peer that grpc-go did not fill.
var unsent net.Addr = unsentAddr{}

type unsentAddr struct{}

func (unsentAddr) Network() string { return "faultline-unsent" }
func (unsentAddr) String() string  { return "faultline: no stream" }

// headers reports whether the probed attempt's response headers arrived: grpc-go gives no
// headers (nil) for a response of trailers only.
func (pr *probe) headers() bool { return pr != nil && pr.asked.header && pr.header != nil }

func (pr *probe) release() {
	if pr == nil {
		return
	}
	pr.peer, pr.header = peer.Peer{}, nil
	clear(pr.opts)
	probes.Put(pr)
}

// classify classifies err with what the call was about: the request's fields, overridden
// by a WithResource option, and whether the caller's context had ended (or the caller closed the
// connection).
func (s *Set) classify(ctx context.Context, cc *grpc.ClientConn, err error, method string, req any, opts []grpc.CallOption) *errs.Error {
	call := classify.CallFromRequest(method, req)
	call.ContextErr = ended.Caller(ctx, status.Code(err) == codes.DeadlineExceeded)
	if call.ContextErr == nil && cc != nil && cc.GetState() == connectivity.Shutdown {
		// The client closed the connection (grpc-go reports CANCELLED): the caller's doing,
		// as a cancelled context is, not a statement about the sandbox.
		call.ContextErr = context.Canceled
	}
	for _, o := range opts {
		if co, ok := o.(*callOption); ok && co.res != nil {
			sandboxapi.Merge(&call.Resource, *co.res)
		}
	}
	return s.b.Classifier.Classify(err, call)
}
