package integration_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/internal/sandboxtest"
	"github.com/faultline-go/faultline/retry"
)

const (
	authCanary = "CANARY-auth-7f3a9c0d"
	mdCanary   = "CANARY-md-51e0b2aa"
	rightKey   = "the-right-key"
)

// texts returns every rendering of err a log line could carry: Error, %v, %+v, %s, %q, and
// the Error of every error in its chain.
func texts(err error) []string {
	out := []string{err.Error(), fmt.Sprintf("%v", err), fmt.Sprintf("%+v", err), fmt.Sprintf("%s", err), fmt.Sprintf("%q", err)}
	queue := []error{err}
	for len(queue) > 0 {
		e := queue[0]
		queue = queue[1:]
		out = append(out, e.Error())
		switch u := e.(type) {
		case interface{ Unwrap() error }:
			if w := u.Unwrap(); w != nil {
				queue = append(queue, w)
			}
		case interface{ Unwrap() []error }:
			queue = append(queue, u.Unwrap()...)
		}
	}
	return out
}

// checkNoCanary fails the test if a canary appears in any rendering of err or any hook
// event of rec.
func checkNoCanary(t *testing.T, err error, rec *recorder, canaries ...string) {
	t.Helper()
	var all []string
	if err != nil {
		all = texts(err)
	}
	checkTexts(t, all, rec, canaries...)
}

// checkTexts fails the test if a canary appears in texts or in any hook event of rec.
func checkTexts(t *testing.T, all []string, rec *recorder, canaries ...string) {
	t.Helper()
	retries, dones := rec.events()
	for _, ev := range retries {
		all = append(all, fmt.Sprintf("%+v", ev), fmt.Sprintf("%+v", ev.Err))
	}
	for _, ev := range dones {
		all = append(all, fmt.Sprintf("%+v", ev), fmt.Sprintf("%+v", ev.Err))
	}
	for _, s := range all {
		for _, c := range canaries {
			if strings.Contains(s, c) {
				t.Errorf("%q contains the canary %q", s, c)
			}
		}
	}
}

// TestSecretsNeverPrinted puts canaries where secrets live, the outgoing authorization
// metadata and the server's ErrorInfo metadata and debug details, and checks that no error
// text and no hook event shows them.
func TestSecretsNeverPrinted(t *testing.T) {
	srv, addr := startServer(t, sandboxtest.WithBearerToken(rightKey), sandboxtest.WithSandboxes("sb-1"))
	var rec recorder
	c := dial(t, addr, []interceptor.Option{interceptor.WithRetrier(retry.MustNew(fastPolicy(3), retry.WithHooks(rec.hooks()), retry.WithBudget(nil)))})
	wrongAuth := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+authCanary)
	rightAuth := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+rightKey)
	retryAuth := fastPolicy(3)
	retryAuth.RetryOn = retry.On(errs.ErrCWSandboxAuthentication)
	secretMD := map[string]string{"token": mdCanary, "authorization": "Bearer " + mdCanary, "sandbox_id": "sb-1"}
	secretDetails := []proto.Message{
		faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_RUNNER_UNAVAILABLE", secretMD),
		&errdetails.DebugInfo{Detail: "token=" + mdCanary, StackEntries: []string{"at " + mdCanary}},
		&errdetails.RequestInfo{RequestId: "r-1", ServingData: mdCanary},
	}

	tests := []struct {
		name     string
		ctx      context.Context
		script   func()
		callOpts []grpc.CallOption
		calls    int
		kind     errs.Kind
		check    func(t *testing.T, e *errs.Error)
	}{
		{
			name: "wrong bearer token",
			ctx:  wrongAuth, script: func() {}, calls: 1, kind: errs.ErrCWSandboxAuthentication,
		},
		{
			name: "wrong bearer token, retried by a call policy",
			ctx:  wrongAuth, script: func() {}, callOpts: []grpc.CallOption{interceptor.WithCallPolicy(retryAuth)},
			calls: 3, kind: errs.ErrCWSandboxAuthentication,
		},
		{
			name: "ErrorInfo metadata and debug details, retried",
			ctx:  rightAuth,
			script: func() {
				srv.FailAlways(mGet, faultlinetest.Status(codes.Unavailable, "runner unavailable", secretDetails...))
			},
			calls: 3, kind: errs.ErrSandboxUnavailable,
			check: func(t *testing.T, e *errs.Error) {
				if e.Metadata()["token"] != mdCanary {
					t.Errorf("Metadata()[token] = %q, want the canary (it must reach the caller, only not the text)", e.Metadata()["token"])
				}
			},
		},
		{
			name: "ErrorInfo metadata on a file error, not retried",
			ctx:  rightAuth,
			script: func() {
				srv.FailAlways(mGet, faultlinetest.Status(codes.NotFound, "no such file",
					faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_FILE_NOT_FOUND", map[string]string{"filepath": "/x", "secret": mdCanary})))
			},
			calls: 1, kind: errs.ErrSandboxFile,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.Reset()
			rec.reset()
			tt.script()
			ctx, cancel := context.WithTimeout(tt.ctx, hangBound)
			defer cancel()
			_, err := c.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}, tt.callOpts...)
			if got := srv.Calls(mGet); got != tt.calls {
				t.Errorf("server calls = %d, want %d", got, tt.calls)
			}
			if tt.ctx == wrongAuth {
				if md := srv.Metadata(mGet); len(md) == 0 || md[0].Get("authorization")[0] != "Bearer "+authCanary {
					t.Fatalf("server metadata = %v, want the canary sent as authorization", md)
				}
			}
			if !errors.Is(err, tt.kind) {
				t.Fatalf("GetSandbox() error = %v, want %v", err, tt.kind)
			}
			retries, dones := rec.events()
			if len(retries) != tt.calls-1 || len(dones) != 1 {
				t.Errorf("hook events = %d retries, %d dones, want %d, 1", len(retries), len(dones), tt.calls-1)
			}
			if tt.check != nil {
				tt.check(t, asErrs(t, err))
			}
			checkNoCanary(t, err, &rec, authCanary, mdCanary)
		})
	}
}

