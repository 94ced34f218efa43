package connectfaultline

import (
	"context"
	"net/http"
	"reflect"
	"strconv"

	"connectrpc.com/connect"

	"github.com/faultline-go/faultline/internal/calls"
	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/internal/transport"
)

func (i *Interceptor) unary(ctx context.Context, req connect.AnyRequest, next connect.UnaryFunc) (connect.AnyResponse, error) {
	if i.err != nil {
		return nil, i.err
	}
	procedure := req.Spec().Procedure
	rt := i.route(procedure)
	if rt == nil {
		res, err := next(ctx, req)
		if err != nil {
			return nil, i.final(ctx, err, procedure, req.Any())
		}
		return res, nil
	}
	msg := req.Any()
	sent, key := i.b.Calls.WithKey(procedure, msg)
	if sent == msg {
		return i.attempts(ctx, req, next, rt, key)
	}
	// The request gets an idempotency key: the copy that carries it goes out on every
	// attempt, and the caller's message is back in its request when the call returns.
	restore, ok := swapMsg(req, sent)
	if !ok {
		key = calls.KeyMissing // connect-go's request is not of the shape swapMsg knows
		return i.attempts(ctx, req, next, rt, key)
	}
	defer restore()
	return i.attempts(ctx, req, next, rt, key)
}

// final is the error of a call's only attempt, or of a call whose error is another faultline
// loop's: classified, unless it already is.
func (i *Interceptor) final(ctx context.Context, err error, procedure string, req any) error {
	if transport.Nested(err) && transport.HoldsClassified(err) {
		return err
	}
	return i.classify(ctx, err, procedure, req)
}

// attempts makes the attempts of a unary call, step by step (rather than in a closure
// handed to Retrier.Do, so that the success path costs the budget's deposit and little
// else), each with the request's headers as the caller set them, and the attempt header
// on retries.
func (i *Interceptor) attempts(ctx context.Context, req connect.AnyRequest, next connect.UnaryFunc, rt *transport.Route, key calls.Key) (connect.AnyResponse, error) {
	var t engine.Tracker
	spec := req.Spec()
	actx := ctx
	if rt.Timeout > 0 { // the first attempt needs a context of its own
		t = rt.Engine.Track(spec.Procedure, peer(req.Peer().Addr))
		actx = t.Context(ctx)
	}
	var res connect.AnyResponse
	err := rt.Engine.Admit()
	if err == nil {
		if res, err = next(actx, req); err == nil {
			if t != nil {
				t.Succeeded(ctx)
			} else {
				rt.Engine.Succeeded()
			}
			return res, nil
		}
	}
	if t == nil {
		t = rt.Engine.Track(spec.Procedure, peer(req.Peer().Addr))
	}
	h := attemptHeader{h: req.Header(), key: i.b.Header}
	defer h.restore()
	for {
		if transport.Nested(err) {
			// Another faultline retry loop down the chain gave up: its error is the call's,
			// never retried again (attempts must not multiply). The tracker still hears of
			// it (it releases the attempt's context, and tells the budget), and the error is
			// classified if it is not yet.
			return nil, i.final(ctx, t.Failed(ctx, err, engine.Facts{Level: uint8(i.level(spec, key))}), spec.Procedure, req.Any())
		}
		c := i.classify(ctx, err, spec.Procedure, req.Any())
		notSent, body := factsOf(c)
		f := engine.Facts{Level: uint8(i.level(spec, key)), NotSent: notSent, Headers: body}
		if stop := t.Failed(ctx, c, f); stop != nil {
			if !rt.Retries {
				return nil, transport.Single(stop) // one attempt: its own error
			}
			return nil, stop
		}
		actx = t.Context(ctx)
		h.set(t.Attempt() - 1)
		if res, err = next(actx, req); err == nil {
			t.Succeeded(ctx)
			return res, nil
		}
	}
}

// attemptHeader sets the attempt header of a unary call's retries in the request's headers,
// which connect-go sends on every attempt, and restores the caller's values at the end.
type attemptHeader struct {
	h     http.Header
	key   string // canonical; "" for none
	saved bool
	had   bool
	orig  []string
}

// set replaces the header's values with n.
func (a *attemptHeader) set(n int) {
	if a.key == "" || a.h == nil {
		return
	}
	if !a.saved {
		a.orig, a.had = a.h[a.key]
		a.saved = true
	}
	a.h[a.key] = []string{strconv.Itoa(n)}
}

// restore gives the header its values before the first retry.
func (a *attemptHeader) restore() {
	switch {
	case !a.saved:
	case a.had:
		a.h[a.key] = a.orig
	default:
		delete(a.h, a.key)
	}
}

// swapMsg points req's Msg field (connect.Request's exported message pointer) at msg, and
// returns the function that points it back. connect-go offers no other way to send a copy of
// a request through the same *connect.Request: the interceptor chain must go on with it. It
// reports false, changing nothing, for a request of another shape than *connect.Request[T]
// or a msg of another type than its Msg.
func swapMsg(req connect.AnyRequest, msg any) (restore func(), ok bool) {
	v := reflect.ValueOf(req)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Struct {
		return nil, false
	}
	field := v.Elem().FieldByName("Msg")
	m := reflect.ValueOf(msg)
	if !field.IsValid() || !field.CanSet() || !m.IsValid() || m.Type() != field.Type() {
		return nil, false
	}
	old := reflect.ValueOf(field.Interface())
	field.Set(m)
	return func() { field.Set(old) }, true
}
