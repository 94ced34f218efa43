package depcheck_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestReadmeSaysHow (issue 16, instance 11) checks that the documentation says what a new
// user needs and could not guess:
//   - the README's test command names ./integration/... and ./bench/..., modules of their
//     own: it works only in the repository's workspace (go.work), which the test confirms;
//   - -shuffle=on turns go test's result cache off, so the command reruns every test;
//   - Exec (and StreamExec) are never repeated by default; WithIdempotency(..., NotIdempotent)
//     lets a failure the server declined be retried. The README and WithIdempotency's doc
//     comment say so.
func TestReadmeSaysHow(t *testing.T) {
	readme := read(t, "../../README.md")
	options := funcDoc(t, "../../interceptor/options.go", "WithIdempotency")
	for _, tc := range []struct {
		doc, name string
		want      []string
	}{
		{readme, "README.md", []string{"go.work", "GOWORK=off", "-shuffle=on", "cache"}},
		{readme, "README.md", []string{"WithIdempotency(", "Exec_FullMethodName", "retry.NotIdempotent"}},
		{options, "WithIdempotency's doc", []string{"Exec", "NotIdempotent", "declined"}},
	} {
		for _, w := range tc.want {
			if !strings.Contains(tc.doc, w) {
				t.Errorf("%s does not contain %q", tc.name, w)
			}
		}
	}

	// What the README says of go.work is true: outside the workspace the command's module
	// patterns name no package of the main module.
	cmd := exec.Command("go", "list", "./integration/...")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("GOWORK=off go list ./integration/... succeeded (%s), want it to fail outside the workspace", out)
	}
	cmd = exec.Command("go", "list", "./integration/...")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "GOWORK=") // the default: the workspace of the checkout
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("go list ./integration/... in the workspace: %v\n%s", err, out)
	}
}

// funcDoc returns the doc comment of the function name in the Go file path.
func funcDoc(t *testing.T, path, name string) string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == name && fd.Doc != nil {
			return fd.Doc.Text()
		}
	}
	t.Fatalf("%s: no documented func %s", path, name)
	return ""
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
