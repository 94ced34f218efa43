package interceptor_test

import (
	"context"
	"io"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/retry"
)

// scriptStream is one attempt whose Header and RecvMsg follow the test's channels.
type scriptStream struct {
	grpc.ClientStream
	header   func() (metadata.MD, error)
	recv     func() error
	inRecv   chan struct{}
	inHeader chan struct{}
}

func (s *scriptStream) Header() (metadata.MD, error) {
	if s.inHeader != nil {
		close(s.inHeader)
		s.inHeader = nil
	}
	return s.header()
}
func (s *scriptStream) RecvMsg(any) error {
	if s.inRecv != nil {
		close(s.inRecv)
		s.inRecv = nil
	}
	return s.recv()
}
func (s *scriptStream) SendMsg(any) error        { return nil }
func (s *scriptStream) CloseSend() error         { return nil }
func (s *scriptStream) Context() context.Context { return context.Background() }

// TestHeaderDoesNotWaitForNextMessage: Header and RecvMsg run concurrently (as grpc-go
// allows); the first attempt fails before headers. Header learns of it first and waits for
// the receiver on that attempt; the receiver retries and goes back into RecvMsg on the new
// attempt. Header must then return the new attempt's headers, which arrived at once,
// without waiting for its next message (a follow-mode log may send none for long).
func TestHeaderDoesNotWaitForNextMessage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := retry.DefaultPolicy()
		p.InitialBackoff, p.MaxBackoff, p.Jitter = time.Millisecond, time.Millisecond, 0
		s, err := interceptor.New(interceptor.WithRetrier(retry.MustNew(p, retry.WithBudget(nil))))
		if err != nil {
			t.Fatal(err)
		}
		fail0, msg1 := make(chan struct{}), make(chan struct{})
		a0 := &scriptStream{inRecv: make(chan struct{}), inHeader: make(chan struct{}),
			header: func() (metadata.MD, error) { <-fail0; return nil, nil }, // grpc-go: (nil, nil) on failure
			recv: func() error {
				<-fail0
				time.Sleep(50 * time.Millisecond) // Header takes the lock first
				return status.Error(codes.Unavailable, "reset before headers")
			}}
		a1 := &scriptStream{
			header: func() (metadata.MD, error) { return metadata.MD{"k": {"v"}}, nil },
			recv:   func() error { <-msg1; return io.EOF }}
		attempts := []*scriptStream{a0, a1}
		streamer := func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
			a := attempts[0]
			attempts = attempts[1:]
			return a, nil
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		cs, err := s.Stream()(ctx, &grpc.StreamDesc{ServerStreams: true}, nil, "/x.S/M", streamer)
		if err != nil {
			t.Fatal(err)
		}
		inRecv, inHeader := a0.inRecv, a0.inHeader
		recvDone := make(chan error, 1)
		go func() { recvDone <- cs.RecvMsg(new(struct{})) }()
		<-inRecv
		headerDone := make(chan error, 1)
		go func() { _, err := cs.Header(); headerDone <- err }()
		<-inHeader
		close(fail0)
		headerReturned := false
		select {
		case <-headerDone:
			headerReturned = true
		case <-time.After(time.Minute):
			t.Error("Header() still blocked a minute after the retry's headers arrived: it waits for the next message")
		}
		close(msg1)
		<-recvDone
		if !headerReturned {
			<-headerDone
		}
	})
}
