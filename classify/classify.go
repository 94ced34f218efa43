package classify

import (
	"errors"
	"maps"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/details"
	"github.com/faultline-go/faultline/internal/sandboxapi"
	"github.com/faultline-go/faultline/internal/seam"
)

// DefaultDomain is the ErrorInfo domain trusted by default.
const DefaultDomain = sandboxapi.Domain

// Call is what a failed call was about: its full method name ("/pkg.Service/Method"), the
// resources it named, and how the caller's context stood when the failure came back. Empty
// fields are unknown.
type Call struct {
	Method string

	// Resource is what the call named, as the classified error reports it. Its Operation is
	// ignored: the error's operation is the method's name.
	Resource errs.Resource

	// ContextErr is the caller's context error (context.Canceled or
	// context.DeadlineExceeded) when the call's context had already ended as the failure
	// came back, nil while it was alive (package interceptor also sets context.Canceled when
	// the caller closed the connection). It makes the failure the caller's doing: a CANCELLED
	// is then the family's base kind rather than SandboxNotRunningError, and errors.Is(err,
	// ContextErr) holds on the classified error.
	ContextErr error
}

// family is the branch of the taxonomy a service's errors fall in.
type family uint8

const (
	// familyGeneric: errors are CWSandboxError and its generic children. The family of
	// services the classifier does not know.
	familyGeneric family = iota
	// familySandbox: errors are SandboxError and its children. The family of
	// coreweave.sandbox.v1.SandboxService, and of calls without a method.
	familySandbox
	// familyDiscovery: errors are DiscoveryError and its children. The family of
	// coreweave.sandbox.v1.DiscoveryService.
	familyDiscovery
)

// An Option configures a [Classifier]. The last option for a setting wins, except
// [WithRule] and [WithService], which add entries.
type Option interface {
	apply(*Classifier)
}

type optionFunc func(*Classifier)

func (f optionFunc) apply(c *Classifier) { f(c) }

// WithTrustedDomains sets the ErrorInfo domains whose reasons may choose the kind, matched
// exactly (case-sensitive). Default: [DefaultDomain] only. With no domains, no reason
// chooses a kind except through [WithRule].
func WithTrustedDomains(domains ...string) Option {
	set := make(map[string]bool, len(domains))
	for _, d := range domains {
		set[d] = true
	}
	return optionFunc(func(c *Classifier) { c.trusted = set })
}

// WithRule maps an ErrorInfo (domain, reason) to a kind, ahead of the built-in reasons. The
// rule applies to that exact domain whether or not it is trusted: adding it is trusting it.
// An invalid kind removes the rule.
func WithRule(domain, reason string, kind errs.Kind) Option {
	return optionFunc(func(c *Classifier) {
		if c.rules == nil {
			c.rules = map[ruleKey]errs.Kind{}
		}
		if kind.Valid() {
			c.rules[ruleKey{domain, reason}] = kind
		} else {
			delete(c.rules, ruleKey{domain, reason})
		}
	})
}

// WithService classifies the errors of a service ("pkg.Service", or "/pkg.Service/" as the
// interceptor's options name services: the slashes are dropped) as those of a sandbox API
// service: base is the family's base kind, [errs.ErrSandbox] for the kinds of
// coreweave.sandbox.v1.SandboxService (a gateway that serves it under another name),
// [errs.ErrDiscovery] for those of coreweave.sandbox.v1.DiscoveryService, and
// [errs.ErrCWSandbox] (or any other kind) for the generic kinds of a service the
// classifier does not know. Defaults: the two sandbox API services in their families,
// every other service generic.
func WithService(service string, base errs.Kind) Option {
	service = strings.Trim(service, "/")
	f := familyGeneric
	switch base {
	case errs.ErrSandbox:
		f = familySandbox
	case errs.ErrDiscovery:
		f = familyDiscovery
	}
	return optionFunc(func(c *Classifier) {
		if !c.ownServices { // the default table is shared by every classifier
			c.services, c.ownServices = maps.Clone(c.services), true
		}
		c.services[service] = f
	})
}

