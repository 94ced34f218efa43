package interceptor

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/internal/transport"
	"github.com/faultline-go/faultline/retry"
)

// maxPerCall bounds the cache of per-call policies; past it a new policy costs an
// allocation per call instead of growing the cache.
const maxPerCall = 64

// route returns the route of a call: its method's, a per-call policy's, or, for a call
// WithoutRetry, the one-attempt route. An invalid per-call policy is an error of the call:
// INVALID_ARGUMENT, matching retry.ErrInvalidPolicy.
func (s *Set) route(method string, opts []grpc.CallOption) (*transport.Route, error) {
	rt := s.b.Route(method)
	for _, o := range opts {
		if co, ok := o.(*callOption); ok {
			switch {
			case co.noRetry:
				return s.b.Once, nil
			case co.hasPolicy:
				pr, err := s.callRoute(&co.policy)
				if err != nil {
					return nil, err
				}
				rt = pr
			}
		}
	}
	return rt, nil
}

// callRoute returns the route of a per-call policy, or the error that makes it invalid.
func (s *Set) callRoute(p *retry.Policy) (*transport.Route, error) {
	s.mu.RLock()
	rt, ok := s.perCall[*p]
	s.mu.RUnlock()
	if ok {
		return rt, nil
	}
	r, err := s.b.Retrier.WithPolicy(*p)
	if err != nil {
		return nil, &invalidPolicyError{err}
	}
	rt = transport.NewRoute(r)
	s.mu.Lock()
	if len(s.perCall) < maxPerCall {
		if s.perCall == nil {
			s.perCall = map[retry.Policy]*transport.Route{}
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
