package serviceconfig

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"google.golang.org/grpc/codes"
)

// MaxAttempts is the most attempts a retry policy makes, including the first: grpc-go's
// default cap on maxAttempts (gRFC A6, "Limits on Retries and Hedges"). A client raises
// grpc-go's cap only with the dial option grpc.WithMaxCallAttempts, which an interceptor
// cannot see; a larger maxAttempts is capped to 5 here, as grpc-go caps it by default.
const MaxAttempts = 5

// Config is the retry part of a service config.
type Config struct {
	// Methods holds the method configs by the names gRPC matches calls with:
	// "/pkg.Service/Method" for {service, method}, "/pkg.Service/" for {service}, "" for
	// the default (a name {} or with an empty service). A call takes the config of its exact
	// name, else of its service, else the default; a config without a retryPolicy (nil
	// Retry) means the call is not retried, whatever a less specific name says. Never nil.
	Methods map[string]Method

	// Throttling is retryThrottling, or nil without one. A config without methodConfig
	// keeps its retryThrottling only when it is valid: grpc-go does not check it then, and
	// never uses it (nothing is retried).
	Throttling *Throttling
}

// Method is what one methodConfig says about each of its names.
type Method struct {
	// Retry is the methodConfig's retryPolicy, or nil without one.
	Retry *RetryPolicy
}

// RetryPolicy is a retryPolicy (gRFC A6) as grpc-go accepts it.
type RetryPolicy struct {
	// MaxAttempts counts attempts, including the first: 2 to [MaxAttempts] (a larger
	// maxAttempts is capped to 5).
	MaxAttempts int

	// InitialBackoff and MaxBackoff are positive. Neither grpc-go nor this package requires
	// MaxBackoff >= InitialBackoff: the backoff before retry n is
	// min(InitialBackoff*BackoffMultiplier^(n-1), MaxBackoff), jittered.
	InitialBackoff, MaxBackoff time.Duration

	// BackoffMultiplier is positive; it may be below 1.
	BackoffMultiplier float64

	// RetryableStatusCodes are the codes listed, without repeats, in numeric order; never
	// empty. A JSON null in the list is code OK (0), as grpc-go decodes it.
	RetryableStatusCodes []codes.Code
}

// Throttling is retryThrottling (gRFC A6): a bucket of MaxTokens tokens (in (0, 1000]);
// every retryable failure takes one, every success gives TokenRatio back (> 0, with no
// upper bound in grpc-go); retries are made while more than MaxTokens/2 remain.
type Throttling struct {
	MaxTokens, TokenRatio float64
}

// Error is a service config that grpc-go would reject, or one with a hedgingPolicy.
type Error struct {
	// Path names the field, as "methodConfig[2].retryPolicy.initialBackoff",
	// "methodConfig[0].name[1]" or "retryThrottling.maxTokens"; it is "" only when the
	// document as a whole is wrong: empty, not JSON, or not a JSON object.
	Path string
	// Msg says what is wrong, in lower case: "got 1, want at least 2".
	Msg string
}

// Error returns "path: msg", or msg alone for the whole document.
func (e *Error) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// The types below mirror grpc-go's jsonSC, jsonMC, jsonName, jsonRetryPolicy,
// retryThrottlingPolicy and healthCheckConfig field for field (Go types and pointers alike),
// so that encoding/json decodes a config here exactly as it does for grpc-go: keys matched
// case-insensitively, a repeated key decoded into what the earlier one left, unknown keys
// ignored, the same type errors. The tags are the fields' names in gRFC A6 (which match the
// same keys): they name the fields in error paths.

type jsonSC struct {
	LoadBalancingPolicy *string          `json:"loadBalancingPolicy"`
	LoadBalancingConfig *json.RawMessage `json:"loadBalancingConfig"`
	MethodConfig        *[]jsonMC        `json:"methodConfig"`
	RetryThrottling     *jsonThrottling  `json:"retryThrottling"`
	HealthCheckConfig   *jsonHealthCheck `json:"healthCheckConfig"`
}

