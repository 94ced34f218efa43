package classify

import (
	"encoding/base64"
	"slices"
	"strings"
	"unsafe"

	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/faultline-go/faultline/errs"
)

const (
	errorInfoName  = "google.rpc.ErrorInfo"
	retryInfoName  = "google.rpc.RetryInfo"
	badRequestName = "google.rpc.BadRequest"

	// StatusDetailsKey is the trailer that carries a google.rpc.Status with details.
	StatusDetailsKey = "grpc-status-details-bin"
)

// Parse reads the AIP-193 details of st: the first google.rpc.ErrorInfo with a non-empty
// reason (reason, domain and metadata as a unit), the first google.rpc.RetryInfo whose
// retry_delay is present and valid, and the field violations of every google.rpc.BadRequest,
// in order. A detail whose bytes do not decode is skipped; the others still count. Parse
// never fails and never panics: a nil st, or one without usable details, gives the zero
// [errs.Info] (with a non-nil Metadata when an ErrorInfo had a reason).
//
// Parse decodes only those three message types, without the global type registry; use
// [errs.Error.OtherDetails] for the rest.
func Parse(st *status.Status) errs.Info {
	if st == nil {
		return errs.Info{}
	}
	var p parser
	for _, a := range statusDetails(st) {
		url, v := a.GetTypeUrl(), a.GetValue()
		switch {
		case messageIs(url, errorInfoName):
			if !p.haveError {
				p.errorInfo(string(v)) // the parsed strings are slices of this one copy
			}
		case messageIs(url, retryInfoName):
			if !p.info.HasRetryDelay {
				p.retryInfo(unsafe.String(unsafe.SliceData(v), len(v))) // read, not kept
			}
		case messageIs(url, badRequestName):
			p.badRequest(string(v))
		}
	}
	return p.info
}

// ParseTrailer applies the rules of [Parse] to raw trailer metadata: the values of
// grpc-status-details-bin (key matched case-insensitively) are tried in order, each as the
// binary google.rpc.Status grpc-go stores in metadata or, failing that, as its base64 text
// form; the first that decodes to a Status with usable details wins, with no merging across
// values. A malformed value is skipped.
func ParseTrailer(md metadata.MD) errs.Info {
	for _, key := range detailKeys(md) {
		for _, v := range md[key] {
			if info, ok := parseStatus(v); ok {
				return info
			}
			if raw, ok := decodeBase64(v); ok {
				if info, ok := parseStatus(raw); ok {
					return info
				}
			}
		}
	}
	return errs.Info{}
}

// detailKeys returns the keys of md that name the details trailer: the canonical lower-case
// key first, then other spellings in sorted order, so the result does not depend on map order.
func detailKeys(md metadata.MD) []string {
	var keys []string
	if _, ok := md[StatusDetailsKey]; ok {
		keys = append(keys, StatusDetailsKey)
	}
	var others []string
	for k := range md {
		if k != StatusDetailsKey && strings.EqualFold(k, StatusDetailsKey) {
			others = append(others, k)
		}
	}
	slices.Sort(others)
	return append(keys, others...)
}

func decodeBase64(s string) (string, bool) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return string(b), true
		}
	}
	return "", false
}

// Usable reports whether info says anything: an ErrorInfo with a reason, a present
// RetryInfo, or a field violation.
func Usable(info errs.Info) bool {
	return info.Reason != "" || info.HasRetryDelay || len(info.FieldViolations) > 0
}

// parseStatus decodes a google.rpc.Status and parses its details. It reports false when s is
// not a valid Status or its details say nothing usable.
func parseStatus(s string) (errs.Info, bool) {
	// Validate the whole Status first: a malformed value contributes nothing.
	r := newReader(s)
	for num, typ, more := r.next(); more; num, typ, more = r.next() {
		switch {
		case num == 1 && typ == wireVarint:
			r.varint()
		case num == 2 && typ == wireBytes:
			r.str()
		case num == 3 && typ == wireBytes:
			if _, _, ok := anyFields(r.bytes()); !ok {
				r.ok = false
			}
		default:
			r.skip(num, typ)
		}
	}
	if !r.ok {
		return errs.Info{}, false
	}
	var p parser
	r = newReader(s)
	for num, typ, more := r.next(); more; num, typ, more = r.next() {
		if num == 3 && typ == wireBytes {
			url, value, _ := anyFields(r.bytes())
			p.detail(url, value)
		} else {
			r.skip(num, typ)
		}
	}
	return p.info, Usable(p.info)
}

// anyFields decodes a google.protobuf.Any.
func anyFields(s string) (url, value string, ok bool) {
	r := newReader(s)
	for num, typ, more := r.next(); more; num, typ, more = r.next() {
		switch {
		case num == 1 && typ == wireBytes:
			url = r.str()
		case num == 2 && typ == wireBytes:
			value = r.bytes()
		default:
			r.skip(num, typ)
		}
	}
	return url, value, r.ok
}

// messageIs reports whether an Any type URL names the message name, as anypb.Any.MessageIs.
func messageIs(url, name string) bool {
	return strings.HasSuffix(url, name) && (len(url) == len(name) || url[len(url)-len(name)-1] == '/')
}

