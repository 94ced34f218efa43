package classify_test

import (
	"context"
	"errors"
	"fmt"
	"go/parser"
	"go/token"
	"regexp"
	"slices"
	"strings"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/faultlinetest"
	"github.com/faultline-go/faultline/retry"
)

// The tests of this file keep the tables of the package documentation (doc.go) and the code
// in agreement: they parse the tables out of the doc comment and check every row, on every
// family, through the public API.

// docFamily is a family the tables have a column for, the header that names the column, and
// a method of the family.
type docFamily struct {
	family errs.Kind
	header string
	method string
}

// docFamilies are the families of the tables.
var docFamilies = []docFamily{
	{errs.ErrSandbox, "sandbox calls", "/coreweave.sandbox.v1.SandboxService/GetSandbox"},
	{errs.ErrDiscovery, "discovery calls", "/coreweave.sandbox.v1.DiscoveryService/GetAvailableRunner"},
	{errs.ErrCWSandbox, "other services", "/grpc.health.v1.Health/Check"},
}

// familyNamed returns the family whose column header is name.
func familyNamed(name string) (docFamily, bool) {
	i := slices.IndexFunc(docFamilies, func(df docFamily) bool { return df.header == name })
	if i < 0 {
		return docFamily{}, false
	}
	return docFamilies[i], true
}

// methodOf returns the method the tests call for family f.
func methodOf(f errs.Kind) string {
	i := slices.IndexFunc(docFamilies, func(df docFamily) bool { return df.family == f })
	return docFamilies[i].method
}

// codeNames are the canonical names of the codes, as the tables spell them.
var codeNames = map[string]codes.Code{
	"CANCELLED":           codes.Canceled,
	"UNKNOWN":             codes.Unknown,
	"INVALID_ARGUMENT":    codes.InvalidArgument,
	"DEADLINE_EXCEEDED":   codes.DeadlineExceeded,
	"NOT_FOUND":           codes.NotFound,
	"ALREADY_EXISTS":      codes.AlreadyExists,
	"PERMISSION_DENIED":   codes.PermissionDenied,
	"RESOURCE_EXHAUSTED":  codes.ResourceExhausted,
	"FAILED_PRECONDITION": codes.FailedPrecondition,
	"ABORTED":             codes.Aborted,
	"OUT_OF_RANGE":        codes.OutOfRange,
	"UNIMPLEMENTED":       codes.Unimplemented,
	"INTERNAL":            codes.Internal,
	"UNAVAILABLE":         codes.Unavailable,
	"DATA_LOSS":           codes.DataLoss,
	"UNAUTHENTICATED":     codes.Unauthenticated,
}

// docCase is one failure the tables speak about: a code, with or without field violations,
// on a call with or without a snapshot id, while the caller's context was alive or after it
// had ended.
type docCase struct {
	code       codes.Code
	violations bool
	snapshot   bool
	ctxErr     error
}

func (c docCase) String() string {
	return fmt.Sprintf("%v, violations %t, snapshot id %t, caller's context error %v",
		c.code, c.violations, c.snapshot, c.ctxErr)
}

// docCases returns every case: every failure code, crossed with every condition a row may
// name.
func docCases() []docCase {
	var all []docCase
	for code := codes.Canceled; code <= codes.Unauthenticated; code++ {
		for _, violations := range []bool{false, true} {
			for _, snapshot := range []bool{false, true} {
				for _, ctxErr := range []error{nil, context.Canceled, context.DeadlineExceeded} {
					all = append(all, docCase{code, violations, snapshot, ctxErr})
				}
			}
		}
	}
	return all
}

// conditions are the conditions a row of a code table may add after its code.
var conditions = map[string]func(docCase) bool{
	"field violations":       func(c docCase) bool { return c.violations },
	"no field violations":    func(c docCase) bool { return !c.violations },
	"a snapshot id":          func(c docCase) bool { return c.snapshot },
	"no snapshot id":         func(c docCase) bool { return !c.snapshot },
	"caller's context alive": func(c docCase) bool { return c.ctxErr == nil },
	"caller's context ended": func(c docCase) bool { return c.ctxErr != nil },
}

// fallThrough is the cell of the reason table for a reason that picks no kind on a family.
const fallThrough = "code"

// reasonRow is a row of the reason table: the kind the reason picks on each family, 0 where
// it picks none and the code decides.
type reasonRow struct {
	reason string
	kinds  map[errs.Kind]errs.Kind
}

