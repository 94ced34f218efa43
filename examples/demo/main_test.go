package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// TestDemo runs the whole session and checks each call's row: the kind, the attempts and
// the outcome, which do not depend on timing.
func TestDemo(t *testing.T) {
	defer goleak.VerifyNone(t)
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatalf("run() = %v, want nil", err)
	}
	rows := map[string]string{
		"CreateSandbox (no id)":    `SandboxUnavailableError\s+2\s+ok: created sb-new once \(1 sandbox, 1 generated request id\)`,
		"GetSandbox (poll)":        `SandboxUnavailableError\s+3\s+ok: STATE_RUNNING`,
		"Exec":                     `SandboxUnavailableError\s+1\s+error, not retried: not safe to repeat`,
		"WriteFile (quota)":        `SandboxResourceExhaustedError\s+1\s+error, not retried: no server signal`,
		"WriteFile (throttled)":    `SandboxResourceExhaustedError\s+2\s+ok: written`,
		"GetSandbox (gone)":        `SandboxNotFoundError\s+1\s+error, not retryable`,
		"CreateSandbox (bad spec)": `SandboxValidationError\s+1\s+error, not retryable`,
		"StreamLogs":               `SandboxUnavailableError\s+2\s+ok: 6 log lines, each once, in order`,
		"StreamLogs (restart)":     `SandboxUnavailableError\s+2\s+ok: 6 log lines, each once, in order \(resumed 1x from its cursor\)`,
		"GetSandbox (long hint)":   `SandboxUnavailableError\s+1\s+error, not retried: server retry delay above the limit`,
	}
	for name, want := range rows {
		re := regexp.MustCompile(regexp.QuoteMeta(name) + `\s{2,}.*` + want)
		if !re.MatchString(out.String()) {
			t.Errorf("row %q does not match %q in:\n%s", name, want, out.String())
		}
	}
	if !strings.Contains(out.String(), "3 CreateSandbox (1 created), 1 Exec (1 run), 4 StreamLogs calls") {
		t.Errorf("output lacks the server's counts:\n%s", out.String())
	}
	if strings.Contains(out.String(), "r-7") {
		t.Errorf("output shows ErrorInfo metadata:\n%s", out.String())
	}
}