type jsonMC struct {
	Name                    *[]jsonName      `json:"name"`
	WaitForReady            *bool            `json:"waitForReady"`
	Timeout                 *duration        `json:"timeout"`
	MaxRequestMessageBytes  *int64           `json:"maxRequestMessageBytes"`
	MaxResponseMessageBytes *int64           `json:"maxResponseMessageBytes"`
	RetryPolicy             *jsonRetryPolicy `json:"retryPolicy"`

	// Not in grpc-go, which ignores it: refused here (a JSON null counts as absent).
	HedgingPolicy *json.RawMessage `json:"hedgingPolicy"`
}

type jsonName struct {
	Service string `json:"service"`
	Method  string `json:"method"`
}

type jsonRetryPolicy struct {
	MaxAttempts          int      `json:"maxAttempts"`
	InitialBackoff       duration `json:"initialBackoff"`
	MaxBackoff           duration `json:"maxBackoff"`
	BackoffMultiplier    float64  `json:"backoffMultiplier"`
	RetryableStatusCodes []code   `json:"retryableStatusCodes"`
}

type jsonThrottling struct {
	MaxTokens  float64 `json:"maxTokens"`
	TokenRatio float64 `json:"tokenRatio"`
}

type jsonHealthCheck struct {
	ServiceName string `json:"serviceName"`
}

// Parse reads a service config, the JSON string given to grpc.WithDefaultServiceConfig. It
// returns an [*Error] naming the field for everything grpc-go v1.85.0 rejects: an empty
// string; text that is not JSON or not an object; a value of the wrong JSON type for a field
// grpc-go decodes (anywhere in the document); a duration that is not a proto3 JSON duration
// string ("1.5s"); a status code that is neither an upper-case name nor a number from 0 to
// 16; a name with a method but no service, or a name given twice; a retryPolicy whose
// maxAttempts is below 2, whose initialBackoff, maxBackoff or backoffMultiplier is not
// positive, or whose retryableStatusCodes is empty; a retryThrottling whose maxTokens is
// not in (0, 1000] or whose tokenRatio is not positive. It also refuses a hedgingPolicy,
// which grpc-go ignores.
//
// What grpc-go ignores is ignored: unknown keys, a methodConfig without a name (its
// retryPolicy unchecked), and, without methodConfig, retryThrottling (see
// [Config.Throttling]).
func Parse(js string) (*Config, error) {
	if len(js) == 0 {
		return nil, &Error{Msg: "empty: want a JSON object"}
	}
	var sc jsonSC
	if err := json.Unmarshal([]byte(js), &sc); err != nil {
		return nil, decodeError([]byte(js), err)
	}
	cfg := &Config{Methods: map[string]Method{}}
	if sc.MethodConfig == nil {
		// grpc-go returns here, before it checks retryThrottling.
		if t := sc.RetryThrottling; t != nil && checkThrottling(t) == nil {
			cfg.Throttling = &Throttling{MaxTokens: t.MaxTokens, TokenRatio: t.TokenRatio}
		}
		return cfg, nil
	}
	for i, m := range *sc.MethodConfig {
		at := "methodConfig[" + strconv.Itoa(i) + "]"
		if m.HedgingPolicy != nil {
			return nil, &Error{Path: at + ".hedgingPolicy",
				Msg: "not supported: faultline retries by retryPolicy and does not hedge (grpc-go would ignore it)"}
		}
		if m.Name == nil {
			continue // grpc-go skips it before it looks at its retryPolicy
		}
		rp, err := retryPolicy(m.RetryPolicy, at+".retryPolicy")
		if err != nil {
			return nil, err
		}
		for j, n := range *m.Name {
			path := at + ".name[" + strconv.Itoa(j) + "]"
			name, err := n.name(path)
			if err != nil {
				return nil, err
			}
			if _, dup := cfg.Methods[name]; dup {
				return nil, &Error{Path: path, Msg: "duplicate name: " + describeName(name) + " is named earlier"}
			}
			cfg.Methods[name] = Method{Retry: rp}
		}
	}
	if t := sc.RetryThrottling; t != nil {
		if err := checkThrottling(t); err != nil {
			return nil, err
		}
		cfg.Throttling = &Throttling{MaxTokens: t.MaxTokens, TokenRatio: t.TokenRatio}
	}
	return cfg, nil
}

