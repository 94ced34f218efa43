package interceptor

import (
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/internal/calls"
	"github.com/faultline-go/faultline/internal/engine"
	"github.com/faultline-go/faultline/retry"
)

// maxPerCall bounds the cache of per-call policies; past it a new policy costs an
// allocation per call instead of growing the cache.
const maxPerCall = 64

// route is how the calls of a method, or of a per-call policy, are retried.
type route struct {
	e       engine.Route
	retries bool          // the policy makes more than one attempt
	timeout time.Duration // the policy's PerAttemptTimeout
}

func newRoute(r *retry.Retrier) *route {
	e := engine.RouteOf(r)
	return &route{e: e, retries: e.Retries(), timeout: e.AttemptTimeout()}
}

// route returns the route of a call, or nil when the call makes one attempt. An invalid
// per-call policy is an error of the call: INVALID_ARGUMENT, matching retry.ErrInvalidPolicy.
func (s *Set) route(method string, opts []grpc.CallOption) (*route, error) {
	rt := s.def
	if s.methods != nil {
		if m, ok := calls.Lookup(s.methods, method); ok {
			rt = m
		}
	}
	for _, o := range opts {
		if co, ok := o.(*callOption); ok {
			switch {
			case co.noRetry:
				return nil, nil
			case co.hasPolicy:
				pr, err := s.callRoute(&co.policy)
				if err != nil {
					return nil, err
				}
				rt = pr
			}
		}
	}
	if !rt.retries {
		return nil, nil
	}
	return rt, nil
}

// callRoute returns the route of a per-call policy, or the error that makes it invalid.
func (s *Set) callRoute(p *retry.Policy) (*route, error) {
	s.mu.RLock()
	rt, ok := s.perCall[*p]
	s.mu.RUnlock()
	if ok {
		return rt, nil
	}
	r, err := s.retrier.WithPolicy(*p)
	if err != nil {
		return nil, &invalidPolicyError{err}
	}
	rt = newRoute(r)
	s.mu.Lock()
	if len(s.perCall) < maxPerCall {
		if s.perCall == nil {
			s.perCall = map[retry.Policy]*route{}
		}
		s.perCall[*p] = rt
	}
	s.mu.Unlock()
	return rt, nil
}

// invalidPolicyError is the error of a call given an invalid WithCallPolicy: its status is
// INVALID_ARGUMENT and it matches retry.ErrInvalidPolicy.
type invalidPolicyError struct{ err error }

func (e *invalidPolicyError) Error() string { return "interceptor: WithCallPolicy: " + e.err.Error() }
func (e *invalidPolicyError) Unwrap() error { return e.err }
func (e *invalidPolicyError) GRPCStatus() *status.Status {
	return status.New(codes.InvalidArgument, e.Error())
}
