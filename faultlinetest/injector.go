package faultlinetest

import (
	"context"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// A Step is what one call of a scripted method does: pass to the handler ([Pass], the zero
// Step), fail before the handler runs ([Fail]), run the handler and then fail
// ([SendThenFail]), or wait for the caller to give up ([Stall]); each optionally after a
// delay ([Step.After]). Steps are plain values.
type Step struct {
	delay time.Duration
	st    *status.Status // nil: pass
	sends int            // with after: messages delivered before the call fails
	after bool           // fail after the handler ran, not before
	stall bool
}

// Pass returns the Step that lets the call through to its handler, untouched. It is the
// zero Step.
func Pass() Step { return Step{} }

// Fail returns a Step that fails the call with st before its handler runs: the handler
// never sees the call. A nil st, or one with code OK, fails the call with code Unknown
// and the message "faultlinetest: Fail needs a non-OK status", so that the mistake shows.
func Fail(st *status.Status) Step { return Step{st: nonOK(st)} }

// SendThenFail returns a Step that runs the handler, then fails the call with st: the
// server did the work, and the client sees the failure.
//
// On a stream, the first n messages the handler sends reach the client (none if n <= 0);
// once they have, the handler's stream context is cancelled, and its later sends are not
// delivered and return st's error, so a handler that sends more or waits on its context
// returns. When the handler returns, whatever it returns, the call ends with st. Messages
// the client sends are still received.
//
// On a unary call, n is ignored: the handler runs with its context and request, its
// response is discarded, and the call fails with st (a response lost after the side
// effect).
//
// A nil st, or one with code OK, is treated as in [Fail].
func SendThenFail(n int, st *status.Status) Step {
	return Step{st: nonOK(st), sends: max(n, 0), after: true}
}

// Stall returns a Step that holds the call, without running its handler, until the
// call's context ends: its deadline passes (the caller's deadline travels to the server),
// the caller cancels, or the server stops. The call then fails with DEADLINE_EXCEEDED or
// CANCELLED, as [status.FromContextError] says.
func Stall() Step { return Step{stall: true} }

// After returns a copy of s that first waits d, on the time package's clock (so inside a
// testing/synctest bubble the wait is on the bubble's virtual clock and takes no real
// time). If the call's context ends during the wait, the call fails with DEADLINE_EXCEEDED
// or CANCELLED and the handler does not run. A d <= 0 means no wait. The last After wins.
func (s Step) After(d time.Duration) Step {
	s.delay = d
	return s
}

const okFailMessage = "faultlinetest: Fail needs a non-OK status"

func nonOK(st *status.Status) *status.Status {
	if st == nil || st.Code() == codes.OK {
		return status.New(codes.Unknown, okFailMessage)
	}
	return st
}

// Call is what the [Injector] recorded of one call of a method.
type Call struct {
	// Method is the full method name, "/pkg.Service/Method".
	Method string
	// Time is when the call reached the injector, by [time.Now]: the bubble's virtual
	// clock inside testing/synctest.
	Time time.Time
	// Metadata is a copy of the call's incoming metadata (for example "authorization"
	// or a retry-attempt header); never nil.
	Metadata metadata.MD
	// Requests are clones of the request messages the server received, in order: the
	// request of a unary call (recorded before any step, so even for a failed call), and
	// every message the handler of a stream received (none when a step failed the
	// stream before its handler ran). Requests that are not protobuf messages are not
	// recorded.
	Requests []proto.Message
}

// Injector injects faults into any gRPC server: install its interceptors
// ([Injector.ServerOptions], or [Injector.Unary] and [Injector.Stream]) and script what
// each method does ([Injector.Script], [Injector.FailNext], [Injector.Always]).
//
// Every call, of a scripted method or not, is recorded ([Injector.Calls],
// [Injector.Count]). A call then takes its method's next queued step; when the queue is
// empty, the method's [Injector.Always] step; and for a method the injector was told
// nothing about, [Pass]: the call reaches its handler untouched.
//
// Methods are full method names, "/pkg.Service/Method", matched exactly (the generated
// *_FullMethodName constants, or "/grpc.health.v1.Health/Check"). A name that no call
// has is never used; it is not an error.
//
// The zero Injector is ready to use. An Injector is safe for concurrent use, also while
// it serves calls; calls of one method take steps in the order they reach the injector,
// which is only deterministic for calls that do not overlap. It must not be copied after
// first use.
type Injector struct {
	mu     sync.Mutex
	queue  map[string][]Step
	always map[string]Step
	calls  map[string][]*Call
}

// Script queues steps for method: each call of it takes the next one. Calls to Script add
// to the queue.
func (in *Injector) Script(method string, steps ...Step) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.queue == nil {
		in.queue = make(map[string][]Step)
	}
	in.queue[method] = append(in.queue[method], steps...)
}

// FailNext queues n steps [Fail](st) for method: its next n calls fail with st (nothing
// for n <= 0). It is Script(method, Fail(st), ... n times).
func (in *Injector) FailNext(method string, n int, st *status.Status) {
	steps := make([]Step, max(n, 0))
	for i := range steps {
		steps[i] = Fail(st)
	}
	in.Script(method, steps...)
}

// Always sets the step method's calls take once its queue is empty, for example
// Fail(st) for a server that stays down, or Pass().After(d) for a slow one. Always(method,
// Pass()) turns it off. The default is Pass.
func (in *Injector) Always(method string, s Step) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.always == nil {
		in.always = make(map[string]Step)
	}
	if s == (Step{}) {
		delete(in.always, method)
		return
	}
	in.always[method] = s
}

