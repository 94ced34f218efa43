// Command explain decodes a failed RPC's AIP-193 details and says what faultline makes of
// them: the parsed ErrorInfo, RetryInfo and BadRequest, the kind, its ancestors, and
// whether the default policy retries it.
//
// Give it the grpc-status-details-bin value (base64, as a log or a proxy shows it), as an
// argument or on standard input:
//
//	go run ./examples/explain CAgSE3J1bm5lci...
//
// or a code and the details as grpcurl prints them (JSON objects with "@type"):
//
//	go run ./examples/explain -code Unavailable -message "runner is restarting" \
//	    '{"@type":"type.googleapis.com/google.rpc.RetryInfo","retryDelay":"2s"}'
//
// -method names the RPC ("/coreweave.sandbox.v1.SandboxService/GetSandbox"), which decides
// the family of kinds; -trusted sets the trusted ErrorInfo domains (comma-separated).
//
// The exit status is 0 when the input was a status and has been explained, including an OK
// status: OK is not a failure, so explain says so and classifies nothing. It is 2, with one
// line on standard error, for a bad flag, empty input, or input that is not a status (not
// base64, not a google.rpc.Status, JSON without -code, a detail that is not JSON with "@type").
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	_ "google.golang.org/genproto/googleapis/rpc/errdetails" // registers the detail types for -code input
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/faultline-go/faultline/classify"
	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/interceptor"
	"github.com/faultline-go/faultline/retry"
)

// Exit statuses.
const (
	exitExplained = 0 // the status was explained (an OK status included)
	exitBadInput  = 2 // a bad flag, empty input, or input that is not a status
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run is the command: it reads the arguments and standard input, writes the explanation to
// stdout and problems to stderr, and returns the exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	method := fs.String("method", "", "full RPC method name, e.g. /coreweave.sandbox.v1.SandboxService/GetSandbox")
	trusted := fs.String("trusted", classify.DefaultDomain, "trusted ErrorInfo domains, comma-separated")
	code := fs.String("code", "", "status code (name such as Unavailable, or number); the arguments are then JSON details")
	message := fs.String("message", "", "status message, with -code")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitExplained
		}
		return exitBadInput // the flag package has printed the error and the usage
	}
	st, err := readStatus(fs.Args(), stdin, *code, *message)
	if err != nil {
		fmt.Fprintln(stderr, "explain:", strings.ReplaceAll(err.Error(), "\n", " "))
		return exitBadInput
	}
	if st.Code() == codes.OK {
		explainOK(stdout, st)
		return exitExplained
	}
	domains := strings.Split(*trusted, ",")
	c := classify.New(classify.WithTrustedDomains(domains...))
	e := c.Classify(st.Err(), classify.Call{Method: *method})
	explain(stdout, *method, st, e, slices.Contains(domains, e.Domain()))
	return exitExplained
}

// readStatus builds the status from a base64 grpc-status-details-bin value, or from a code
// and JSON details.
func readStatus(args []string, stdin io.Reader, code, message string) (*status.Status, error) {
	if code != "" {
		c, err := parseCode(code)
		if err != nil {
			return nil, err
		}
		p := &spb.Status{Code: int32(c), Message: message}
		for i, js := range args {
			a := &anypb.Any{}
			if err := protojson.Unmarshal([]byte(js), a); err != nil {
				return nil, fmt.Errorf("detail %d is not a JSON detail with \"@type\": %w", i+1, err)
			}
			p.Details = append(p.Details, a)
		}
		return status.FromProto(p), nil
	}
	var value string
	switch len(args) {
	case 0:
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reading standard input: %w", err)
		}
		value = line
	case 1:
		value = args[0]
	default:
		return nil, errors.New("want one grpc-status-details-bin value")
	}
	value = strings.TrimSpace(value)
	switch {
	case value == "":
		return nil, errors.New("empty input: give a grpc-status-details-bin value (base64) as the argument or on standard input")
	case strings.HasPrefix(value, "{"):
		return nil, errors.New("input looks like JSON: give JSON details after -code CODE")
	}
	raw, err := base64.StdEncoding.DecodeString(value)
	if err != nil {
		if raw, err = base64.RawStdEncoding.DecodeString(value); err != nil {
			return nil, fmt.Errorf("not base64: %w", err)
		}
	}
	p := &spb.Status{}
	if err := proto.Unmarshal(raw, p); err != nil {
		return nil, fmt.Errorf("not a google.rpc.Status: %w", err)
	}
	if len(p.ProtoReflect().GetUnknown()) > 0 {
		// Random bytes often parse as fields Status does not have, and as code OK.
		return nil, errors.New("not a google.rpc.Status: it has fields a Status does not have")
	}
	return status.FromProto(p), nil
}