type ruleKey struct{ domain, reason string }

// Classifier turns failed calls into [*errs.Error]s. Build one with [New]; it is immutable
// and safe for concurrent use.
type Classifier struct {
	trusted     map[string]bool
	rules       map[ruleKey]errs.Kind
	services    map[string]family
	ownServices bool
}

var defaultServices = map[string]family{
	sandboxapi.SandboxService:   familySandbox,
	sandboxapi.DiscoveryService: familyDiscovery,
}

var defaultClassifier = New()

// New returns a classifier with the default rules, changed by opts.
func New(opts ...Option) *Classifier {
	c := &Classifier{
		trusted:  map[string]bool{DefaultDomain: true},
		services: defaultServices,
	}
	for _, o := range opts {
		if o != nil { // a nil Option sets nothing
			o.apply(c)
		}
	}
	return c
}

// Classify classifies err with the default classifier and no call context.
func Classify(err error) *errs.Error { return defaultClassifier.Classify(err, Call{}) }

// Classify returns the *errs.Error for err, a failed call described by call:
//   - nil for a nil err;
//   - the *errs.Error inside err, unchanged, when err already holds one (errors.As);
//   - for an error with a gRPC status (status.FromError), an error of the kind the rules
//     choose, carrying the parsed details and the unmodified status, and unwrapping to err
//     (a failure grpc-go made on the client and would make again, listed in the package
//     documentation, takes the family's base kind whatever its code);
//   - for any other error, the family's base kind with code Unknown, unwrapping to err.
//
// When call.ContextErr is set, errors.Is(result, call.ContextErr) holds.
func (c *Classifier) Classify(err error, call Call) *errs.Error {
	if err == nil {
		return nil
	}
	if done := classified(err); done != nil {
		return done
	}
	fam := c.family(call.Method)
	res := call.Resource
	res.Operation = operation(call.Method)
	facts := seam.Facts{ContextErr: call.ContextErr}
	st, ok := status.FromError(err)
	if !ok {
		return newError(baseKind(fam), st, err, details.Info{}, res, facts)
	}
	info := details.Parse(st)
	kind := c.kind(st.Code(), info, call)
	if facts.Local = localFailure(st) || madeHere(err); facts.Local {
		// grpc-go made the failure on the client and would make it again: whatever its
		// code, it says nothing about the service, so no more than the family's base kind.
		kind = baseKind(fam)
	}
	facts.Transport = transportFailure(st) || connectionEnded(err)
	if errors.Is(kind, errs.ErrSandboxFile) && res.FilePath == "" {
		res.FilePath = info.Metadata["filepath"]
	}
	if c.trustedReason(info) {
		r := sandboxapi.Reasons[info.Reason]
		facts.Transient = r.Transient
		if kind == errs.ErrSandboxFile {
			facts.Phrase = r.Phrase
		}
	}
	return newError(kind, st, err, info, res, facts)
}

// newError builds the classified error through the seam errs keeps for its siblings.
func newError(kind errs.Kind, st *status.Status, cause error, info details.Info, res errs.Resource, facts seam.Facts) *errs.Error {
	return seam.NewError.(func(errs.Kind, *status.Status, error, details.Info, errs.Resource, seam.Facts) *errs.Error)(kind, st, cause, info, res, facts)
}

// family returns the family of a full method name's service. A call without a method is
// a sandbox call.
func (c *Classifier) family(method string) family {
	if method == "" {
		return familySandbox
	}
	return c.services[service(method)]
}

// trustedReason reports whether info's reason may speak for the platform: its domain is
// trusted, or a [WithRule] names its (domain, reason).
func (c *Classifier) trustedReason(info details.Info) bool {
	if info.Reason == "" {
		return false
	}
	if c.trusted[info.Domain] {
		return true
	}
	_, ok := c.rules[ruleKey{info.Domain, info.Reason}]
	return ok
}