// codeRow is a row of a code table: "anything else", or a code and an optional condition.
type codeRow struct {
	text         string
	anythingElse bool
	code         codes.Code
	cond         func(docCase) bool
	kind         errs.Kind
}

// codeTable is the code table of one family.
type codeTable []codeRow

// kind returns the kind the table gives c, or an error when no row or more than one does.
func (tab codeTable) kind(c docCase) (errs.Kind, error) {
	var named bool
	var match []codeRow
	for _, r := range tab {
		if r.anythingElse || r.code != c.code {
			continue
		}
		named = true
		if r.cond == nil || r.cond(c) {
			match = append(match, r)
		}
	}
	if !named {
		for _, r := range tab {
			if r.anythingElse {
				match = append(match, r)
			}
		}
	}
	if len(match) != 1 {
		var texts []string
		for _, r := range match {
			texts = append(texts, r.text)
		}
		return 0, fmt.Errorf("%v matches %d rows %q, want 1", c, len(match), texts)
	}
	return match[0].kind, nil
}

// docTables are the tables of the package documentation.
type docTables struct {
	reasons   []reasonRow
	codes     map[errs.Kind]codeTable
	transient []string
	local     []localRow
}

// localRow is a row of the table of failures the client made: a code and the start of
// grpc-go's message.
type localRow struct {
	code   codes.Code
	prefix string
}

// reasonName is the spelling of a reason.
var reasonName = regexp.MustCompile(`^CWSANDBOX_[A-Z0-9_]+$`)

// notReason reports whether a line of a preformatted block is anything but a reason name.
func notReason(line string) bool { return !reasonName.MatchString(strings.TrimSpace(line)) }

// readDocTables parses the tables out of the doc comment of doc.go: the preformatted blocks
// whose header starts with "reason" (the reason table) or "code" (the code table of the
// family its second column names), and the block of reason names alone (the transient set).
func readDocTables(t *testing.T) docTables {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatalf("parse doc.go: %v", err)
	}
	if f.Doc == nil {
		t.Fatal("doc.go has no package doc")
	}
	kinds := map[string]errs.Kind{}
	for _, k := range errs.Kinds() {
		kinds[k.String()] = k
	}
	kindOf := func(name string) errs.Kind {
		k, ok := kinds[name]
		if !ok {
			t.Fatalf("doc table: %q is not a kind", name)
		}
		return k
	}
	tabs := docTables{codes: map[errs.Kind]codeTable{}}
	var transientBlocks int
	for _, block := range preformatted(f.Doc.Text()) {
		header := cells(block[0])
		switch {
		case header[0] == "reason":
			if tabs.reasons != nil {
				t.Fatal("doc.go has two reason tables")
			}
			tabs.reasons = readReasonTable(t, header, block[1:], kindOf)
		case header[0] == "client failure code":
			if tabs.local != nil {
				t.Fatal("doc.go has two tables of client failures")
			}
			for _, line := range block[1:] {
				cs := cells(line)
				code, ok := codeNames[cs[0]]
				if len(cs) != 2 || !ok {
					t.Fatalf("client failure table: row %q: want a code and a message", line)
				}
				tabs.local = append(tabs.local, localRow{code, cs[1]})
			}
		case header[0] == "code":
			fam, tab := readCodeTable(t, header, block[1:], kindOf)
			if _, dup := tabs.codes[fam]; dup {
				t.Fatalf("doc.go has two code tables for %q", header[1])
			}
			tabs.codes[fam] = tab
		case !slices.ContainsFunc(block, notReason):
			transientBlocks++
			for _, l := range block {
				tabs.transient = append(tabs.transient, strings.TrimSpace(l))
			}
		}
	}
	switch {
	case len(tabs.reasons) == 0:
		t.Fatal("doc.go has no reason table")
	case len(tabs.codes) != len(docFamilies):
		t.Fatalf("doc.go has code tables for %d families, want %d", len(tabs.codes), len(docFamilies))
	case transientBlocks != 1:
		t.Fatalf("doc.go has %d lists of transient reasons, want 1", transientBlocks)
	case len(tabs.local) == 0:
		t.Fatal("doc.go has no table of client failures")
	}
	return tabs
}

