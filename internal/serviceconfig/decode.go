package serviceconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
)

// valueError is the error of a value that has the right JSON type but is not what the field
// takes (a malformed duration, an unknown code name): its message is the *Error's.
type valueError struct{ msg string }

func (e *valueError) Error() string { return e.msg }

// duration is a protobuf JSON duration ("1.5s") as grpc-go reads one (its
// internal/serviceconfig Duration.UnmarshalJSON): a JSON string (null reads as "", which is
// malformed), an optional "-", whole seconds and/or up to 9 fractional digits (each part
// parsed as a base-10 int64, so a "+" or "-" inside a part is taken), "s"; at most
// 315,576,000,000 s before the sign; clamped to the range of time.Duration.
type duration time.Duration

func (d *duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return &valueError{"got " + clip(string(b)) + `, want a duration string like "1.5s"`}
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = duration(v)
	return nil
}

// maxProtoSeconds is the largest number of seconds a protobuf Duration holds.
const maxProtoSeconds = 315_576_000_000

// parseDuration parses s as [duration] documents, or returns a *valueError that quotes s
// and says what is wrong.
func parseDuration(s string) (time.Duration, error) {
	bad := func(why string) error {
		return &valueError{fmt.Sprintf(`got %s, want a duration string like "1.5s" (%s)`, strconv.Quote(clip(s)), why)}
	}
	if !strings.HasSuffix(s, "s") {
		return 0, bad(`no "s" at the end`)
	}
	num, neg := s[:len(s)-1], false
	if s[0] == '-' {
		num, neg = num[1:], true
	}
	whole, frac, _ := strings.Cut(num, ".")
	if strings.Contains(frac, ".") {
		return 0, bad("more than one decimal point")
	}
	sec, why := durationSeconds(whole)
	if why != "" {
		return 0, bad(why)
	}
	nanos, why := durationNanos(frac)
	if why != "" {
		return 0, bad(why)
	}
	if whole == "" && frac == "" {
		return 0, bad("no digits")
	}
	if neg {
		sec, nanos = -sec, -nanos
	}
	return clampDuration(sec, nanos), nil
}

// durationSeconds parses the whole seconds of a duration string, "" as 0; why says what is
// wrong with them, if anything.
func durationSeconds(whole string) (sec int64, why string) {
	if whole == "" {
		return 0, ""
	}
	sec, err := strconv.ParseInt(whole, 10, 64)
	switch {
	case err != nil:
		return 0, "seconds are not a whole number"
	case sec > maxProtoSeconds:
		return 0, "more than 315576000000 seconds"
	}
	return sec, ""
}

// durationNanos parses the digits after a duration string's decimal point as nanoseconds,
// "" as 0; why says what is wrong with them, if anything.
func durationNanos(frac string) (nanos int64, why string) {
	if frac == "" {
		return 0, ""
	}
	if len(frac) > 9 {
		return 0, "more than 9 digits after the decimal point"
	}
	nanos, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return 0, "the fraction is not a number"
	}
	for range 9 - len(frac) {
		nanos *= 10
	}
	return nanos, ""
}

// clampDuration returns sec seconds plus nanos nanoseconds (of the same sign, |nanos| below
// a second), clamped to the range of time.Duration.
func clampDuration(sec, nanos int64) time.Duration {
	const (
		maxSec   = math.MaxInt64 / int64(time.Second)
		maxNanos = math.MaxInt64 % int64(time.Second)
		minSec   = math.MinInt64 / int64(time.Second)
		minNanos = math.MinInt64 % int64(time.Second)
	)
	switch {
	case sec > maxSec || sec == maxSec && nanos >= maxNanos:
		return math.MaxInt64
	case sec < minSec || sec == minSec && nanos <= minNanos:
		return math.MinInt64
	}
	return time.Duration(sec*int64(time.Second) + nanos)
}

// code is a status code as grpc-go reads one: codes.Code's own UnmarshalJSON (an upper-case
// name such as "UNAVAILABLE", exactly as spelled in the JSON, or a number from 0 to 16; null
// leaves it OK), with an error that says what it wants.
type code codes.Code

func (c *code) UnmarshalJSON(b []byte) error {
	if err := (*codes.Code)(c).UnmarshalJSON(b); err != nil {
		return &valueError{"got " + clip(string(b)) + `, want a code name in upper case ("UNAVAILABLE") or a number from 0 to 16`}
	}
	return nil
}

