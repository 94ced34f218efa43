package serviceconfig_test

import (
	"encoding/json"
	"errors"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/grpc/codes"
	gsc "google.golang.org/grpc/serviceconfig"

	"github.com/faultline-go/faultline/internal/serviceconfig"
)

const (
	sandbox   = "coreweave.sandbox.v1.SandboxService"
	discovery = "coreweave.sandbox.v1.DiscoveryService"
)

// rp is a retryPolicy's JSON.
func rp(maxAttempts int, initial, maxBackoff string, mult float64, codes ...string) string {
	b, _ := json.Marshal(map[string]any{"maxAttempts": maxAttempts, "initialBackoff": initial,
		"maxBackoff": maxBackoff, "backoffMultiplier": mult, "retryableStatusCodes": codes})
	return string(b)
}

// defaultWith is a config whose default name has the retryPolicy policy.
func defaultWith(policy string) string {
	return `{"methodConfig": [{"name": [{}], "retryPolicy": ` + policy + `}]}`
}

// policy is the parse result of rp.
func policy(maxAttempts int, initial, maxBackoff time.Duration, mult float64, cs ...codes.Code) *serviceconfig.RetryPolicy {
	return &serviceconfig.RetryPolicy{MaxAttempts: maxAttempts, InitialBackoff: initial, MaxBackoff: maxBackoff,
		BackoffMultiplier: mult, RetryableStatusCodes: cs}
}

var unavailable = rp(3, "0.1s", "1s", 2, "UNAVAILABLE")

func methods(m map[string]serviceconfig.Method) *serviceconfig.Config {
	return &serviceconfig.Config{Methods: m}
}