// preformatted returns the preformatted blocks of doc comment text, line by line.
func preformatted(text string) [][]string {
	var blocks [][]string
	var cur []string
	for l := range strings.Lines(text) {
		l = strings.TrimRight(l, "\n")
		if strings.HasPrefix(l, "\t") {
			cur = append(cur, l)
			continue
		}
		if cur != nil {
			blocks, cur = append(blocks, cur), nil
		}
	}
	if cur != nil {
		blocks = append(blocks, cur)
	}
	return blocks
}

var columnGap = regexp.MustCompile(`\s{2,}`)

// cells splits a table line into its columns, separated by two spaces or more.
func cells(line string) []string {
	return columnGap.Split(strings.TrimSpace(line), -1)
}

// readReasonTable reads the rows of the reason table. A column whose header names several
// families ("sandbox calls / other services") holds one kind for all of them, or one per
// family separated the same way.
func readReasonTable(t *testing.T, header, rows []string, kindOf func(string) errs.Kind) []reasonRow {
	t.Helper()
	var columns [][]errs.Kind
	for _, h := range header[1:] {
		var fams []errs.Kind
		for name := range strings.SplitSeq(h, " / ") {
			df, ok := familyNamed(name)
			if !ok {
				t.Fatalf("reason table: column %q names no family", h)
			}
			fams = append(fams, df.family)
		}
		columns = append(columns, fams)
	}
	var out []reasonRow
	seen := map[string]bool{}
	for _, line := range rows {
		cs := cells(line)
		if len(cs) != len(header) {
			t.Fatalf("reason table: row %q has %d columns, want %d", line, len(cs), len(header))
		}
		row := reasonRow{reason: cs[0], kinds: map[errs.Kind]errs.Kind{}}
		if !reasonName.MatchString(row.reason) || seen[row.reason] {
			t.Fatalf("reason table: row %q: bad or repeated reason", line)
		}
		seen[row.reason] = true
		for i, fams := range columns {
			parts := strings.Split(cs[i+1], " / ")
			if len(parts) == 1 {
				parts = slices.Repeat(parts, len(fams))
			}
			if len(parts) != len(fams) {
				t.Fatalf("reason table: row %q: cell %q does not give one kind per family", line, cs[i+1])
			}
			for j, fam := range fams {
				if parts[j] != fallThrough {
					row.kinds[fam] = kindOf(parts[j])
				} else {
					row.kinds[fam] = 0
				}
			}
		}
		out = append(out, row)
	}
	for _, df := range docFamilies {
		if _, ok := out[0].kinds[df.family]; !ok {
			t.Fatalf("reason table: no column for %q", df.header)
		}
	}
	return out
}

// readCodeTable reads a code table: its family, from the header, and its rows.
func readCodeTable(t *testing.T, header, rows []string, kindOf func(string) errs.Kind) (errs.Kind, codeTable) {
	t.Helper()
	df, ok := familyNamed(header[len(header)-1])
	if len(header) != 2 || !ok {
		t.Fatalf("code table: header %q names no family", header)
	}
	var tab codeTable
	for _, line := range rows {
		cs := cells(line)
		if len(cs) != 2 {
			t.Fatalf("code table %q: row %q has %d columns, want 2", header[1], line, len(cs))
		}
		row := codeRow{text: cs[0], kind: kindOf(cs[1])}
		if cs[0] == "anything else" {
			row.anythingElse = true
		} else {
			name, cond, _ := strings.Cut(cs[0], ", ")
			code, ok := codeNames[name]
			if !ok {
				t.Fatalf("code table %q: row %q: %q is not a code", header[1], line, name)
			}
			row.code = code
			if cond != "" {
				if row.cond = conditions[cond]; row.cond == nil {
					t.Fatalf("code table %q: row %q: unknown condition %q", header[1], line, cond)
				}
			}
		}
		tab = append(tab, row)
	}
	return df.family, tab
}

// failure returns the call of case c on family fam, and its failure, carrying the ErrorInfo
// (domain, reason) when reason is set.
func failure(t *testing.T, c docCase, fam errs.Kind, domain, reason string) (classify.Call, error) {
	t.Helper()
	var ds []proto.Message
	if reason != "" {
		ds = append(ds, &errdetails.ErrorInfo{Reason: reason, Domain: domain})
	}
	if c.violations {
		ds = append(ds, &errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
			{Field: "name", Description: "required"},
		}})
	}
	call := classify.Call{Method: methodOf(fam), ContextErr: c.ctxErr}
	if c.snapshot {
		call.Resource.SnapshotID = "snap-1"
	}
	return call, faultlinetest.Error(c.code, "server message", ds...)
}

