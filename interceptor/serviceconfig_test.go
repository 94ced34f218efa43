package interceptor_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/internal/sandboxpb"
	"github.com/faultline-go/faultline/retry"
)

// retryJSON is a retryPolicy of n attempts, 1s backoffs, retrying the given codes.
func retryJSON(n int, codes ...string) string {
	return `{"maxAttempts": ` + strconv.Itoa(n) + `, "initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 1,
		"retryableStatusCodes": ["` + strings.Join(codes, `", "`) + `"]}`
}

// otherMethod is a method of a service no test server implements.
const otherMethod = "/acme.billing.v1.Billing/Charge"

// scAttempts returns how many attempts a unary call of method makes through Unary(opts...)
// when every attempt fails with st, in a synctest bubble (the waits take no time).
func scAttempts(t *testing.T, method string, st *status.Status, opts ...interceptor.Option) int {
	t.Helper()
	n := 0
	synctest.Test(t, func(t *testing.T) {
		u := interceptor.Unary(opts...)
		failing := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
			n++
			return st.Err()
		}
		_ = u(context.Background(), method, &sandboxpb.GetSandboxRequest{SandboxId: "sb-1"}, &sandboxpb.Sandbox{}, nil, failing)
	})
	return n
}

// TestServiceConfigNames checks the name matching of an imported config (gRPC's: method,
// then service, then default; a name without retryPolicy is not retried; a method no name
// matches is not retried) and its precedence over and under the explicit options.
func TestServiceConfigNames(t *testing.T) {
	sc := `{"methodConfig": [
		{"name": [{"service": "coreweave.sandbox.v1.SandboxService", "method": "GetSandbox"}], "retryPolicy": ` + retryJSON(2, "UNAVAILABLE") + `},
		{"name": [{"service": "coreweave.sandbox.v1.SandboxService"}], "retryPolicy": ` + retryJSON(3, "UNAVAILABLE") + `},
		{"name": [{"service": "coreweave.sandbox.v1.SandboxService", "method": "ReadFile"}], "timeout": "10s"},
		{"name": [{}], "retryPolicy": ` + retryJSON(4, "UNAVAILABLE", "ABORTED") + `}]}`
	noDefault := `{"methodConfig": [{"name": [{"service": "coreweave.sandbox.v1.SandboxService"}], "retryPolicy": ` + retryJSON(3, "UNAVAILABLE") + `}]}`
	p6 := attempts(secondsPolicy(), 6)
	unavail := status.New(codes.Unavailable, "down")
	tests := []struct {
		name   string
		method string
		st     *status.Status
		opts   []interceptor.Option
		want   int
	}{
		{"method name", getSandbox, unavail, []interceptor.Option{interceptor.WithServiceConfig(sc)}, 2},
		{"service name", getSnapshot, unavail, []interceptor.Option{interceptor.WithServiceConfig(sc)}, 3},
		{"default name", getRunner, unavail, []interceptor.Option{interceptor.WithServiceConfig(sc)}, 4},
		{"default name, its own codes", otherMethod, status.New(codes.Aborted, "again"), []interceptor.Option{interceptor.WithServiceConfig(sc)}, 4},
		{"a code not listed", getSandbox, status.New(codes.Aborted, "again"), []interceptor.Option{interceptor.WithServiceConfig(sc)}, 1},
		{"a name without retryPolicy beats a less specific one", readFile, unavail, []interceptor.Option{interceptor.WithServiceConfig(sc)}, 1},
		{"no name matches and no WithRetrier: not retried, as in grpc-go", getRunner, unavail,
			[]interceptor.Option{interceptor.WithServiceConfig(noDefault)}, 1},
		{"no name matches: WithRetrier's policy", getRunner, unavail,
			[]interceptor.Option{interceptor.WithServiceConfig(noDefault), noBudget(p6)}, 6},
		{"the imported default beats WithRetrier's policy", getRunner, unavail,
			[]interceptor.Option{noBudget(p6), interceptor.WithServiceConfig(sc)}, 4},
		{"explicit WithMethodPolicy beats the same imported name", getSandbox, unavail,
			[]interceptor.Option{interceptor.WithServiceConfig(sc), interceptor.WithMethodPolicy(getSandbox, p6)}, 6},
		{"explicit WithMethodPolicy of a service beats the imported service", getSnapshot, unavail,
			[]interceptor.Option{interceptor.WithMethodPolicy(sandboxSvc, p6), interceptor.WithServiceConfig(sc)}, 6},
		{"an imported method beats an explicit service", getSandbox, unavail,
			[]interceptor.Option{interceptor.WithMethodPolicy(sandboxSvc, p6), interceptor.WithServiceConfig(sc)}, 2},
		{"an explicit method beats an imported service", getSnapshot, unavail,
			[]interceptor.Option{interceptor.WithServiceConfig(noDefault), interceptor.WithMethodPolicy(getSnapshot, p6)}, 6},
		{"the last WithServiceConfig wins", getSandbox, unavail,
			[]interceptor.Option{interceptor.WithServiceConfig(sc), interceptor.WithServiceConfig(noDefault)}, 3},
		// The safety rules stay: Exec runs the user's command and is never repeated.
		{"Exec is never retried", sandboxpb.SandboxService_Exec_FullMethodName, unavail, []interceptor.Option{interceptor.WithServiceConfig(sc)}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// The budget is off (a retrier of one attempt without a budget, which the cases'
			// own WithRetrier replaces): its floor closes while a client keeps failing, and this
			// test counts what the policies allow.
			opts := append([]interceptor.Option{noBudget(oneAttempt())}, tt.opts...)
			if got := scAttempts(t, tt.method, tt.st, opts...); got != tt.want {
				t.Errorf("%s: %d attempts, want %d", tt.method, got, tt.want)
			}
		})
	}
}