var typeSC = reflect.TypeFor[jsonSC]()

// locate finds, in data (JSON that should decode into a value of type t), the first value
// that does not decode, and returns the *Error for it, with its path below path; nil if
// every value decodes. It walks every member of every object, repeated keys included:
// encoding/json decodes a repeated key into what the earlier one left and fails if either
// fails, so each occurrence is checked on its own. A value decodes in its document exactly
// when it decodes on its own, which lets the walk test subtrees with json.Unmarshal.
func locate(data []byte, t reflect.Type, path string) *Error {
	if json.Unmarshal(data, reflect.New(t).Interface()) == nil {
		return nil
	}
	if !implementsUnmarshaler(t) {
		switch et := deref(t); et.Kind() {
		case reflect.Struct:
			if e := locateMembers(data, et, path); e != nil {
				return e
			}
		case reflect.Slice:
			if e := locateElements(data, et.Elem(), path); e != nil {
				return e
			}
		}
	}
	return leafError(data, t, path)
}

// locateMembers checks each member of the JSON object data against the field of struct
// type t that encoding/json would decode it into. It returns nil if data is not an object.
func locateMembers(data []byte, t reflect.Type, path string) *Error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil
		}
		f, ok := fieldFor(t, key)
		if !ok {
			continue // ignored, as encoding/json ignores it
		}
		if e := locate(val, f.Type, join(path, f.Tag.Get("json"))); e != nil {
			return e
		}
	}
	return nil
}

// locateElements checks each element of the JSON array data. It returns nil if data is not
// an array.
func locateElements(data []byte, elem reflect.Type, path string) *Error {
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return nil
	}
	for i := 0; dec.More(); i++ {
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil
		}
		if e := locate(val, elem, path+"["+strconv.Itoa(i)+"]"); e != nil {
			return e
		}
	}
	return nil
}

// fieldFor returns the field of struct type t that encoding/json decodes the member key into,
// found by letting encoding/json decode {key: 0} into a copy of t whose fields are all
// json.RawMessage.
func fieldFor(t reflect.Type, key string) (reflect.StructField, bool) {
	fields := make([]reflect.StructField, t.NumField())
	for i := range fields {
		f := t.Field(i)
		fields[i] = reflect.StructField{Name: f.Name, Type: reflect.TypeFor[json.RawMessage](), Tag: f.Tag}
	}
	probe := reflect.New(reflect.StructOf(fields))
	k, _ := json.Marshal(key)
	if json.Unmarshal([]byte(`{`+string(k)+`:0}`), probe.Interface()) != nil {
		return reflect.StructField{}, false
	}
	for i := range fields {
		if len(probe.Elem().Field(i).Bytes()) > 0 {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

// leafError returns the *Error of data, which does not decode into a t.
func leafError(data []byte, t reflect.Type, path string) *Error {
	err := json.Unmarshal(data, reflect.New(t).Interface())
	var ve *valueError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &ve):
		return &Error{Path: path, Msg: ve.msg}
	case errors.As(err, &te):
		return &Error{Path: path, Msg: "got " + clip(te.Value) + ", want " + want(t)}
	case err != nil:
		return &Error{Path: path, Msg: clip(err.Error())}
	}
	return &Error{Path: path, Msg: "not what " + want(t) + " allows"}
}

// want says what a value of type t is in JSON.
func want(t reflect.Type) string {
	t = deref(t)
	switch t {
	case reflect.TypeFor[duration]():
		return `a duration string like "1.5s"`
	case reflect.TypeFor[code]():
		return `a code name in upper case ("UNAVAILABLE") or a number from 0 to 16`
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64:
		return "an integer (64 bits)"
	case reflect.Float64:
		return "a number (64-bit float)"
	case reflect.Struct:
		return "an object"
	case reflect.Slice:
		return "an array"
	}
	return t.String()
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func implementsUnmarshaler(t reflect.Type) bool {
	u := reflect.TypeFor[json.Unmarshaler]()
	return deref(t).Implements(u) || reflect.PointerTo(deref(t)).Implements(u)
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

// clip bounds text taken from the input, so that an error stays one short, printable line:
// at most 40 runes, invalid UTF-8 and non-graphic runes replaced.
func clip(s string) string {
	const max = 40
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == max {
			b.WriteString("...")
			break
		}
		if r == utf8.RuneError || !unicode.IsGraphic(r) {
			r = '?'
		}
		b.WriteRune(r)
		n++
	}
	return b.String()
}
