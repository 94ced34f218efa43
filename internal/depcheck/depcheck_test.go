package depcheck_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/faultline-go/faultline"

// deps returns the packages pkg imports, directly or not, as `go list -deps` reports them.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

// ours returns the faultline packages among list, other than self.
func ours(list []string, self string) []string {
	var out []string
	for _, p := range list {
		if p != self && (p == mod || strings.HasPrefix(p, mod+"/")) {
			out = append(out, strings.TrimPrefix(p, mod+"/"))
		}
	}
	return out
}

func TestImportDirection(t *testing.T) {
	const (
		otel = "go.opentelemetry.io/..." // OpenTelemetry, API or SDK
		sdk  = "go.opentelemetry.io/otel/sdk/..."
	)
	tests := []struct {
		pkg     string
		allowed []string // faultline packages it may import
		never   []string // other packages it must not import; "path/..." for a whole tree
	}{
		{pkg: "errs", allowed: []string{"internal/details", "internal/oneline", "internal/seam"}, never: []string{otel}},
		{pkg: "classify", allowed: []string{"errs", "internal/sandboxapi", "internal/details", "internal/oneline", "internal/seam"}, never: []string{otel}},
		{pkg: "retry", allowed: []string{"errs", "internal/ended", "internal/engine", "internal/details", "internal/oneline", "internal/seam"}, never: []string{"google.golang.org/grpc", otel}},
		{pkg: "interceptor", allowed: []string{"errs", "classify", "retry", "internal/calls", "internal/ended", "internal/engine", "internal/sandboxapi", "internal/details", "internal/oneline", "internal/seam", "internal/serviceconfig", "internal/transport"}, never: []string{otel}},
		// The sandbox API's facts: kinds, nothing else of ours.
		{pkg: "internal/sandboxapi", allowed: []string{"errs", "internal/details", "internal/oneline", "internal/seam"}, never: []string{"google.golang.org/grpc", otel}},
		// What the transports know of a call: no transport.
		{pkg: "internal/calls", allowed: []string{"errs", "retry", "internal/ended", "internal/engine", "internal/sandboxapi", "internal/details", "internal/oneline", "internal/seam"}, never: []string{"google.golang.org/grpc", otel}},
		// What a transport is configured with: the engine's packages, no transport.
		{pkg: "internal/transport", allowed: []string{"errs", "classify", "retry", "internal/calls", "internal/ended", "internal/engine", "internal/sandboxapi", "internal/details", "internal/oneline", "internal/seam"}, never: []string{"google.golang.org/grpc", otel}},
		// The service config parser reads JSON into plain values: grpc's codes, not its machinery.
		{pkg: "internal/serviceconfig", never: []string{"google.golang.org/grpc", otel}},
		// The OpenTelemetry adapter: the API only, and the retry hooks, not the interceptor.
		{pkg: "otelfaultline", allowed: []string{"errs", "retry", "internal/ended", "internal/engine", "internal/details", "internal/oneline", "internal/seam"}, never: []string{"google.golang.org/grpc", sdk}},
		// The AIP-193 details parse: protobuf-go and genproto, nothing else of ours.
		{pkg: "internal/details", never: []string{otel}},
		{pkg: "internal/seam"},
		// The bounded one-line message of errs and retry: standard library only.
		{pkg: "internal/oneline", never: []string{"google.golang.org/...", otel}},
		{pkg: "internal/ended"},
		// The transports' face of the retry loop: standard library only.
		{pkg: "internal/engine"},
	}
	for _, tt := range tests {
		t.Run(tt.pkg, func(t *testing.T) {
			list := deps(t, mod+"/"+tt.pkg)
			for _, p := range ours(list, mod+"/"+tt.pkg) {
				if !slices.Contains(tt.allowed, p) {
					t.Errorf("%s imports %s; it may import only %v", tt.pkg, p, tt.allowed)
				}
			}
			for _, never := range tt.never {
				for _, p := range list {
					if p == never || strings.HasSuffix(never, "/...") && strings.HasPrefix(p, strings.TrimSuffix(never, "...")) {
						t.Errorf("%s imports %s", tt.pkg, p)
					}
				}
			}
		})
	}
}

// imports returns the direct imports of every package that `go list` lists under the
// module (in the workspace, the other modules' packages too), by importing package.
func imports(t *testing.T) map[string][]string {
	t.Helper()
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, mod+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	m := map[string][]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(line); len(f) > 0 {
			m[f[0]] = f[1:]
		}
	}
	return m
}

// TestNothingImportsTheTop checks that no package of the library imports the interceptor,
// the OpenTelemetry adapter, the examples or the integration tests: only the examples and
// the integration and bench modules, which show and measure the library, may.
func TestNothingImportsTheTop(t *testing.T) {
	for pkg, imps := range imports(t) {
		if user(pkg) {
			continue
		}
		for _, imp := range imps {
			for _, top := range []string{"/interceptor", "/otelfaultline", "/examples", "/integration"} {
				if imp == mod+top || strings.HasPrefix(imp, mod+top+"/") {
					t.Errorf("%s imports %s", pkg, imp)
				}
			}
		}
	}
}

// TestTransportImporters checks that internal/transport, the configuration the transports
// share, is imported by the transports only: package interceptor, and connectfaultline (its
// own module, which the workspace lists, importing it by path).
func TestTransportImporters(t *testing.T) {
	for pkg, imps := range imports(t) {
		if pkg != mod+"/interceptor" && pkg != mod+"/connectfaultline" && slices.Contains(imps, mod+"/internal/transport") {
			t.Errorf("%s imports internal/transport; only the transports may", pkg)
		}
	}
}

// user reports whether pkg is one of the places that use the library rather than part of it.
func user(pkg string) bool {
	for _, dir := range []string{"/examples", "/integration", "/bench"} {
		if pkg == mod+dir || strings.HasPrefix(pkg, mod+dir+"/") {
			return true
		}
	}
	return false
}