// validConfigs are configs grpc-go accepts, with what Parse makes of them.
var validConfigs = []struct {
	name string
	js   string
	want *serviceconfig.Config
}{
	{"null", `null`, methods(map[string]serviceconfig.Method{})},
	{"empty object", `{}`, methods(map[string]serviceconfig.Method{})},
	{"methodConfig null", `{"methodConfig": null}`, methods(map[string]serviceconfig.Method{})},
	{"methodConfig empty", `{"methodConfig": []}`, methods(map[string]serviceconfig.Method{})},
	{"default name {}", defaultWith(unavailable), methods(map[string]serviceconfig.Method{
		"": {Retry: policy(3, 100*time.Millisecond, time.Second, 2, codes.Unavailable)}})},
	{"default name with empty strings", `{"methodConfig": [{"name": [{"service": "", "method": ""}], "retryPolicy": ` + unavailable + `}]}`,
		methods(map[string]serviceconfig.Method{"": {Retry: policy(3, 100*time.Millisecond, time.Second, 2, codes.Unavailable)}})},
	{"method, service and default", `{"methodConfig": [
		{"name": [{"service": "` + sandbox + `", "method": "GetSandbox"}], "retryPolicy": ` + rp(2, "1s", "1s", 1, "ABORTED") + `},
		{"name": [{"service": "` + sandbox + `"}, {"service": "` + discovery + `", "method": ""}], "retryPolicy": ` + unavailable + `},
		{"name": [{}]}]}`, methods(map[string]serviceconfig.Method{
		"/" + sandbox + "/GetSandbox": {Retry: policy(2, time.Second, time.Second, 1, codes.Aborted)},
		"/" + sandbox + "/":           {Retry: policy(3, 100*time.Millisecond, time.Second, 2, codes.Unavailable)},
		"/" + discovery + "/":         {Retry: policy(3, 100*time.Millisecond, time.Second, 2, codes.Unavailable)},
		"":                            {},
	})},
	{"empty name list: the retryPolicy is still checked, and names nothing", `{"methodConfig": [{"name": [], "retryPolicy": ` + unavailable + `}]}`,
		methods(map[string]serviceconfig.Method{})},
	{"no name: skipped, retryPolicy unchecked", `{"methodConfig": [{"retryPolicy": {"maxAttempts": 0}}]}`,
		methods(map[string]serviceconfig.Method{})},
	{"names with slashes are names", `{"methodConfig": [{"name": [{"service": "a/b", "method": "c/d"}], "retryPolicy": ` + unavailable + `}]}`,
		methods(map[string]serviceconfig.Method{"/a/b/c/d": {Retry: policy(3, 100*time.Millisecond, time.Second, 2, codes.Unavailable)}})},
	{"maxAttempts 2", defaultWith(rp(2, "1s", "1s", 1, "UNAVAILABLE")), methods(map[string]serviceconfig.Method{
		"": {Retry: policy(2, time.Second, time.Second, 1, codes.Unavailable)}})},
	{"maxAttempts 5", defaultWith(rp(5, "1s", "1s", 1, "UNAVAILABLE")), methods(map[string]serviceconfig.Method{
		"": {Retry: policy(5, time.Second, time.Second, 1, codes.Unavailable)}})},
	{"maxAttempts 6 capped to 5", defaultWith(rp(6, "1s", "1s", 1, "UNAVAILABLE")), methods(map[string]serviceconfig.Method{
		"": {Retry: policy(5, time.Second, time.Second, 1, codes.Unavailable)}})},
	{"maxAttempts max int capped to 5", defaultWith(rp(math.MaxInt64, "1s", "1s", 1, "UNAVAILABLE")), methods(map[string]serviceconfig.Method{
		"": {Retry: policy(5, time.Second, time.Second, 1, codes.Unavailable)}})},
	{"smallest backoff, max below initial, multiplier below 1", defaultWith(rp(3, "0.000000002s", "0.000000001s", 0.001, "UNAVAILABLE")),
		methods(map[string]serviceconfig.Method{"": {Retry: policy(3, 2, 1, 0.001, codes.Unavailable)}})},
	{"duration forms grpc-go takes", defaultWith(rp(3, ".5s", "+1.s", 1e300, "UNAVAILABLE")),
		methods(map[string]serviceconfig.Method{"": {Retry: policy(3, 500*time.Millisecond, time.Second, 1e300, codes.Unavailable)}})},
	{"a sign in the fraction, two minus signs", defaultWith(rp(3, "1.-5s", "--2s", 2, "UNAVAILABLE")),
		methods(map[string]serviceconfig.Method{"": {Retry: policy(3, 950*time.Millisecond, 2*time.Second, 2, codes.Unavailable)}})},
	{"the longest protobuf duration, clamped", defaultWith(rp(3, "315576000000s", "315576000000.999999999s", 2, "UNAVAILABLE")),
		methods(map[string]serviceconfig.Method{"": {Retry: policy(3, math.MaxInt64, math.MaxInt64, 2, codes.Unavailable)}})},
	{"codes as numbers, repeated, null is OK", `{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2, "initialBackoff": "1s",
		"maxBackoff": "1s", "backoffMultiplier": 1, "retryableStatusCodes": [14, "UNAVAILABLE", 16, null, 0, "DATA_LOSS"]}}]}`,
		methods(map[string]serviceconfig.Method{"": {Retry: policy(2, time.Second, time.Second, 1,
			codes.OK, codes.Unavailable, codes.DataLoss, codes.Unauthenticated)}})},
	{"keys in any case, unknown keys", `{"METHODCONFIG": [{"Name": [{"SERVICE": "s"}], "retrypolicy": {"MaxAttempts": 2,
		"InitialBackoff": "1s", "MAXBACKOFF": "2s", "backoffmultiplier": 3, "RetryableStatusCodes": ["ABORTED"], "x": 1}, "y": {}}], "z": [1]}`,
		methods(map[string]serviceconfig.Method{"/s/": {Retry: policy(2, time.Second, 2*time.Second, 3, codes.Aborted)}})},
	{"a repeated key decodes into what the first left", `{"methodConfig": [{"name": [{"service": "s"}], "retryPolicy": {"maxAttempts": 2,
		"initialBackoff": "1s", "maxBackoff": "1s", "backoffMultiplier": 1, "retryableStatusCodes": ["ABORTED"]},
		"retryPolicy": {"maxAttempts": 4}}]}`,
		methods(map[string]serviceconfig.Method{"/s/": {Retry: policy(4, time.Second, time.Second, 1, codes.Aborted)}})},
	{"grpc-go's own fields", `{"loadBalancingPolicy": "round_robin", "loadBalancingConfig": [{"pick_first": {}}],
		"healthCheckConfig": {"serviceName": "h"}, "methodConfig": [{"name": [{"service": "s", "method": "m"}], "waitForReady": true,
		"timeout": "-3s", "maxRequestMessageBytes": 9223372036854775807, "maxResponseMessageBytes": -1}]}`,
		methods(map[string]serviceconfig.Method{"/s/m": {}})},
	{"hedgingPolicy null is absent", `{"methodConfig": [{"name": [{}], "hedgingPolicy": null}]}`,
		methods(map[string]serviceconfig.Method{"": {}})},
	{"throttling", `{"methodConfig": [], "retryThrottling": {"maxTokens": 1000, "tokenRatio": 5}}`,
		&serviceconfig.Config{Methods: map[string]serviceconfig.Method{}, Throttling: &serviceconfig.Throttling{MaxTokens: 1000, TokenRatio: 5}}},
	{"throttling, smallest numbers", `{"methodConfig": [], "retryThrottling": {"maxTokens": 1e-300, "tokenRatio": 1e-300}}`,
		&serviceconfig.Config{Methods: map[string]serviceconfig.Method{}, Throttling: &serviceconfig.Throttling{MaxTokens: 1e-300, TokenRatio: 1e-300}}},
	{"throttling without methodConfig", `{"retryThrottling": {"maxTokens": 10, "tokenRatio": 0.1}}`,
		&serviceconfig.Config{Methods: map[string]serviceconfig.Method{}, Throttling: &serviceconfig.Throttling{MaxTokens: 10, TokenRatio: 0.1}}},
	{"invalid throttling without methodConfig: unchecked and unused by grpc-go", `{"retryThrottling": {"maxTokens": 0}}`,
		methods(map[string]serviceconfig.Method{})},
}