// TestSecretsFromHostileServer sends canaries in places only a raw server can: custom and
// authorization trailers, and metadata in details whose code contradicts grpc-status
// (grpc-go then writes the details, metadata included, into the status message).
func TestSecretsFromHostileServer(t *testing.T) {
	withSecret := faultlinetest.Status(codes.Unavailable, "runner unavailable",
		faultlinetest.ErrorInfo(classify.DefaultDomain, "CWSANDBOX_RUNNER_UNAVAILABLE", map[string]string{"token": mdCanary}),
		faultlinetest.RetryInfo(time.Millisecond)).Proto()
	mismatched := faultlinetest.Status(codes.NotFound, "", faultlinetest.ErrorInfo("", "R", map[string]string{"t": mdCanary})).Proto()
	tests := []struct {
		name    string
		fields  [][2]string
		calls   int
		ownOnly bool // check err's own renderings, not the errors it wraps
	}{
		{
			name: "secret trailers and ErrorInfo metadata",
			fields: append(statusFields(14, "runner unavailable", withSecret),
				[2]string{"x-secret", mdCanary}, [2]string{"authorization", "Bearer " + mdCanary}, [2]string{"set-cookie", "s=" + mdCanary}),
			calls: 3,
		},
		{
			// grpc-go writes these details, metadata included, into its own status
			// message. The error Unwrap returns is grpc-go's, unmodified, so only our
			// renderings are checked.
			name:    "metadata in details whose code contradicts grpc-status",
			fields:  statusFields(14, "", mismatched),
			calls:   1,
			ownOnly: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, addr := startH2(t, func(c *h2Call) { _ = c.trailersOnly(tt.fields...) })
			var rec recorder
			c := dial(t, addr, []interceptor.Option{interceptor.WithRetrier(retry.MustNew(fastPolicy(3), retry.WithHooks(rec.hooks()), retry.WithBudget(nil)))})
			ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+authCanary)
			var trailer metadata.MD
			_, err := c.sb.GetSandbox(ctx, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}, grpc.Trailer(&trailer))
			if err == nil || srv.Calls() != tt.calls {
				t.Fatalf("GetSandbox() error, server calls = %v, %d, want an error, %d", err, srv.Calls(), tt.calls)
			}
			if tt.ownOnly {
				checkTexts(t, texts(err)[:5], &rec, authCanary, mdCanary)
				return
			}
			checkNoCanary(t, err, &rec, authCanary, mdCanary)
		})
	}
}