// parser accumulates details into an errs.Info by the rules of Parse.
type parser struct {
	info      errs.Info
	haveError bool
}

// detail parses one detail whose value the parser may keep slices of.
func (p *parser) detail(url, value string) {
	switch {
	case messageIs(url, errorInfoName):
		if !p.haveError {
			p.errorInfo(value)
		}
	case messageIs(url, retryInfoName):
		if !p.info.HasRetryDelay {
			p.retryInfo(value)
		}
	case messageIs(url, badRequestName):
		p.badRequest(value)
	}
}

// errorInfo takes an ErrorInfo that decodes and has a reason. Entries are held on the stack
// until the whole message has decoded; only the winner's metadata map is allocated.
func (p *parser) errorInfo(s string) {
	var reason, domain string
	var small [8][2]string
	entries := small[:0]
	n := 0
	r := newReader(s)
	for num, typ, more := r.next(); more; num, typ, more = r.next() {
		switch {
		case num == 1 && typ == wireBytes:
			reason = r.str()
		case num == 2 && typ == wireBytes:
			domain = r.str()
		case num == 3 && typ == wireBytes:
			k, v, ok := mapEntry(r.bytes())
			if !ok {
				r.ok = false
			}
			if n < len(small) {
				entries = append(entries, [2]string{k, v})
			}
			n++
		default:
			r.skip(num, typ)
		}
	}
	if !r.ok || reason == "" {
		return
	}
	md := make(map[string]string, n)
	if n <= len(small) {
		for _, e := range entries {
			md[e[0]] = e[1]
		}
	} else { // many entries: read them again rather than hold them all
		r = newReader(s)
		for num, typ, more := r.next(); more; num, typ, more = r.next() {
			if num == 3 && typ == wireBytes {
				k, v, _ := mapEntry(r.bytes())
				md[k] = v
			} else {
				r.skip(num, typ)
			}
		}
	}
	p.haveError = true
	p.info.Reason, p.info.Domain, p.info.Metadata = reason, domain, md
}

// mapEntry decodes one map<string, string> entry.
func mapEntry(s string) (key, value string, ok bool) {
	r := newReader(s)
	for num, typ, more := r.next(); more; num, typ, more = r.next() {
		switch {
		case num == 1 && typ == wireBytes:
			key = r.str()
		case num == 2 && typ == wireBytes:
			value = r.str()
		default:
			r.skip(num, typ)
		}
	}
	return key, value, r.ok
}

func (p *parser) retryInfo(s string) {
	var seconds int64
	var nanos int32
	present := false
	r := newReader(s)
	for num, typ, more := r.next(); more; num, typ, more = r.next() {
		if num == 1 && typ == wireBytes {
			present = true
			if !duration(r.bytes(), &seconds, &nanos) {
				r.ok = false
			}
		} else {
			r.skip(num, typ)
		}
	}
	if !r.ok || !present {
		return
	}
	if d, ok := toDuration(seconds, nanos); ok {
		p.info.RetryDelay, p.info.HasRetryDelay = d, true
	}
}

// badRequest appends the violations of one BadRequest; none if any part fails to decode.
func (p *parser) badRequest(s string) {
	keep := len(p.info.FieldViolations)
	r := newReader(s)
	for num, typ, more := r.next(); more; num, typ, more = r.next() {
		if num == 1 && typ == wireBytes {
			fv, ok := violation(r.bytes())
			if !ok {
				r.ok = false
				break
			}
			if fv.Field != "" || fv.Description != "" {
				p.info.FieldViolations = append(p.info.FieldViolations, fv)
			}
		} else {
			r.skip(num, typ)
		}
	}
	if !r.ok {
		p.info.FieldViolations = p.info.FieldViolations[:keep]
	}
}

// violation decodes a BadRequest.FieldViolation, with the description falling back to the
// localized message, then to the reason.
func violation(s string) (errs.FieldViolation, bool) {
	var field, desc, reason, localized string
	r := newReader(s)
	for num, typ, more := r.next(); more; num, typ, more = r.next() {
		switch {
		case num == 1 && typ == wireBytes:
			field = r.str()
		case num == 2 && typ == wireBytes:
			desc = r.str()
		case num == 3 && typ == wireBytes:
			reason = r.str()
		case num == 4 && typ == wireBytes:
			if !localizedMessage(r.bytes(), &localized) {
				r.ok = false
			}
		default:
			r.skip(num, typ)
		}
	}
	if desc == "" {
		desc = localized
	}
	if desc == "" {
		desc = reason
	}
	return errs.FieldViolation{Field: field, Description: desc}, r.ok
}

// localizedMessage decodes a google.rpc.LocalizedMessage's message, merging into an
// earlier occurrence.
func localizedMessage(s string, message *string) bool {
	r := newReader(s)
	for num, typ, more := r.next(); more; num, typ, more = r.next() {
		switch {
		case num == 1 && typ == wireBytes:
			r.str() // locale
		case num == 2 && typ == wireBytes:
			*message = r.str()
		default:
			r.skip(num, typ)
		}
	}
	return r.ok
}