// invalidConfigs are configs grpc-go rejects (or that hold a hedgingPolicy), with the path
// the error names and a part of its message.
var invalidConfigs = []struct {
	name, js, path, msg string
}{
	{"empty", ``, "", "empty"},
	{"blank", ` `, "", "not JSON"},
	{"not JSON", `{"methodConfig": [}`, "", "not JSON"},
	{"trailing garbage", `{} x`, "", "not JSON"},
	{"a number", `5`, "", "want an object"},
	{"an array", `[]`, "", "want an object"},
	{"methodConfig a number", `{"methodConfig": 5}`, "methodConfig", "want an array"},
	{"methodConfig entry a string", `{"methodConfig": [{}, "x"]}`, "methodConfig[1]", "want an object"},
	{"name an object", `{"methodConfig": [{"name": {}}]}`, "methodConfig[0].name", "want an array"},
	{"service a number", `{"methodConfig": [{"name": [{"service": 1}]}]}`, "methodConfig[0].name[0].service", "want a string"},
	{"method without service", `{"methodConfig": [{"name": [{}, {"method": "M"}]}]}`, "methodConfig[0].name[1]", "without a service"},
	{"duplicate name across methodConfigs", `{"methodConfig": [{"name": [{"service": "s"}]}, {"name": [{"service": "s", "method": ""}]}]}`,
		"methodConfig[1].name[0]", "duplicate name: /s/"},
	{"duplicate default name", `{"methodConfig": [{"name": [{}, {"service": ""}]}]}`, "methodConfig[0].name[1]", "duplicate name: the default"},
	{"maxAttempts 1", defaultWith(rp(1, "1s", "1s", 1, "UNAVAILABLE")), "methodConfig[0].retryPolicy.maxAttempts", "got 1"},
	{"maxAttempts missing", `{"methodConfig": [{"name": [{}], "retryPolicy": {}}]}`, "methodConfig[0].retryPolicy.maxAttempts", "missing or 0"},
	{"maxAttempts negative", defaultWith(rp(-5, "1s", "1s", 1, "UNAVAILABLE")), "methodConfig[0].retryPolicy.maxAttempts", "got -5"},
	{"maxAttempts a fraction", `{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2.5}}]}`, "methodConfig[0].retryPolicy.maxAttempts", "want an integer"},
	{"maxAttempts a string", `{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": "3"}}]}`, "methodConfig[0].retryPolicy.maxAttempts", "got string"},
	{"maxAttempts too large", `{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 9223372036854775808}}]}`, "methodConfig[0].retryPolicy.maxAttempts", "want an integer"},
	{"initialBackoff 0s", defaultWith(rp(2, "0s", "1s", 1, "UNAVAILABLE")), "methodConfig[0].retryPolicy.initialBackoff", "missing or 0s, want more than 0s"},
	{"initialBackoff negative", defaultWith(rp(2, "-1s", "1s", 1, "UNAVAILABLE")), "methodConfig[0].retryPolicy.initialBackoff", "got -1s"},
	{"initialBackoff without unit", defaultWith(rp(2, "1", "1s", 1, "UNAVAILABLE")), "methodConfig[0].retryPolicy.initialBackoff", `no "s"`},
	{"initialBackoff in ms", defaultWith(rp(2, "100ms", "1s", 1, "UNAVAILABLE")), "methodConfig[0].retryPolicy.initialBackoff", "whole number"},
	{"initialBackoff two points", defaultWith(rp(2, "1.2.3s", "1s", 1, "UNAVAILABLE")), "methodConfig[0].retryPolicy.initialBackoff", "decimal point"},
	{"initialBackoff ten fraction digits", defaultWith(rp(2, "0.0000000001s", "1s", 1, "UNAVAILABLE")), "methodConfig[0].retryPolicy.initialBackoff", "9 digits"},
	{"initialBackoff beyond protobuf", defaultWith(rp(2, "315576000001s", "1s", 1, "UNAVAILABLE")), "methodConfig[0].retryPolicy.initialBackoff", "315576000000"},
	{"initialBackoff no digits", defaultWith(rp(2, ".s", "1s", 1, "UNAVAILABLE")), "methodConfig[0].retryPolicy.initialBackoff", "no digits"},
	{"initialBackoff a number", `{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2, "initialBackoff": 1}}]}`,
		"methodConfig[0].retryPolicy.initialBackoff", "got 1, want a duration"},
	{"initialBackoff null", `{"methodConfig": [{"name": [{}], "retryPolicy": {"initialBackoff": null}}]}`,
		"methodConfig[0].retryPolicy.initialBackoff", `no "s"`},
	{"maxBackoff 0s", defaultWith(rp(2, "1s", "0s", 1, "UNAVAILABLE")), "methodConfig[0].retryPolicy.maxBackoff", "want more than 0s"},
	{"maxBackoff missing", `{"methodConfig": [{"name": [{}], "retryPolicy": {"maxAttempts": 2, "initialBackoff": "1s"}}]}`,
		"methodConfig[0].retryPolicy.maxBackoff", "missing or 0s"},
	{"backoffMultiplier 0", defaultWith(rp(2, "1s", "1s", 0, "UNAVAILABLE")), "methodConfig[0].retryPolicy.backoffMultiplier", "want more than 0"},
	{"backoffMultiplier negative", defaultWith(rp(2, "1s", "1s", -2, "UNAVAILABLE")), "methodConfig[0].retryPolicy.backoffMultiplier", "got -2"},
	{"backoffMultiplier beyond float64", `{"methodConfig": [{"name": [{}], "retryPolicy": {"backoffMultiplier": 1e999}}]}`,
		"methodConfig[0].retryPolicy.backoffMultiplier", "want a number"},
	{"retryableStatusCodes empty", defaultWith(rp(2, "1s", "1s", 1)), "methodConfig[0].retryPolicy.retryableStatusCodes", "missing or empty, want at least one code"},
	{"retryableStatusCodes a string", `{"methodConfig": [{"name": [{}], "retryPolicy": {"retryableStatusCodes": "UNAVAILABLE"}}]}`,
		"methodConfig[0].retryPolicy.retryableStatusCodes", "want an array"},
	{"code in lower case", defaultWith(rp(2, "1s", "1s", 1, "UNAVAILABLE", "unavailable")), "methodConfig[0].retryPolicy.retryableStatusCodes[1]", `got "unavailable"`},
	{"code CANCELED", defaultWith(rp(2, "1s", "1s", 1, "CANCELED")), "methodConfig[0].retryPolicy.retryableStatusCodes[0]", "upper case"},
	{"code 17", `{"methodConfig": [{"name": [{}], "retryPolicy": {"retryableStatusCodes": [17]}}]}`, "methodConfig[0].retryPolicy.retryableStatusCodes[0]", "got 17"},
	{"code -1", `{"methodConfig": [{"name": [{}], "retryPolicy": {"retryableStatusCodes": [14, -1]}}]}`, "methodConfig[0].retryPolicy.retryableStatusCodes[1]", "got -1"},
	{"code 1.5", `{"methodConfig": [{"name": [{}], "retryPolicy": {"retryableStatusCodes": [1.5]}}]}`, "methodConfig[0].retryPolicy.retryableStatusCodes[0]", "got 1.5"},
	{"the first error of a later methodConfig", `{"methodConfig": [{"name": [{}], "retryPolicy": ` + unavailable + `}, {"name": [{"service": "s"}], "retryPolicy": ` +
		rp(3, "1s", "1s", 1) + `}]}`, "methodConfig[1].retryPolicy.retryableStatusCodes", "at least one code"},
	{"an error in a methodConfig without a name still counts for JSON types", `{"methodConfig": [{"retryPolicy": {"maxAttempts": true}}]}`,
		"methodConfig[0].retryPolicy.maxAttempts", "got bool"},
	{"an error hidden by a repeated key", `{"methodConfig": [{"name": [{}], "retryPolicy": {"initialBackoff": "x"}, "RetryPolicy": {"initialBackoff": "1s"}}]}`,
		"methodConfig[0].retryPolicy.initialBackoff", `got "x"`},
	{"hedgingPolicy", `{"methodConfig": [{"name": [{}], "hedgingPolicy": {"maxAttempts": 3, "hedgingDelay": "0.5s", "nonFatalStatusCodes": ["UNAVAILABLE"]}}]}`,
		"methodConfig[0].hedgingPolicy", "not supported"},
	{"hedgingPolicy in any case, without a name", `{"methodConfig": [{"HEDGINGPOLICY": {}}]}`, "methodConfig[0].hedgingPolicy", "not supported"},
	{"timeout malformed", `{"methodConfig": [{"name": [{}], "timeout": "1m"}]}`, "methodConfig[0].timeout", `no "s"`},
	{"waitForReady a string", `{"methodConfig": [{"waitForReady": "yes"}]}`, "methodConfig[0].waitForReady", "want true or false"},
	{"maxRequestMessageBytes a fraction", `{"methodConfig": [{"maxRequestMessageBytes": 1.5}]}`, "methodConfig[0].maxRequestMessageBytes", "want an integer"},
	{"maxResponseMessageBytes a string", `{"methodConfig": [{"maxResponseMessageBytes": "1"}]}`, "methodConfig[0].maxResponseMessageBytes", "want an integer"},
	{"loadBalancingPolicy a number", `{"loadBalancingPolicy": 1}`, "loadBalancingPolicy", "want a string"},
	{"healthCheckConfig serviceName a number", `{"healthCheckConfig": {"serviceName": 1}}`, "healthCheckConfig.serviceName", "want a string"},
	{"retryThrottling a number", `{"retryThrottling": 1}`, "retryThrottling", "want an object"},
	{"maxTokens 0", `{"methodConfig": [], "retryThrottling": {"maxTokens": 0, "tokenRatio": 0.1}}`, "retryThrottling.maxTokens", "missing or 0"},
	{"maxTokens above 1000", `{"methodConfig": [], "retryThrottling": {"maxTokens": 1000.001, "tokenRatio": 0.1}}`, "retryThrottling.maxTokens", "(0, 1000]"},
	{"maxTokens negative", `{"methodConfig": [], "retryThrottling": {"maxTokens": -1, "tokenRatio": 0.1}}`, "retryThrottling.maxTokens", "got -1"},
	{"tokenRatio 0", `{"methodConfig": [], "retryThrottling": {"maxTokens": 10, "tokenRatio": 0}}`, "retryThrottling.tokenRatio", "want more than 0"},
	{"tokenRatio missing", `{"methodConfig": [], "retryThrottling": {"maxTokens": 10}}`, "retryThrottling.tokenRatio", "missing or 0"},
	{"tokenRatio a string", `{"retryThrottling": {"tokenRatio": "0.1"}}`, "retryThrottling.tokenRatio", "want a number"},
}