// name returns the name gRPC matches calls with (grpc-go's generatePath).
func (n jsonName) name(path string) (string, error) {
	switch {
	case n.Service == "" && n.Method != "":
		return "", &Error{Path: path, Msg: "a method (" + clip(n.Method) + ") without a service"}
	case n.Service == "":
		return "", nil
	}
	return "/" + n.Service + "/" + n.Method, nil
}

func describeName(name string) string {
	if name == "" {
		return "the default name (no service)"
	}
	return clip(name)
}

// retryPolicy checks a retryPolicy as grpc-go does (isValidRetryPolicy: every field
// required, in this order) and caps maxAttempts.
func retryPolicy(j *jsonRetryPolicy, at string) (*RetryPolicy, error) {
	if j == nil {
		return nil, nil
	}
	switch {
	case j.MaxAttempts < 2:
		return nil, &Error{Path: at + ".maxAttempts", Msg: got(j.MaxAttempts, j.MaxAttempts == 0) + ", want at least 2"}
	case j.InitialBackoff <= 0:
		return nil, &Error{Path: at + ".initialBackoff", Msg: got(time.Duration(j.InitialBackoff), j.InitialBackoff == 0) + ", want more than 0s"}
	case j.MaxBackoff <= 0:
		return nil, &Error{Path: at + ".maxBackoff", Msg: got(time.Duration(j.MaxBackoff), j.MaxBackoff == 0) + ", want more than 0s"}
	case !(j.BackoffMultiplier > 0):
		return nil, &Error{Path: at + ".backoffMultiplier", Msg: got(j.BackoffMultiplier, j.BackoffMultiplier == 0) + ", want more than 0"}
	case len(j.RetryableStatusCodes) == 0:
		return nil, &Error{Path: at + ".retryableStatusCodes", Msg: "missing or empty, want at least one code"}
	}
	rp := &RetryPolicy{
		MaxAttempts:       min(j.MaxAttempts, MaxAttempts),
		InitialBackoff:    time.Duration(j.InitialBackoff),
		MaxBackoff:        time.Duration(j.MaxBackoff),
		BackoffMultiplier: j.BackoffMultiplier,
	}
	for _, c := range j.RetryableStatusCodes {
		rp.RetryableStatusCodes = append(rp.RetryableStatusCodes, codes.Code(c))
	}
	slices.Sort(rp.RetryableStatusCodes)
	rp.RetryableStatusCodes = slices.Compact(rp.RetryableStatusCodes)
	return rp, nil
}

// checkThrottling checks retryThrottling as grpc-go does.
func checkThrottling(t *jsonThrottling) error {
	switch {
	case !(t.MaxTokens > 0 && t.MaxTokens <= 1000):
		return &Error{Path: "retryThrottling.maxTokens", Msg: got(t.MaxTokens, t.MaxTokens == 0) + ", want in (0, 1000]"}
	case !(t.TokenRatio > 0):
		return &Error{Path: "retryThrottling.tokenRatio", Msg: got(t.TokenRatio, t.TokenRatio == 0) + ", want more than 0"}
	}
	return nil
}

// got says what a required field holds: "missing or 0" for its zero value, which the JSON
// either gave or left out.
func got(v any, zero bool) string {
	if zero {
		return fmt.Sprintf("missing or %v", v)
	}
	return fmt.Sprintf("got %v", v)
}

// decodeError turns an error of json.Unmarshal on data into an *Error naming the field.
func decodeError(data []byte, err error) *Error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return &Error{Msg: fmt.Sprintf("not JSON: %v (at byte %d)", syn, syn.Offset)}
	}
	if e := locate(data, typeSC, ""); e != nil {
		return e
	}
	return &Error{Msg: clip(err.Error())} // not reached: locate finds every decoding error
}
