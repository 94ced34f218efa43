package main

import (
	"bytes"
	"strings"
	"testing"
)

// TestRetriedAsTheInterceptorDecides: the "retried" line is the interceptor's own decision
// for the method, safety rules included.
func TestRetriedAsTheInterceptorDecides(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-code", "ResourceExhausted", "-method", "/coreweave.sandbox.v1.SandboxService/WriteFile"}, "no: no server signal"},
		{[]string{"-code", "Unavailable", "-method", "/coreweave.sandbox.v1.SandboxService/Exec"}, "no: not safe to repeat"},
		{[]string{"-code", "Unavailable", "-method", "/grpc.health.v1.Health/Check"}, "yes, after the default backoff"},
		{[]string{"-code", "Unavailable", "-method", "/coreweave.sandbox.v1.SandboxService/CreateSandbox"}, "no: not safe to repeat"},
		{[]string{"-code", "NotFound"}, "no: not retryable"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(tc.args, strings.NewReader(""), &out, &errOut); code != 0 {
				t.Fatalf("run(%q) = %d (%s), want 0", tc.args, code, errOut.String())
			}
			if !strings.Contains(out.String(), "retried:       "+tc.want) {
				t.Errorf("run(%q) printed\n%s\nwant a line \"retried: %s...\"", tc.args, out.String(), tc.want)
			}
		})
	}
}