// checkKinds classifies every case with the ErrorInfo (domain, reason) on a call of family
// fam and compares the kind with want's; it reports the first difference.
func checkKinds(t *testing.T, fam errs.Kind, domain, reason string, want func(docCase) (errs.Kind, error)) {
	t.Helper()
	c := classify.New()
	for _, dc := range docCases() {
		k, err := want(dc)
		if err != nil {
			t.Fatalf("doc table: %v", err)
		}
		call, ferr := failure(t, dc, fam, domain, reason)
		if got := c.Classify(ferr, call).Kind(); got != k {
			t.Errorf("Classify(%v, reason %q, domain %q) on %s = %v, want %v (doc.go)",
				dc, reason, domain, call.Method, got, k)
			return
		}
	}
}

// TestDocFamilies checks that the methods the tests use belong to the families they stand for.
func TestDocFamilies(t *testing.T) {
	c := classify.New()
	for _, df := range docFamilies {
		if got := c.Family(df.method); got != df.family {
			t.Errorf("Family(%q) = %v, want %v", df.method, got, df.family)
		}
	}
}

// TestDocCodeTables checks every row of the code tables: every failure code, with and
// without field violations, snapshot id and an ended caller's context, takes the kind of
// exactly one row of its family's table.
func TestDocCodeTables(t *testing.T) {
	tabs := readDocTables(t)
	for _, df := range docFamilies {
		t.Run(df.header, func(t *testing.T) {
			checkKinds(t, df.family, "", "", tabs.codes[df.family].kind)
		})
	}
}

// TestDocReasonTable checks every row of the reason table on every family: a reason that
// picks a kind picks it on every code and in every case; one marked "code" leaves the kind
// to the code table. Under an untrusted domain no reason picks anything.
func TestDocReasonTable(t *testing.T) {
	tabs := readDocTables(t)
	for _, row := range tabs.reasons {
		for _, df := range docFamilies {
			t.Run(row.reason+"/"+df.header, func(t *testing.T) {
				byCode := tabs.codes[df.family].kind
				want := byCode
				if k := row.kinds[df.family]; k != 0 {
					want = func(docCase) (errs.Kind, error) { return k, nil }
				}
				checkKinds(t, df.family, classify.DefaultDomain, row.reason, want)
				checkKinds(t, df.family, "example.com", row.reason, byCode)
			})
		}
	}
}

// TestDocUnlistedReasons checks that trusted reasons the table does not list fall through to
// the code on every family, and that the table lists every reason the code knows.
func TestDocUnlistedReasons(t *testing.T) {
	tabs := readDocTables(t)
	var listed []string
	for _, row := range tabs.reasons {
		listed = append(listed, row.reason)
	}
	slices.Sort(listed)
	picking, transient := classify.KnownReasons()
	if !slices.Equal(listed, picking) {
		t.Errorf("reasons of the doc table = %q, want the reasons of the code %q", listed, picking)
	}
	if got := slices.Sorted(slices.Values(tabs.transient)); !slices.Equal(got, transient) {
		t.Errorf("transient reasons of the doc = %q, want those of the code %q", got, transient)
	}
	unlisted := []string{"CWSANDBOX_SOMETHING_NEW", "CWSANDBOX_INVALID_REQUEST", "CWSANDBOX_PLACEMENT_FAILED"}
	for _, reason := range unlisted {
		if slices.Contains(listed, reason) {
			t.Fatalf("%s is listed in the doc table; pick a reason that is not", reason)
		}
		for _, df := range docFamilies {
			t.Run(reason+"/"+df.header, func(t *testing.T) {
				checkKinds(t, df.family, classify.DefaultDomain, reason, tabs.codes[df.family].kind)
			})
		}
	}
}

