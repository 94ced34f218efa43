package errs_test

import (
	"encoding"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/faultline-go/faultline/errs"
)

var (
	_ encoding.TextMarshaler   = errs.Kind(0)
	_ encoding.TextUnmarshaler = new(errs.Kind)
)

// record is how a user stores a kind: a field, an optional field and a map key.
type record struct {
	Kind     errs.Kind         `json:"kind"`
	Optional errs.Kind         `json:"optional,omitzero"`
	Counts   map[errs.Kind]int `json:"counts,omitempty"`
}

func TestKindTextRoundTrip(t *testing.T) {
	for _, c := range taxonomy {
		t.Run(c.name, func(t *testing.T) {
			text, err := c.kind.MarshalText()
			if err != nil || string(text) != c.name {
				t.Fatalf("%v.MarshalText() = %q, %v, want %q, nil", c.kind, text, err, c.name)
			}
			var k errs.Kind
			if err := k.UnmarshalText([]byte(c.name)); err != nil || k != c.kind {
				t.Fatalf("UnmarshalText(%q) = %v, kind %v, want nil, kind %v", c.name, err, k, c.kind)
			}

			in := record{Kind: c.kind, Counts: map[errs.Kind]int{c.kind: 3}}
			js, err := json.Marshal(in)
			if err != nil {
				t.Fatalf("json.Marshal(%+v) = %v", in, err)
			}
			want := `{"kind":"` + c.name + `","counts":{"` + c.name + `":3}}`
			if string(js) != want {
				t.Errorf("json.Marshal(%+v) = %s, want %s", in, js, want)
			}
			var out record
			if err := json.Unmarshal(js, &out); err != nil {
				t.Fatalf("json.Unmarshal(%s) = %v", js, err)
			}
			if diff := cmp.Diff(in, out); diff != "" {
				t.Errorf("json round trip of %+v (-in +out):\n%s", in, diff)
			}
		})
	}
}

func TestKindMarshalTextInvalid(t *testing.T) {
	tests := []struct {
		name string
		kind errs.Kind
		want string
	}{
		{"zero", 0, "errs: cannot marshal Kind(0): not a kind of the taxonomy"},
		{"one past the last", errs.Kind(len(taxonomy) + 1), "not a kind of the taxonomy"},
		{"max", 255, "errs: cannot marshal Kind(255): not a kind of the taxonomy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			text, err := tt.kind.MarshalText()
			if err == nil || !strings.Contains(err.Error(), tt.want) || text != nil {
				t.Errorf("Kind(%d).MarshalText() = %q, %v, want nil, an error containing %q", uint8(tt.kind), text, err, tt.want)
			}
			in := record{Kind: tt.kind}
			if js, err := json.Marshal(in); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("json.Marshal(%+v) = %s, %v, want an error containing %q", in, js, err, tt.want)
			}
		})
	}
}

func TestKindZeroOmitted(t *testing.T) {
	in := record{Kind: errs.ErrSandbox}
	js, err := json.Marshal(in)
	if want := `{"kind":"SandboxError"}`; err != nil || string(js) != want {
		t.Errorf("json.Marshal(%+v) = %s, %v, want %s, nil", in, js, err, want)
	}
}

func TestKindUnmarshalTextInvalid(t *testing.T) {
	long := strings.Repeat("SandboxError", 100)
	tests := []struct {
		name string
		text string
		want string
	}{
		{"empty", "", `errs: unknown kind ""`},
		{"lower case", "sandboxunavailableerror", `errs: unknown kind "sandboxunavailableerror"`},
		{"leading space", " SandboxUnavailableError", `errs: unknown kind " SandboxUnavailableError"`},
		{"trailing newline", "SandboxUnavailableError\n", `errs: unknown kind "SandboxUnavailableError\n"`},
		{"Go name", "ErrSandboxUnavailable", `errs: unknown kind "ErrSandboxUnavailable"`},
		{"invalid kind's String", "Kind(0)", `errs: unknown kind "Kind(0)"`},
		{"number", "7", `errs: unknown kind "7"`},
		{"not UTF-8", "\xff", `errs: unknown kind "\xff"`},
		{"long", long, `errs: unknown kind "` + long[:64] + `"...`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := errs.ErrSandbox
			err := k.UnmarshalText([]byte(tt.text))
			if err == nil || err.Error() != tt.want {
				t.Errorf("UnmarshalText(%q) = %v, want %s", tt.text, err, tt.want)
			}
			if k != errs.ErrSandbox {
				t.Errorf("UnmarshalText(%q) changed the kind to %v, want it unchanged", tt.text, k)
			}
		})
	}
}

func TestKindUnmarshalJSONInvalid(t *testing.T) {
	tests := []struct {
		name string
		js   string
	}{
		{"number", `{"kind":7}`},
		{"unknown name", `{"kind":"SandboxUnavailable"}`},
		{"empty string", `{"kind":""}`},
		{"unknown map key", `{"kind":"SandboxError","counts":{"7":1}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r record
			if err := json.Unmarshal([]byte(tt.js), &r); err == nil {
				t.Errorf("json.Unmarshal(%s) = nil, %+v, want an error", tt.js, r)
			}
		})
	}
}