func TestParse(t *testing.T) {
	for _, tt := range validConfigs {
		t.Run(tt.name, func(t *testing.T) {
			got, err := serviceconfig.Parse(tt.js)
			if err != nil {
				t.Fatalf("Parse(%s) = %v, want no error", tt.js, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Parse(%s) mismatch (-want +got):\n%s", tt.js, diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range invalidConfigs {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := serviceconfig.Parse(tt.js)
			var e *serviceconfig.Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%s) = %v, %v; want an *Error", tt.js, cfg, err)
			}
			if cfg != nil {
				t.Errorf("Parse(%s) returned a config with its error", tt.js)
			}
			if e.Path != tt.path || !strings.Contains(e.Msg, tt.msg) {
				t.Errorf("Parse(%s) = path %q, msg %q; want path %q, a msg with %q", tt.js, e.Path, e.Msg, tt.path, tt.msg)
			}
			checkError(t, tt.js, e)
		})
	}
}

// pathSyntax is every path an *Error may name.
var pathSyntax = regexp.MustCompile(`^(loadBalancingPolicy|loadBalancingConfig|healthCheckConfig(\.serviceName)?|` +
	`retryThrottling(\.(maxTokens|tokenRatio))?|methodConfig(\[\d+\](\.(name(\[\d+\](\.(service|method))?)?|waitForReady|timeout|` +
	`maxRequestMessageBytes|maxResponseMessageBytes|hedgingPolicy|retryPolicy(\.(maxAttempts|initialBackoff|maxBackoff|` +
	`backoffMultiplier|retryableStatusCodes(\[\d+\])?))?))?)?)$`)