// TestDocTransientReasons checks the transient set through package retry: on a discovery
// call, where the reasons of the table but CWSANDBOX_RUNNER_NOT_FOUND pick no kind, a
// failure with a code no policy field names is retried exactly when its trusted reason is
// listed as transient; under an untrusted domain it never is.
func TestDocTransientReasons(t *testing.T) {
	tabs := readDocTables(t)
	p := oneAttempt() // one attempt: a retryable failure stops as "attempts exhausted"
	p.TransientCodes = 0
	r, err := retry.New(p)
	if err != nil {
		t.Fatalf("retry.New: %v", err)
	}
	method := methodOf(errs.ErrDiscovery)
	call := classify.Call{Method: method}
	reasons := []string{"CWSANDBOX_SOMETHING_NEW"}
	for _, row := range tabs.reasons {
		if row.kinds[errs.ErrDiscovery] == 0 {
			reasons = append(reasons, row.reason)
		}
	}
	reasons = append(reasons, tabs.transient...)
	slices.Sort(reasons)
	for _, reason := range slices.Compact(reasons) {
		for _, domain := range []string{classify.DefaultDomain, "example.com"} {
			t.Run(reason+"/"+domain, func(t *testing.T) {
				want := retry.StopNotRetryable
				if domain == classify.DefaultDomain && slices.Contains(tabs.transient, reason) {
					want = retry.StopExhausted
				}
				st := faultlinetest.Status(codes.Internal, "server message", faultlinetest.ErrorInfo(domain, reason, nil))
				e := classify.New().Classify(st.Err(), call)
				if e.Kind() != errs.ErrDiscovery {
					t.Fatalf("Classify(INTERNAL, reason %q) on %s = %v, want %v",
						reason, method, e.Kind(), errs.ErrDiscovery)
				}
				err := r.Do(context.Background(), func(context.Context) error { return e })
				var stop *retry.Error
				if !errors.As(err, &stop) {
					t.Fatalf("Failed(INTERNAL, reason %q, domain %q) = nil, want a final error", reason, domain)
				}
				if stop.StopReason() != want {
					t.Errorf("Failed(INTERNAL, reason %q, domain %q).Cause() = %v, want %v",
						reason, domain, stop.StopReason(), want)
				}
			})
		}
	}
}

// baseKinds are the families' base kinds.
var baseKinds = map[errs.Kind]errs.Kind{
	errs.ErrSandbox:   errs.ErrSandbox,
	errs.ErrDiscovery: errs.ErrDiscovery,
	errs.ErrCWSandbox: errs.ErrCWSandbox,
}

// TestDocClientFailures checks the table of failures the client made: it lists what the code
// recognises, in order; each, without details, takes the family's base kind on every family;
// with a detail (a server's status in grpc-go's words) the code table decides.
func TestDocClientFailures(t *testing.T) {
	tabs := readDocTables(t)
	wantCodes, wantPrefixes := classify.LocalPrefixes()
	var gotCodes []codes.Code
	var gotPrefixes []string
	for _, r := range tabs.local {
		gotCodes, gotPrefixes = append(gotCodes, r.code), append(gotPrefixes, r.prefix)
	}
	for i := range wantPrefixes {
		wantPrefixes[i] = strings.TrimSpace(wantPrefixes[i])
	}
	if !slices.Equal(gotCodes, wantCodes) || !slices.Equal(gotPrefixes, wantPrefixes) {
		t.Errorf("client failures of the doc = %v %q, want those of the code %v %q", gotCodes, gotPrefixes, wantCodes, wantPrefixes)
	}
	c := classify.New()
	for _, r := range tabs.local {
		for _, df := range docFamilies {
			call := classify.Call{Method: df.method}
			msg := r.prefix + " x509: example"
			if got := c.Classify(faultlinetest.Error(r.code, msg), call).Kind(); got != baseKinds[df.family] {
				t.Errorf("Classify(%v %q) on %s = %v, want %v", r.code, msg, df.method, got, baseKinds[df.family])
			}
			want, err := tabs.codes[df.family].kind(docCase{code: r.code})
			if err != nil {
				t.Fatalf("doc table: %v", err)
			}
			withDetail := faultlinetest.Error(r.code, msg, &errdetails.ErrorInfo{Domain: "example.com", Reason: "SOMETHING"})
			if got := c.Classify(withDetail, call).Kind(); got != want {
				t.Errorf("Classify(%v %q, with an ErrorInfo) on %s = %v, want %v (the code table)", r.code, msg, df.method, got, want)
			}
		}
	}
}

// oneAttempt is the default policy with one attempt: no retry.
func oneAttempt() retry.Policy {
	p := retry.DefaultPolicy()
	p.MaxAttempts = 1
	return p
}