// Calls returns copies of the calls of method received since the start or the last
// [Injector.Reset], in arrival order. A call in progress may receive more requests after.
func (in *Injector) Calls(method string) []Call {
	in.mu.Lock()
	defer in.mu.Unlock()
	recs := in.calls[method]
	out := make([]Call, len(recs))
	for i, c := range recs {
		out[i] = Call{Method: c.Method, Time: c.Time, Metadata: c.Metadata.Copy()}
		if len(c.Requests) > 0 {
			out[i].Requests = make([]proto.Message, len(c.Requests))
			for j, m := range c.Requests {
				out[i].Requests[j] = proto.Clone(m)
			}
		}
	}
	return out
}

// Count returns how many calls of method were received since the start or the last
// [Injector.Reset], whatever became of them.
func (in *Injector) Count(method string) int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.calls[method])
}

// Reset forgets every queued step, every Always step and every recorded call. Calls in
// progress keep the step they took.
func (in *Injector) Reset() {
	in.mu.Lock()
	defer in.mu.Unlock()
	clear(in.queue)
	clear(in.always)
	clear(in.calls)
}

// ServerOptions returns the server options that install the injector's unary and stream
// interceptors with [grpc.ChainUnaryInterceptor] and [grpc.ChainStreamInterceptor]. Put
// them first so that the injector runs before (outside) the server's other interceptors,
// as a fault in the network would.
func (in *Injector) ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(in.Unary()),
		grpc.ChainStreamInterceptor(in.Stream()),
	}
}

// Unary returns the injector's unary server interceptor.
func (in *Injector) Unary() grpc.UnaryServerInterceptor { return in.unary }

// Stream returns the injector's stream server interceptor.
func (in *Injector) Stream() grpc.StreamServerInterceptor { return in.stream }

func (in *Injector) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	rec := in.record(ctx, info.FullMethod)
	in.recordRequest(rec, req)
	step := in.next(info.FullMethod)
	if err := step.wait(ctx); err != nil {
		return nil, err
	}
	switch {
	case step.stall:
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	case step.st == nil:
		return handler(ctx, req)
	case step.after:
		_, _ = handler(ctx, req)
	}
	return nil, step.st.Err()
}

func (in *Injector) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	ctx := ss.Context()
	rec := in.record(ctx, info.FullMethod)
	step := in.next(info.FullMethod)
	if err := step.wait(ctx); err != nil {
		return err
	}
	switch {
	case step.stall:
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	case step.st == nil:
		return handler(srv, &recordingStream{ServerStream: ss, in: in, rec: rec})
	case !step.after:
		return step.st.Err()
	}
	hctx, cancel := context.WithCancel(ctx)
	defer cancel()
	fs := &faultStream{recordingStream: recordingStream{ServerStream: ss, in: in, rec: rec},
		ctx: hctx, cancel: cancel, left: step.sends, st: step.st}
	if fs.left == 0 {
		cancel()
	}
	_ = handler(srv, fs)
	return step.st.Err()
}

// wait waits out the step's delay, or fails with the context's status.
func (s Step) wait(ctx context.Context) error {
	if s.delay <= 0 {
		return nil
	}
	t := time.NewTimer(s.delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
}

// next takes method's next step.
func (in *Injector) next(method string) Step {
	in.mu.Lock()
	defer in.mu.Unlock()
	if q := in.queue[method]; len(q) > 0 {
		in.queue[method] = q[1:]
		return q[0]
	}
	return in.always[method]
}

func (in *Injector) record(ctx context.Context, method string) *Call {
	md, _ := metadata.FromIncomingContext(ctx)
	rec := &Call{Method: method, Time: time.Now(), Metadata: md.Copy()}
	if rec.Metadata == nil {
		rec.Metadata = metadata.MD{}
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.calls == nil {
		in.calls = make(map[string][]*Call)
	}
	in.calls[method] = append(in.calls[method], rec)
	return rec
}

func (in *Injector) recordRequest(rec *Call, req any) {
	m, ok := req.(proto.Message)
	if !ok {
		return
	}
	m = proto.Clone(m)
	in.mu.Lock()
	defer in.mu.Unlock()
	rec.Requests = append(rec.Requests, m)
}

// recordingStream records every message the handler receives.
type recordingStream struct {
	grpc.ServerStream
	in  *Injector
	rec *Call
}

func (r *recordingStream) RecvMsg(m any) error {
	err := r.ServerStream.RecvMsg(m)
	if err == nil {
		r.in.recordRequest(r.rec, m)
	}
	return err
}

// faultStream delivers the handler's first left messages, then cancels the handler's
// context and drops the rest. SendMsg is only called by one goroutine at a time (grpc's
// rule), so left needs no lock.
type faultStream struct {
	recordingStream
	ctx    context.Context
	cancel context.CancelFunc
	left   int
	st     *status.Status
}

func (f *faultStream) Context() context.Context { return f.ctx }

func (f *faultStream) SendMsg(m any) error {
	if f.left <= 0 {
		return f.st.Err()
	}
	if err := f.ServerStream.SendMsg(m); err != nil {
		return err
	}
	if f.left--; f.left == 0 {
		f.cancel()
	}
	return nil
}
