package transport_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/calls"
	"github.com/faultline-go/faultline/internal/transport"
	"github.com/faultline-go/faultline/retry"
)

const (
	svc    = "/pkg.Service/"
	method = "/pkg.Service/Get"
)

func attempts(n int) retry.Policy {
	p := retry.DefaultPolicy()
	p.MaxAttempts = n
	return p
}

func TestBuildDefaults(t *testing.T) {
	b, err := transport.Build(transport.NewConfig(), transport.Rules{})
	if err != nil {
		t.Fatalf("Build(NewConfig()) = %v, want nil", err)
	}
	if b.Classifier == nil || b.Retrier == nil || b.Calls == nil || b.Def == nil {
		t.Errorf("Build(NewConfig()) = %+v, want a classifier, a retrier, calls and a default route", b)
	}
	if b.Header != "x-retry-attempt" || b.ReplayLimit != 256<<10 {
		t.Errorf("Build(NewConfig()) header, replay limit = %q, %d, want %q, %d", b.Header, b.ReplayLimit, "x-retry-attempt", 256<<10)
	}
	if b.Methods != nil {
		t.Errorf("Build(NewConfig()).Methods = %v, want nil (no lookup on a call)", b.Methods)
	}
	if !b.Def.Retries {
		t.Errorf("the default route's Retries = false, want true (the default policy retries)")
	}
}

func TestBuildErrors(t *testing.T) {
	connect := transport.Rules{Reserved: []string{"connect-"}}
	tests := []struct {
		name  string
		set   func(*transport.Config)
		rules transport.Rules
		want  string // in the error's text
		is    error
	}{
		{"capitals", func(c *transport.Config) { c.Header = "X-Retry" }, transport.Rules{}, `attempt header "X-Retry" is not a lower-case metadata key (a-z, 0-9, -, _, .; not grpc- or -bin)`, nil},
		{"reserved", func(c *transport.Config) { c.Header = "connect-try" }, connect, `not grpc-, connect- or -bin)`, nil},
		{"negative replay limit", func(c *transport.Config) { c.ReplayLimit = -1 }, transport.Rules{}, "replay limit is -1 bytes, want >= 0", nil},
		{"malformed policy name", func(c *transport.Config) { c.SetPolicy("Get", retry.DefaultPolicy()) }, transport.Rules{}, `method policy name "Get"`, nil},
		{"invalid policy", func(c *transport.Config) { c.SetPolicy(method, attempts(0)) }, transport.Rules{}, "policy for " + method, retry.ErrInvalidPolicy},
		{"malformed level name", func(c *transport.Config) { c.SetLevel("Get", retry.Idempotent) }, transport.Rules{}, `idempotency entry "Get"`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := transport.NewConfig()
			tt.set(&c)
			_, err := transport.Build(c, tt.rules)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Build = %v, want an error containing %q", err, tt.want)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("Build = %v, want an error matching %v", err, tt.is)
			}
		})
	}
}

func TestRoute(t *testing.T) {
	c := transport.NewConfig()
	c.SetPolicy(svc, attempts(1))
	c.SetPolicy(method, attempts(3))
	b, err := transport.Build(c, transport.Rules{})
	if err != nil {
		t.Fatalf("Build = %v", err)
	}
	tests := []struct {
		method  string
		want    *transport.Route
		retries bool
	}{
		{method, b.Methods[method], true},     // its own policy
		{svc + "List", b.Methods[svc], false}, // its service's
		{"/other.Service/Get", b.Def, true},   // the default
	}
	for _, tt := range tests {
		if got := b.Route(tt.method); got != tt.want || got.Retries != tt.retries {
			t.Errorf("Route(%s) = %p (retries %v), want %p (retries %v)", tt.method, got, got.Retries, tt.want, tt.retries)
		}
	}
}

func TestIsStreamLogs(t *testing.T) {
	wrapper := func(req, last proto.Message) (proto.Message, bool) { return calls.ResumeStreamLogs(req, last) }
	other := func(req, last proto.Message) (proto.Message, bool) { return nil, false }
	tests := []struct {
		name  string
		rules transport.Rules
		f     calls.Resumer
		want  bool
	}{
		{"the transport's", transport.Rules{StreamLogs: wrapper}, wrapper, true},
		{"another resumer", transport.Rules{StreamLogs: wrapper}, other, false},
		{"nil", transport.Rules{StreamLogs: wrapper}, nil, false},
		{"no ResumeStreamLogs", transport.Rules{}, wrapper, false},
	}
	for _, tt := range tests {
		if got := tt.rules.IsStreamLogs(tt.f); got != tt.want {
			t.Errorf("IsStreamLogs(%s) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestValidHeader(t *testing.T) {
	tests := []struct {
		key      string
		reserved []string
		want     bool
	}{
		{"", nil, true},
		{"x-retry-attempt", nil, true},
		{"x_retry.attempt-2", nil, true},
		{"X-Retry", nil, false},
		{"grpc-retry", nil, false},
		{"x-retry-bin", nil, false},
		{"x retry", nil, false},
		{"connect-retry", nil, true},
		{"connect-retry", []string{"connect-"}, false},
		{"content-type", nil, false}, // the protocols' own: a retry would break
		{"te", nil, false},           // grpc-go drops it
		{"user-agent", nil, false},   // grpc-go sets its own
		{"content-encoding", nil, false},
		{"content-typed", nil, true},
	}
	for _, tt := range tests {
		if got := transport.ValidHeader(tt.key, tt.reserved...); got != tt.want {
			t.Errorf("ValidHeader(%q, %q) = %v, want %v", tt.key, tt.reserved, got, tt.want)
		}
	}
}

func TestConfigError(t *testing.T) {
	cause := errors.New("replay limit is -1 bytes, want >= 0")
	err := error(&transport.ConfigError{Err: cause})
	if got, want := err.Error(), "faultline: invalid interceptor options: "+cause.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, cause) {
		t.Errorf("errors.Is(%v, cause) = false, want true", err)
	}
	if got := status.Code(err); got != codes.InvalidArgument {
		t.Errorf("status.Code = %v, want %v", got, codes.InvalidArgument)
	}
}

func TestNestedHoldsClassified(t *testing.T) {
	e := errs.New(errs.ErrSandboxUnavailable, "down")
	final := fmt.Errorf("wrapped: %w", retry.MustNew(attempts(1)).Do(t.Context(), func(context.Context) error { return e }))
	tests := []struct {
		name               string
		err                error
		nested, classified bool
	}{
		{"plain", errors.New("x"), false, false},
		{"classified", fmt.Errorf("w: %w", e), false, true},
		{"another loop's", final, true, true},
	}
	for _, tt := range tests {
		if got := transport.Nested(tt.err); got != tt.nested {
			t.Errorf("Nested(%s) = %v, want %v", tt.name, got, tt.nested)
		}
		if got := transport.HoldsClassified(tt.err); got != tt.classified {
			t.Errorf("HoldsClassified(%s) = %v, want %v", tt.name, got, tt.classified)
		}
	}
}
