package sandboxapi_test

import (
	"reflect"
	"testing"

	"github.com/faultline-go/faultline/errs"
	"github.com/faultline-go/faultline/internal/sandboxapi"
)

// TestResourceFields checks that every field of errs.Resource but Operation (the call's own)
// is reached by exactly one of ResourceFields, so a field added to errs.Resource cannot be
// forgotten here.
func TestResourceFields(t *testing.T) {
	typ := reflect.TypeFor[errs.Resource]()
	reached := map[string]string{} // errs.Resource field -> request field
	for i, name := range sandboxapi.ResourceFields {
		var r errs.Resource
		*sandboxapi.ResourceField(&r, i) = "x"
		v := reflect.ValueOf(r)
		for j := range typ.NumField() {
			if v.Field(j).String() == "x" {
				if prev, ok := reached[typ.Field(j).Name]; ok {
					t.Errorf("errs.Resource.%s is reached by %q and %q", typ.Field(j).Name, prev, name)
				}
				reached[typ.Field(j).Name] = name
			}
		}
	}
	for j := range typ.NumField() {
		if f := typ.Field(j).Name; f != "Operation" && reached[f] == "" {
			t.Errorf("errs.Resource.%s is reached by no request field", f)
		}
	}
	if _, ok := reached["Operation"]; ok {
		t.Error("a request field reaches errs.Resource.Operation, the call's own")
	}
}