// checkError checks what every error of Parse(js) must be: a path of the config's fields,
// empty only when js is not a JSON object; "path: msg" as its text, on one short line.
func checkError(t *testing.T, js string, e *serviceconfig.Error) {
	t.Helper()
	object := json.Valid([]byte(js)) && strings.HasPrefix(strings.TrimLeft(js, " \t\r\n"), "{")
	switch {
	case e.Path == "" && object:
		t.Errorf("Parse(%q) = %q: a JSON object's error names no field", js, e)
	case e.Path != "" && !pathSyntax.MatchString(e.Path):
		t.Errorf("Parse(%q) = %q: path %q is not a field path", js, e, e.Path)
	case e.Path != "" && e.Error() != e.Path+": "+e.Msg, e.Path == "" && e.Error() != e.Msg:
		t.Errorf("Parse(%q).Error() = %q, want path: msg", js, e)
	case e.Msg == "" || len(e.Error()) > 400 || strings.ContainsAny(e.Error(), "\n\r") || !utf8.ValidString(e.Error()):
		t.Errorf("Parse(%q).Error() = %q, want one short line of text", js, e)
	}
}

// TestParseAgreesWithGRPC runs every config of the tables and of testdata/configs through
// grpc-go's own parser too: both accept it or both reject it (but for a hedgingPolicy, which
// only Parse rejects, and a loadBalancingConfig, which only grpc-go checks), and what they
// accept they read alike.
func TestParseAgreesWithGRPC(t *testing.T) {
	grpcParse := grpcParser(t)
	var all []string
	for _, tt := range validConfigs {
		all = append(all, tt.js)
	}
	for _, tt := range invalidConfigs {
		all = append(all, tt.js)
	}
	for _, js := range configs(t) {
		all = append(all, js)
	}
	for _, js := range all {
		agree(t, grpcParse, js)
	}
}

