package interceptor

import (
	"context"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// withAttempt returns ctx with the attempt header set to n, replacing any value of the key
// already in the outgoing metadata (a proxy forwarding what it received), never appending.
func withAttempt(ctx context.Context, key string, n int) context.Context {
	md, _ := metadata.FromOutgoingContext(ctx) // a copy
	if md == nil {
		md = metadata.MD{}
	}
	md.Set(key, strconv.Itoa(n))
	return metadata.NewOutgoingContext(ctx, md)
}

// onFinish takes grpc.OnFinish options out of opts: grpc-go would run them once per attempt,
// but they mean "once per RPC". It returns opts unchanged, and no callbacks, when there are
// none (no allocation).
func onFinish(opts []grpc.CallOption) ([]grpc.CallOption, []func(error)) {
	n := 0
	for _, o := range opts {
		if _, ok := o.(grpc.OnFinishCallOption); ok {
			n++
		}
	}
	if n == 0 {
		return opts, nil
	}
	rest := make([]grpc.CallOption, 0, len(opts)-n)
	fns := make([]func(error), 0, n)
	for _, o := range opts {
		if f, ok := o.(grpc.OnFinishCallOption); ok {
			fns = append(fns, f.OnFinish)
		} else {
			rest = append(rest, o)
		}
	}
	return rest, fns
}

// finish runs the OnFinish callbacks with the call's final error.
func finish(fns []func(error), err error) {
	for _, f := range fns {
		f(err)
	}
}
