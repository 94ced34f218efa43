// Package sandboxapi holds what faultline knows of the CoreWeave sandbox API, in one place:
// its services, the retry class and idempotency key of every method, the ErrorInfo reasons
// of its domain (the kind each chooses, whether it declares the failure transient, what it
// says happened), and the request fields that name what a call is about. Adding a method is
// one row of [Methods]; adding a reason, one row of [Reasons]; adding a resource field, one
// row of [ResourceFields] (and the field in errs.Resource, and its place in the message).
package sandboxapi

import (
	"strconv"
	"strings"

	"github.com/faultline-go/faultline/errs"
)

// The sandbox API's services, as gRPC names them.
const (
	SandboxService   = "coreweave.sandbox.v1.SandboxService"
	DiscoveryService = "coreweave.sandbox.v1.DiscoveryService"
	SettingsService  = "coreweave.sandbox.v1.SettingsService"
	TemplateService  = "coreweave.sandbox.v1.SandboxTemplateService"
	VolumeService    = "coreweave.sandbox.v1.VolumeService"
)

// Level is a method's retry class: retry.Idempotency's values, in its order (a test keeps
// them in step; this package may not import retry).
type Level uint8

const (
	Unknown Level = iota
	NoSideEffects
	Idempotent
	NotIdempotent
	Never
)

// A Method is one row of the API's method table.
type Method struct {
	Level Level
	// Key is the string field of the request that carries an idempotency key (AIP-155),
	// filled once per call when empty; the method is Idempotent with it. KeyWhen, when set,
	// is the bool field that must be true for the key to be needed.
	Key, KeyWhen string
	// Resumed is whether a server stream of the method is resumed after commit by default,
	// from its last message's cursor (StreamLogs).
	Resumed bool
}

// Methods is the retry class of every method of the real API (service.md), by full method
// name ("/pkg.Service/Method"). The creates are not idempotent without a request id, which
// their Key fills.
var Methods = map[string]Method{
	m(SandboxService, "GetSandbox"):                {Level: NoSideEffects},
	m(SandboxService, "ListSandboxes"):             {Level: NoSideEffects},
	m(SandboxService, "GetFileSystemSnapshot"):     {Level: NoSideEffects},
	m(SandboxService, "ListFileSystemSnapshots"):   {Level: NoSideEffects},
	m(SandboxService, "ReadFile"):                  {Level: NoSideEffects},
	m(SandboxService, "StreamLogs"):                {Level: NoSideEffects, Resumed: true},
	m(SandboxService, "CreateSandbox"):             {Level: NotIdempotent, Key: "request_id"},
	m(SandboxService, "CreateSandboxFromTemplate"): {Level: NotIdempotent, Key: "request_id"},
	m(SandboxService, "CreateFileSystemSnapshot"):  {Level: NotIdempotent, Key: "request_id"},
	// "Naturally idempotent", but a repeated snapshot-on-delete may dispatch a new batch.
	m(SandboxService, "DeleteSandbox"):            {Level: Idempotent, Key: "request_id", KeyWhen: "snapshot_volumes"},
	m(SandboxService, "DeleteFileSystemSnapshot"): {Level: Idempotent},
	m(SandboxService, "WriteFile"):                {Level: Idempotent},
	m(SandboxService, "PurgeSandboxes"):           {Level: NotIdempotent},
	m(SandboxService, "Exec"):                     {Level: Never}, // runs the user's command
	m(SandboxService, "StreamExec"):               {Level: Never},
}

func m(service, method string) string { return "/" + service + "/" + method }

// LevelOf returns the retry class the API's table and service rules give a full method
// name: its row; a DiscoveryService method: NoSideEffects; a SettingsService Get: no side
// effects, Update: Idempotent (full replacement); any other method of SettingsService,
// SandboxTemplateService or VolumeService that is not a Get or List: NotIdempotent (their
// mutations have no idempotency key); anything else: Unknown.
func LevelOf(method string) Level {
	if row, ok := Methods[method]; ok {
		return row.Level
	}
	i := strings.LastIndexByte(method, '/')
	if i <= 0 {
		return Unknown
	}
	svc, name := strings.TrimPrefix(method[:i], "/"), method[i+1:]
	reads := strings.HasPrefix(name, "Get") || strings.HasPrefix(name, "List")
	switch {
	case svc == DiscoveryService:
		return NoSideEffects
	case svc == SettingsService && strings.HasPrefix(name, "Get"):
		return NoSideEffects
	case svc == SettingsService && strings.HasPrefix(name, "Update"):
		return Idempotent
	case (svc == SettingsService || svc == TemplateService || svc == VolumeService) && !reads:
		return NotIdempotent
	}
	return Unknown
}

// Domain is the ErrorInfo domain of the sandbox platform's reasons.
const Domain = "cwsandbox.com"

// RunnerNotFound is the reason that chooses RunnerNotFoundError on a discovery call, and the
// family's base kind on any other (a missing runner is not a missing sandbox).
const RunnerNotFound = "CWSANDBOX_RUNNER_NOT_FOUND"