// agree checks Parse(js) against grpc-go's parse of js.
func agree(t *testing.T, grpcParse func(string) *gsc.ParseResult, js string) {
	t.Helper()
	cfg, err := serviceconfig.Parse(js)
	pr := grpcParse(js)
	var e *serviceconfig.Error
	switch {
	case err != nil && !errors.As(err, &e):
		t.Fatalf("Parse(%q) = %v (%T), want an *Error", js, err, err)
	case err != nil && pr.Err == nil && !strings.HasSuffix(e.Path, ".hedgingPolicy"):
		t.Fatalf("Parse(%q) = %v; grpc-go accepts it", js, err)
	case err == nil && pr.Err != nil && !hasLBConfig(js):
		t.Fatalf("Parse(%q) accepts what grpc-go rejects: %v", js, pr.Err)
	case err != nil || pr.Err != nil:
		return
	}
	theirs := grpcMethods(pr)
	if len(theirs) != len(cfg.Methods) {
		t.Fatalf("Parse(%q) has %d names, grpc-go %d", js, len(cfg.Methods), len(theirs))
	}
	for name, want := range theirs {
		m, ok := cfg.Methods[name]
		if !ok {
			t.Fatalf("Parse(%q) lacks name %q", js, name)
		}
		if diff := cmp.Diff(want, m.Retry); diff != "" {
			t.Fatalf("Parse(%q)[%q] differs from grpc-go's reading (-grpc-go +Parse):\n%s", js, name, diff)
		}
	}
}

// FuzzParse checks that Parse never panics, that every error names its field (or, for a
// document that is not a JSON object, the document) on one short line, and that Parse and
// grpc-go's own parser accept and read the same configs (but for hedgingPolicy and
// loadBalancingConfig, see TestParseAgreesWithGRPC). The seeds are the tables above and the
// configs of the differential test (testdata/configs).
func FuzzParse(f *testing.F) {
	for _, tt := range validConfigs {
		f.Add(tt.js)
	}
	for _, tt := range invalidConfigs {
		f.Add(tt.js)
	}
	for _, js := range configs(f) {
		f.Add(js)
	}
	grpcParse := grpcParser(f)
	f.Fuzz(func(t *testing.T, js string) {
		_, err := serviceconfig.Parse(js)
		if err != nil {
			var e *serviceconfig.Error
			if !errors.As(err, &e) {
				t.Fatalf("Parse(%q) = %v (%T), want an *Error", js, err, err)
			}
			checkError(t, js, e)
		}
		agree(t, grpcParse, js)
	})
}