// TestServiceConfigThrottling checks that retryThrottling becomes the budget (gRFC A6: 3
// tokens, retries while more than 1.5 remain: the first failure leaves 2, the second 1), and
// that an explicit WithRetrier's budget (here none) replaces it whatever the order.
func TestServiceConfigThrottling(t *testing.T) {
	sc := `{"methodConfig": [{"name": [{}], "retryPolicy": ` + retryJSON(5, "UNAVAILABLE") + `}],
		"retryThrottling": {"maxTokens": 3, "tokenRatio": 0.5}}`
	unavail := status.New(codes.Unavailable, "down")
	for _, tt := range []struct {
		name string
		opts []interceptor.Option
		want int
	}{
		{"imported token bucket", []interceptor.Option{interceptor.WithServiceConfig(sc)}, 2},
		{"WithRetrier without a budget, after", []interceptor.Option{interceptor.WithServiceConfig(sc), noBudget(oneAttempt())}, 5},
		{"WithRetrier without a budget, before", []interceptor.Option{noBudget(oneAttempt()), interceptor.WithServiceConfig(sc)}, 5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := scAttempts(t, getSandbox, unavail, tt.opts...); got != tt.want {
				t.Errorf("%d attempts, want %d", got, tt.want)
			}
		})
	}
}

// TestServiceConfigWaits checks the imported backoff: grpc-go's, min(initial*mult^(n-1),
// max) times U(0.8, 1.2), on the virtual clock.
func TestServiceConfigWaits(t *testing.T) {
	sc := `{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 5, "initialBackoff": "0.1s",
		"maxBackoff": "0.5s", "backoffMultiplier": 3, "retryableStatusCodes": ["UNAVAILABLE"]}}]}`
	synctest.Test(t, func(t *testing.T) {
		var times []time.Time
		failing := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
			times = append(times, time.Now())
			return status.Error(codes.Unavailable, "down")
		}
		u := interceptor.Unary(interceptor.WithServiceConfig(sc), noBudget(oneAttempt()))
		_ = u(context.Background(), getSandbox, &sandboxpb.GetSandboxRequest{}, &sandboxpb.Sandbox{}, nil, failing)
		base := []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond}
		if len(times) != len(base)+1 {
			t.Fatalf("%d attempts, want %d", len(times), len(base)+1)
		}
		for i, b := range base {
			gap := times[i+1].Sub(times[i])
			if lo, hi := time.Duration(float64(b)*0.8)-1, time.Duration(float64(b)*1.2)+1; gap < lo || gap > hi {
				t.Errorf("wait %d = %v, want in [%v, %v]", i+1, gap, lo, hi)
			}
		}
	})
}

// TestServiceConfigErrors checks that New refuses what grpc-go would refuse, and a
// hedgingPolicy, with an error that names the field; the interceptors built from such
// options fail every call with it.
func TestServiceConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, sc, want string }{
		{"empty", ``, "interceptor: invalid service config: empty"},
		{"not JSON", `{`, "interceptor: invalid service config: not JSON"},
		{"bad duration", `{"methodConfig": [{}, {}, {"name": [{}], "retryPolicy": {"maxAttempts": 2, "initialBackoff": "1"}}]}`,
			`interceptor: invalid service config: methodConfig[2].retryPolicy.initialBackoff: got "1"`},
		{"maxAttempts 1", `{"methodConfig": [{"name": [{}], "retryPolicy": ` + retryJSON(1, "UNAVAILABLE") + `}]}`,
			"methodConfig[0].retryPolicy.maxAttempts: got 1, want at least 2"},
		{"lower-case code", `{"methodConfig": [{"name": [{}], "retryPolicy": ` + retryJSON(2, "unavailable") + `}]}`,
			`methodConfig[0].retryPolicy.retryableStatusCodes[0]: got "unavailable"`},
		{"hedgingPolicy", `{"methodConfig": [{"name": [{}], "hedgingPolicy": {"maxAttempts": 2}}]}`,
			"methodConfig[0].hedgingPolicy: not supported"},
		{"throttling", `{"methodConfig": [], "retryThrottling": {"maxTokens": 2000, "tokenRatio": 1}}`,
			"retryThrottling.maxTokens: got 2000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := interceptor.New(interceptor.WithRetrier(retry.MustNew(secondsPolicy())), interceptor.WithServiceConfig(tc.sc))
			if s != nil || !errors.Is(err, interceptor.ErrInvalidServiceConfig) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New(WithServiceConfig(%q)) = %v, %v; want an error matching ErrInvalidServiceConfig containing %q", tc.sc, s, err, tc.want)
			}
			u := interceptor.Unary(interceptor.WithServiceConfig(tc.sc))
			err = u(context.Background(), getSandbox, &sandboxpb.GetSandboxRequest{}, &sandboxpb.Sandbox{}, nil, okInvoker)
			if status.Code(err) != codes.InvalidArgument || !errors.Is(err, interceptor.ErrInvalidServiceConfig) {
				t.Errorf("call through Unary(WithServiceConfig(%q)) = %v, want INVALID_ARGUMENT matching ErrInvalidServiceConfig", tc.sc, err)
			}
		})
	}
}