func parseCode(s string) (codes.Code, error) {
	var c codes.Code
	// codes.Code understands the JSON forms: "UNAVAILABLE" and 14.
	if err := c.UnmarshalJSON([]byte(`"` + strings.ToUpper(snake(s)) + `"`)); err == nil {
		return c, nil
	}
	if err := c.UnmarshalJSON([]byte(s)); err == nil {
		return c, nil
	}
	return 0, fmt.Errorf("unknown code %q", s)
}

// snake turns "ResourceExhausted" into "Resource_Exhausted"; other spellings pass through.
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if i > 0 && r >= 'A' && r <= 'Z' && s[i-1] >= 'a' && s[i-1] <= 'z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// explainOK says that an OK status is not a failure.
func explainOK(out io.Writer, st *status.Status) {
	fmt.Fprintf(out, "%-14s %s\n", "code:", st.Code())
	if st.Message() != "" {
		fmt.Fprintf(out, "%-14s %s\n", "message:", st.Message())
	}
	fmt.Fprintln(out, "An OK status is not a failure: there is nothing to classify or retry.")
}

func explain(out io.Writer, method string, st *status.Status, e *errs.Error, trusted bool) {
	line := func(label, value string) { fmt.Fprintf(out, "%-14s %s\n", label+":", value) }
	line("code", st.Code().String())
	line("message", st.Message())
	if e.Reason() != "" {
		line("reason", e.Reason())
		trust := "not trusted: the reason does not choose the kind"
		if trusted {
			trust = "trusted"
		}
		line("domain", fmt.Sprintf("%s (%s)", e.Domain(), trust))
		md := e.Metadata()
		keys := make([]string, 0, len(md))
		for k := range md {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			line("metadata", k+"="+md[k])
		}
	}
	if d, ok := e.RetryDelay(); ok {
		line("retry delay", d.String())
	}
	for _, v := range e.FieldViolations() {
		line("violation", v.Field+": "+v.Description)
	}
	for _, d := range e.OtherDetails() {
		line("other detail", string(d.ProtoReflect().Descriptor().FullName()))
	}
	line("kind", e.Kind().String()+lineage(e.Kind()))
	line("retried", retried(method, st, e))
	line("error", e.Error())
}

// lineage renders the ancestors of k: " < SandboxNotRunningError < SandboxError < ...".
func lineage(k errs.Kind) string {
	var b strings.Builder
	for ps := k.Parents(); len(ps) > 0; ps = ps[0].Parents() {
		names := make([]string, len(ps))
		for i, p := range ps {
			names[i] = p.String()
		}
		b.WriteString(" < " + strings.Join(names, " & "))
	}
	return b.String()
}

// retried says what the default interceptors would do with this failure of method: it
// hands the failure to a real interceptor and reads its decision off the hooks, without
// waiting (the call is cancelled as soon as a retry is scheduled). The request is taken to
// carry no idempotency key of its own.
func retried(method string, st *status.Status, e *errs.Error) string {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var scheduled *retry.RetryEvent
	hooks := retry.Hooks{OnRetry: func(_ context.Context, ev retry.RetryEvent) {
		scheduled = &ev
		cancel() // the decision is made: do not wait
	}}
	u := interceptor.Unary(interceptor.WithRetrier(retry.MustNew(retry.DefaultPolicy(), retry.WithBudget(nil), retry.WithHooks(hooks))))
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error {
		return st.Err()
	}
	if method == "" {
		method = "/coreweave.sandbox.v1.SandboxService/GetSandbox"
	}
	err := u(ctx, method, nil, nil, nil, invoker)
	if scheduled != nil {
		if hint, _ := e.RetryDelay(); scheduled.FromHint {
			return fmt.Sprintf("yes, after the server's RetryInfo of %v (plus up to 10%%)", hint)
		}
		p := retry.DefaultPolicy()
		return fmt.Sprintf("yes, after the default backoff (%v ±%.0f%% before the first retry)", p.InitialBackoff, p.Jitter*100)
	}
	var re *retry.Error
	if errors.As(err, &re) {
		return "no: " + re.StopReason().String()
	}
	return "no"
}
