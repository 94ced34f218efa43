package interceptor_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/selector"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/retry"
)

// finishLog records the grpc.code of every "finished call" event a go-grpc-middleware
// logging interceptor reports.
type finishLog struct {
	mu    sync.Mutex
	codes []string
}

func (l *finishLog) logger() logging.Logger {
	return logging.LoggerFunc(func(_ context.Context, _ logging.Level, msg string, fields ...any) {
		if msg != "finished call" {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		for i := 0; i+1 < len(fields); i += 2 {
			if fields[i] == "grpc.code" {
				l.codes = append(l.codes, fmt.Sprint(fields[i+1]))
			}
		}
	})
}

func (l *finishLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.codes = nil
}

func (l *finishLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return fmt.Sprint(l.codes)
}

// TestChainLogging: with go-grpc-middleware's logging interceptors, one placed after ours
// sees every attempt; one placed before sees one call, with its final outcome.
func TestChainLogging(t *testing.T) {
	for _, tc := range []struct {
		name      string
		failures  int
		wantInner string // the logger after ours
		wantOuter string // the logger before ours
	}{
		{name: "recovers", failures: 2, wantInner: "[Unavailable Unavailable OK]", wantOuter: "[OK]"},
		{name: "gives up", failures: 9, wantInner: "[Unavailable Unavailable Unavailable Unavailable Unavailable]", wantOuter: "[Unavailable]"},
	} {
		for _, kind := range []string{"unary", "stream"} {
			t.Run(tc.name+"/"+kind, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					var outer, inner finishLog
					s, err := interceptor.New(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil))))
					if err != nil {
						t.Fatal(err)
					}
					e := newEnv(t, []grpc.DialOption{
						grpc.WithChainUnaryInterceptor(logging.UnaryClientInterceptor(outer.logger()), s.Unary(),
							logging.UnaryClientInterceptor(inner.logger())),
						grpc.WithChainStreamInterceptor(logging.StreamClientInterceptor(outer.logger()), s.Stream(),
							logging.StreamClientInterceptor(inner.logger())),
					})
					outer.reset() // newEnv's set-up call
					inner.reset()
					var err2 error
					if kind == "unary" {
						e.srv.FailNext(getSandbox, tc.failures, unavailable())
						err2 = callGetSandbox(e)
					} else {
						e.srv.FailNext(streamLogs, tc.failures, unavailable())
						st, err := e.sb.StreamLogs(context.Background(), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
						if err != nil {
							t.Fatal(err)
						}
						_, err2 = recvLogs(st)
					}
					if (tc.failures < 5) != (err2 == nil) {
						t.Errorf("call error = %v", err2)
					}
					if got := inner.String(); got != tc.wantInner {
						t.Errorf("logger after ours saw %s, want %s", got, tc.wantInner)
					}
					if got := outer.String(); got != tc.wantOuter {
						t.Errorf("logger before ours saw %s, want %s", got, tc.wantOuter)
					}
				})
			})
		}
	}
}

// TestChainSelector: go-grpc-middleware's selector applies ours to the methods it matches
// only; the others are neither retried nor classified.
func TestChainSelector(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := interceptor.New(interceptor.WithRetrier(retry.MustNew(secondsPolicy(), retry.WithBudget(nil))))
		if err != nil {
			t.Fatal(err)
		}
		onlyGet := selector.MatchFunc(func(_ context.Context, c interceptors.CallMeta) bool {
			return c.FullMethod() == getSandbox
		})
		e := newEnv(t, []grpc.DialOption{
			grpc.WithChainUnaryInterceptor(selector.UnaryClientInterceptor(s.Unary(), onlyGet)),
		})
		e.srv.FailAlways(getSandbox, unavailable())
		e.srv.FailAlways(readFile, unavailable())

		err = callGetSandbox(e)
		var re *retry.Error
		if !errors.As(err, &re) || !errors.Is(err, errs.ErrSandboxUnavailable) {
			t.Errorf("GetSandbox error = %v (%T), want a *retry.Error of SandboxUnavailableError", err, err)
		}
		err = callReadFile(e)
		var ee *errs.Error
		if status.Code(err) != codes.Unavailable || errors.As(err, &ee) {
			t.Errorf("ReadFile error = %v (%T), want grpc-go's own UNAVAILABLE", err, err)
		}
		if g, r := e.srv.Calls(getSandbox), e.srv.Calls(readFile); g != 5 || r != 1 {
			t.Errorf("server calls: GetSandbox %d, ReadFile %d; want 5, 1", g, r)
		}
	})
}

// TestClassifyOnly: a one-attempt policy classifies without retrying; the default
// classifies and retries.
func TestClassifyOnly(t *testing.T) {
	for _, tc := range []struct {
		name       string
		policy     retry.Policy
		wantCalls  int
		classified bool
	}{
		{name: "one attempt", policy: oneAttempt(), wantCalls: 1, classified: true},
		{name: "retried", policy: secondsPolicy(), wantCalls: 5, classified: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s, err := interceptor.New(interceptor.WithRetrier(retry.MustNew(tc.policy, retry.WithBudget(nil))))
				if err != nil {
					t.Fatal(err)
				}
				e := newEnv(t, []grpc.DialOption{
					grpc.WithChainUnaryInterceptor(s.Unary()),
					grpc.WithChainStreamInterceptor(s.Stream()),
				})
				sent := faultlinetest.Status(codes.Unavailable, "down", faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_BACKEND_UNAVAILABLE", nil))
				e.srv.FailAlways(getSandbox, sent)
				e.srv.FailAlways(streamLogs, sent)
				st, err := e.sb.StreamLogs(context.Background(), &sandboxpb.StreamLogsRequest{SandboxId: "sb-1"})
				if err != nil {
					t.Fatal(err)
				}
				_, streamErr := recvLogs(st)
				for name, err := range map[string]error{"unary": callGetSandbox(e), "stream": streamErr} {
					var ee *errs.Error
					if got := errors.As(err, &ee); got != tc.classified {
						t.Errorf("%s: error %v (%T) holds an *errs.Error: %v, want %v", name, err, err, got, tc.classified)
					}
					var re *retry.Error
					if got := errors.As(err, &re); got != (tc.wantCalls > 1) {
						t.Errorf("%s: error %T is a *retry.Error: %v, want %v", name, err, got, tc.wantCalls > 1)
					}
					if s, _ := status.FromError(err); s.Code() != codes.Unavailable || s.Message() != "down" {
						t.Errorf("%s: status = %v, want the server's", name, s)
					}
				}
				if g, l := e.srv.Calls(getSandbox), e.srv.Calls(streamLogs); g != tc.wantCalls || l != tc.wantCalls {
					t.Errorf("server calls: GetSandbox %d, StreamLogs %d; want %d each", g, l, tc.wantCalls)
				}
			})
		})
	}
}
