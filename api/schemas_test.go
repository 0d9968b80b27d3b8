package api_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/executor"
)

// TestSchemasMatchTheGoTypes: the schemas of the wire types have exactly the
// Go structs' JSON field names, required exactly when the field is not
// omitempty, and nested types point to the schema of their Go type.
func TestSchemasMatchTheGoTypes(t *testing.T) {
	schemaOf := map[reflect.Type]string{
		reflect.TypeFor[api.Request]():        "Request",
		reflect.TypeFor[api.File]():           "File",
		reflect.TypeFor[api.Limits]():         "Limits",
		reflect.TypeFor[api.Success]():        "Success",
		reflect.TypeFor[api.OutputFile]():     "OutputFile",
		reflect.TypeFor[api.Failure]():        "Failure",
		reflect.TypeFor[api.SessionRequest](): "SessionRequest",
		reflect.TypeFor[api.Session]():        "Session",
		reflect.TypeFor[api.Cell]():           "Cell",
		reflect.TypeFor[api.CellSuccess]():    "CellSuccess",
		reflect.TypeFor[api.SessionState]():   "SessionState",
		reflect.TypeFor[executor.Isolation](): "Isolation",
		reflect.TypeFor[executor.Versions]():  "Versions",
	}
	doc := api.LoadDoc(t, api.OpenAPIYAML)
	for typ, name := range schemaOf {
		ref := doc.Components.Schemas[name]
		if ref == nil {
			t.Errorf("components.schemas has no %s (Go type %v)", name, typ)
			continue
		}
		schema := ref.Value
		fields := map[string]bool{} // JSON name -> required
		for f := range typ.Fields() {
			jsonName, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if jsonName == "-" || !f.IsExported() {
				continue
			}
			if jsonName == "" {
				jsonName = f.Name
			}
			required := !slices.Contains(strings.Split(opts, ","), "omitempty")
			fields[jsonName] = required

			prop := schema.Properties[jsonName]
			if prop == nil {
				t.Errorf("%s: schema has no property %q (Go field %v.%s)", name, jsonName, typ, f.Name)
				continue
			}
			if required != slices.Contains(schema.Required, jsonName) {
				t.Errorf("%s.%s: required in the schema = %v, want %v (omitempty in Go = %v)",
					name, jsonName, !required, required, !required)
			}
			// A field of another wire type must point to that type's schema
			// (or be that schema or null, for a member null leaves absent).
			elem, target := f.Type, prop
			for _, alt := range prop.Value.AnyOf {
				if alt.Ref != "" {
					target = alt
				}
			}
			for elem.Kind() == reflect.Pointer || elem.Kind() == reflect.Slice {
				if elem.Kind() == reflect.Slice && elem.Elem().Kind() != reflect.Uint8 {
					if target.Value.Items == nil {
						t.Errorf("%s.%s: a Go slice, but the schema has no items", name, jsonName)
						break
					}
					target = target.Value.Items
				}
				elem = elem.Elem()
			}
			if want, ok := schemaOf[elem]; ok && target.Ref != "#/components/schemas/"+want {
				t.Errorf("%s.%s: schema refers to %q, want #/components/schemas/%s", name, jsonName, target.Ref, want)
			}
		}
		for prop := range schema.Properties {
			if _, ok := fields[prop]; !ok {
				t.Errorf("%s: schema property %q is not a JSON field of %v", name, prop, typ)
			}
		}
	}
}