// kind chooses the kind for a failure with the given code and details on the given call:
// a [WithRule] rule, then a trusted reason, then the code by the call's family (see the
// package documentation for the tables).
func (c *Classifier) kind(code codes.Code, info details.Info, call Call) errs.Kind {
	fam := c.family(call.Method)
	if k := c.reasonRule(info, fam); k != 0 {
		return k
	}
	switch {
	case code == codes.Unauthenticated || code == codes.PermissionDenied:
		return errs.ErrCWSandboxAuthentication
	case code == codes.InvalidArgument && len(info.Violations) > 0:
		return validationKinds[fam]
	case fam == familySandbox:
		return sandboxCodeKind(code, call)
	case fam == familyDiscovery && code == codes.NotFound:
		return errs.ErrRunnerNotFound
	}
	return baseKind(fam)
}

// reasonRule returns the kind info's reason chooses on a call of family fam: a [WithRule]
// rule for its (domain, reason), else a reason of a trusted domain; or 0 to fall through to
// the code.
func (c *Classifier) reasonRule(info details.Info, fam family) errs.Kind {
	if info.Reason == "" {
		return 0
	}
	if k, ok := c.rules[ruleKey{info.Domain, info.Reason}]; ok {
		return k
	}
	if c.trusted[info.Domain] {
		return reasonKind(info.Reason, fam)
	}
	return 0
}

// sandboxCodeKind returns the kind code chooses on a sandbox call, by the call's resource
// and context: a server-side CANCELLED means the sandbox stopped serving the call, a
// caller's own cancellation does not.
func sandboxCodeKind(code codes.Code, call Call) errs.Kind {
	switch code {
	case codes.NotFound:
		if call.Resource.SnapshotID != "" {
			return errs.ErrSnapshotNotFound
		}
		return errs.ErrSandboxNotFound
	case codes.Canceled:
		if call.ContextErr == nil {
			return errs.ErrSandboxNotRunning
		}
	case codes.DeadlineExceeded:
		return errs.ErrSandboxRequestTimeout
	case codes.Unavailable:
		return errs.ErrSandboxUnavailable
	case codes.ResourceExhausted:
		return errs.ErrSandboxResourceExhausted
	}
	return baseKind(familySandbox)
}

// validationKinds is the kind of an INVALID_ARGUMENT with field violations, by family.
var validationKinds = [...]errs.Kind{
	familyGeneric:   errs.ErrCWSandboxValidation,
	familySandbox:   errs.ErrSandboxValidation,
	familyDiscovery: errs.ErrDiscoveryValidation,
}

func baseKind(f family) errs.Kind {
	switch f {
	case familySandbox:
		return errs.ErrSandbox
	case familyDiscovery:
		return errs.ErrDiscovery
	}
	return errs.ErrCWSandbox
}

// reasonKind returns the kind a trusted reason chooses on a call of family f, or 0 to fall
// through to the code. On a discovery call only CWSANDBOX_RUNNER_NOT_FOUND chooses; on any
// other call that reason gives the family base: a missing runner is not a missing sandbox.
func reasonKind(reason string, f family) errs.Kind {
	switch {
	case reason == sandboxapi.RunnerNotFound && f == familyDiscovery:
		return errs.ErrRunnerNotFound
	case reason == sandboxapi.RunnerNotFound:
		return baseKind(f)
	case f == familyDiscovery:
		return 0
	}
	return sandboxapi.Reasons[reason].Kind
}

// classified returns the *errs.Error err holds, or nil. A bare status error, the common
// case, is told apart without walking the chain.
func classified(err error) *errs.Error {
	switch e := err.(type) {
	case *errs.Error:
		return e
	case interface{ Unwrap() error }, interface{ Unwrap() []error }:
		if done, ok := errors.AsType[*errs.Error](err); ok {
			return done
		}
	}
	return nil
}

// service returns "pkg.Service" of "/pkg.Service/Method".
func service(method string) string {
	s := strings.TrimPrefix(method, "/")
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[:i]
	}
	return s
}

// operation returns "Method" of "/pkg.Service/Method".
func operation(method string) string {
	if i := strings.LastIndexByte(method, '/'); i >= 0 {
		return method[i+1:]
	}
	return method
}