// A Reason is what a reason of the platform's domain says.
type Reason struct {
	Kind errs.Kind // the kind it chooses on a call outside the discovery family
	// Transient: the server declined the work and it may be retried, on any code and any
	// family (safety.md: a server signal).
	Transient bool
	// Phrase says what happened, in an error's message, instead of the kind's phrase.
	Phrase string
}

// Reasons are the trusted reasons that mean something to faultline (classification.md).
var Reasons = map[string]Reason{
	"CWSANDBOX_FILE_NOT_FOUND":          {Kind: errs.ErrSandboxFile, Phrase: "file not found"},
	"CWSANDBOX_FILE_IS_DIRECTORY":       {Kind: errs.ErrSandboxFile, Phrase: "file is a directory"},
	"CWSANDBOX_FILE_IO_FAILED":          {Kind: errs.ErrSandboxFile, Phrase: "file i/o failed"},
	"CWSANDBOX_FILE_PERMISSION_DENIED":  {Kind: errs.ErrSandboxFile, Phrase: "file permission denied"},
	"CWSANDBOX_FILE_TOO_LARGE":          {Kind: errs.ErrSandboxFile, Phrase: "file too large"},
	"CWSANDBOX_FILE_TRUNCATED":          {Kind: errs.ErrSandboxFile, Phrase: "file truncated"},
	"CWSANDBOX_SANDBOX_NOT_FOUND":       {Kind: errs.ErrSandboxNotFound},
	"CWSANDBOX_SANDBOX_NOT_RUNNING":     {Kind: errs.ErrSandboxNotRunning},
	"CWSANDBOX_COMMAND_TIMEOUT":         {Kind: errs.ErrSandboxCommandTimeout},
	"CWSANDBOX_RUNNER_UNAVAILABLE":      {Kind: errs.ErrSandboxUnavailable, Transient: true},
	"CWSANDBOX_BACKEND_UNAVAILABLE":     {Kind: errs.ErrSandboxUnavailable, Transient: true},
	"CWSANDBOX_FSS_BUCKET_PROVISIONING": {Kind: errs.ErrSandboxUnavailable, Transient: true},
	"CWSANDBOX_FSS_NOT_FOUND":           {Kind: errs.ErrSnapshotNotFound},
	"CWSANDBOX_FSS_NOT_READY":           {Kind: errs.ErrSnapshotNotReady},
	"CWSANDBOX_FSS_NOT_SUPPORTED":       {Kind: errs.ErrSnapshotNotSupported},
	"CWSANDBOX_FSS_SIZE_EXCEEDED":       {Kind: errs.ErrSnapshotSizeExceeded},
	"CWSANDBOX_FSS_QUOTA_EXCEEDED":      {Kind: errs.ErrSnapshotQuotaExceeded},
	"CWSANDBOX_FSS_BUCKET_MISMATCH":     {Kind: errs.ErrSnapshotBucketMismatch},
	"CWSANDBOX_FSS_BUCKET_UNAVAILABLE":  {Kind: errs.ErrSandboxSnapshot},
	"CWSANDBOX_FSS_RESTORE_FAILED":      {Kind: errs.ErrSandboxSnapshot},
	"CWSANDBOX_FSS_CREATE_FAILED":       {Kind: errs.ErrSandboxSnapshot},
	"CWSANDBOX_FSS_CREATE_TIMED_OUT":    {Kind: errs.ErrSandboxSnapshot},
	"CWSANDBOX_FSS_AUTH_FAILED":         {Kind: errs.ErrSandboxSnapshot},
	"CWSANDBOX_FSS_TRANSPORT_FAILED":    {Kind: errs.ErrSandboxSnapshot},
	"CWSANDBOX_FSS_CANCELED":            {Kind: errs.ErrSandboxSnapshot},
	"CWSANDBOX_FSS_WAIT_TIMEOUT":        {Kind: errs.ErrSnapshotWaitTimeout},
	"CWSANDBOX_FSS_BACKEND_THROTTLED":   {Kind: errs.ErrSnapshotBackendThrottled, Transient: true},
	"CWSANDBOX_FSS_INFLIGHT_LIMIT":      {Kind: errs.ErrSnapshotBackendThrottled, Transient: true},
}

// ResourceFields are the request fields that name what a call is about, in the order of
// [ResourceField].
var ResourceFields = [...]string{"sandbox_id", "path", "file_system_snapshot_id", "runner_id", "profile_name"}

// ResourceField returns where the i-th of [ResourceFields] goes in r. (A switch rather than a
// table of functions: a pointer handed to a function value escapes to the heap, and the
// classification of every failed call would pay an allocation for it.)
func ResourceField(r *errs.Resource, i int) *string {
	switch i {
	case 0:
		return &r.SandboxID
	case 1:
		return &r.FilePath
	case 2:
		return &r.SnapshotID
	case 3:
		return &r.RunnerID
	case 4:
		return &r.ProfileName
	}
	panic("sandboxapi: no resource field " + strconv.Itoa(i))
}

// Merge sets the fields of dst that src names (non-empty), the resource fields of
// [ResourceFields]; Operation is the call's own and is left alone.
func Merge(dst *errs.Resource, src errs.Resource) {
	for i := range ResourceFields {
		if v := *ResourceField(&src, i); v != "" {
			*ResourceField(dst, i) = v
		}
	}
}
