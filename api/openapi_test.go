package api

import (
	"context"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/pyexec/pyexec/executor"
	"github.com/pyexec/pyexec/internal/testenv"
)

// loadDoc loads one form of the document with kin-openapi, which resolves
// every $ref (a dangling one fails the load).
func loadDoc(t *testing.T, data []byte) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(data)
	if err != nil {
		t.Fatalf("loading the OpenAPI document: %v", err)
	}
	return doc
}

func TestOpenAPIDocumentIsValidOpenAPI31(t *testing.T) {
	for _, form := range []struct {
		name string
		data []byte
	}{
		{"openapi.yaml", openAPIYAML},
		{"OpenAPIJSON", OpenAPIJSON()},
		{"FunctionOpenAPIJSON(Execute)", FunctionOpenAPIJSON("Execute")},
		{"FunctionOpenAPIJSON(ExecuteEvent)", FunctionOpenAPIJSON("ExecuteEvent")},
	} {
		t.Run(form.name, func(t *testing.T) {
			doc := loadDoc(t, form.data)
			if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
				t.Fatalf("openapi = %q, want 3.1.x", doc.OpenAPI)
			}
			// kin-openapi validates a 3.1 document with JSON Schema 2020-12,
			// and every example against its schema.
			err := doc.Validate(context.Background(),
				openapi3.EnableMultiError(),
				openapi3.EnableExamplesValidation(),
				openapi3.EnableSchemaFormatValidation(),
				openapi3.EnableSchemaDefaultsValidation(),
				openapi3.EnableSchemaPatternValidation(),
			)
			if err != nil {
				t.Fatalf("the OpenAPI document is invalid:\n%v", err)
			}
		})
	}
}

func TestOpenAPIJSONIsTheYAMLDocument(t *testing.T) {
	fromYAML, err := json.Marshal(loadDoc(t, openAPIYAML))
	if err != nil {
		t.Fatal(err)
	}
	fromJSON, err := json.Marshal(loadDoc(t, OpenAPIJSON()))
	if err != nil {
		t.Fatal(err)
	}
	if string(fromYAML) != string(fromJSON) {
		t.Fatalf("OpenAPIJSON() differs from openapi.yaml:\n yaml: %.400s\n json: %.400s", fromYAML, fromJSON)
	}
	first := OpenAPIJSON()
	first[0] = 'x'
	if OpenAPIJSON()[0] != '{' {
		t.Fatal("changing what OpenAPIJSON returned changed the next answer")
	}
}

// Each function's document holds exactly the operations tagged with its
// name: Execute's has no POST / (ExecuteEvent's), and each keeps the
// health check both serve.
func TestEachFunctionsDocumentHoldsOnlyItsOperations(t *testing.T) {
	all := loadDoc(t, openAPIYAML)
	for _, function := range []string{"Execute", "ExecuteEvent"} {
		t.Run(function, func(t *testing.T) {
			doc := loadDoc(t, FunctionOpenAPIJSON(function))
			want, got := map[string]bool{}, map[string]bool{}
			for path, item := range all.Paths.Map() {
				for method, op := range item.Operations() {
					if slices.Contains(op.Tags, function) {
						want[method+" "+path] = true
					}
				}
			}
			for path, item := range doc.Paths.Map() {
				for method, op := range item.Operations() {
					got[method+" "+path] = true
					if !slices.Contains(op.Tags, function) {
						t.Errorf("%s %s is in %s's document but tagged %v", method, path, function, op.Tags)
					}
				}
			}
			if !maps.Equal(got, want) {
				t.Errorf("%s's document has operations %v, want %v", function, got, want)
			}
			if !got["GET /healthz"] {
				t.Errorf("%s's document has no GET /healthz", function)
			}
		})
	}
	if ops := loadDoc(t, FunctionOpenAPIJSON("Execute")).Paths.Find("/"); ops == nil || ops.Post != nil || ops.Get == nil {
		t.Errorf("Execute's document / = %+v, want the playground's GET and no POST", ops)
	}
}

// TestErrorTypeEnumMatchesTheCode: every error_type the Go code can emit is in
// the document's enum, and every enum value is one the code defines, so the
// two cannot drift apart.
func TestErrorTypeEnumMatchesTheCode(t *testing.T) {
	inCode := errorTypeConstants(t, moduleRoot(t))
	doc := loadDoc(t, openAPIYAML)
	inDoc := stringEnum(t, doc.Components.Schemas["ErrorType"].Value)

	for v, where := range inCode {
		if !slices.Contains(inDoc, v) {
			t.Errorf("error_type %q (%s) is missing from components.schemas.ErrorType.enum", v, where)
		}
	}
	for _, v := range inDoc {
		if _, ok := inCode[v]; !ok {
			t.Errorf("components.schemas.ErrorType.enum has %q, which no ErrorType constant in the code defines", v)
		}
	}
	// The sanity check of the walk itself: it must have seen the executor's
	// and the transport's constants, or the comparison above proves nothing.
	for _, v := range []executor.ErrorType{executor.TypeInvalidRequest, executor.TypeInternal} {
		if _, ok := inCode[string(v)]; !ok {
			t.Errorf("the walk of the module did not find the constant %q", v)
		}
	}
	if _, ok := inCode["not_found"]; !ok {
		t.Error("the walk of the module did not find the transport's not_found")
	}
}

// TestEveryErrorTypeHasItsStatus: the answers narrow error_type per status;
// each narrowing is a subset of ErrorType, and together they cover all of it,
// so every error type is documented under the status it comes with.
func TestEveryErrorTypeHasItsStatus(t *testing.T) {
	doc := loadDoc(t, openAPIYAML)
	all := stringEnum(t, doc.Components.Schemas["ErrorType"].Value)
	covered := map[string]bool{}
	check := func(where string, resp *openapi3.Response) {
		for mediaType, media := range resp.Content {
			if mediaType != "application/json" || media.Schema == nil {
				continue
			}
			for _, part := range media.Schema.Value.AllOf {
				prop := part.Value.Properties["error_type"]
				if prop == nil || part.Ref != "" {
					continue
				}
				values := stringEnum(t, prop.Value)
				for _, v := range values {
					if !slices.Contains(all, v) {
						t.Errorf("%s narrows error_type to %q, which is not in ErrorType", where, v)
					}
					covered[v] = true
				}
			}
		}
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			for status, resp := range op.Responses.Map() {
				check(method+" "+path+" "+status, resp.Value)
			}
		}
	}
	for name, resp := range doc.Components.Responses {
		check("components.responses."+name, resp.Value)
	}
	for _, v := range all {
		if !covered[v] {
			t.Errorf("error_type %q is not listed under any response status", v)
		}
	}
}

// TestSchemasMatchTheGoTypes: the schemas of the wire types have exactly the
// Go structs' JSON field names, required exactly when the field is not
// omitempty, and nested types point to the schema of their Go type.
func TestSchemasMatchTheGoTypes(t *testing.T) {
	schemaOf := map[reflect.Type]string{
		reflect.TypeFor[Request]():            "Request",
		reflect.TypeFor[File]():               "File",
		reflect.TypeFor[Limits]():             "Limits",
		reflect.TypeFor[Success]():            "Success",
		reflect.TypeFor[OutputFile]():         "OutputFile",
		reflect.TypeFor[Failure]():            "Failure",
		reflect.TypeFor[executor.Isolation](): "Isolation",
		reflect.TypeFor[executor.Versions]():  "Versions",
	}
	doc := loadDoc(t, openAPIYAML)
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
			// A field of another wire type must point to that type's schema.
			elem, target := f.Type, prop
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

// TestExamplesAreTheExampleFiles: the document's examples are the files under
// examples/ that the README and the integration tests use, byte for byte.
func TestExamplesAreTheExampleFiles(t *testing.T) {
	root := moduleRoot(t)
	doc := loadDoc(t, openAPIYAML)
	for example, file := range map[string]string{
		"helloRequest":      "hello.py",
		"pandasSumRequest":  "pandas_sum.py",
		"numpyStatsRequest": "numpy_stats.py",
		"osInfoRequest":     "os_info.py",
		"noMainRequest":     "no_main.py",
	} {
		want, err := os.ReadFile(filepath.Join(root, "examples", file))
		if err != nil {
			t.Fatal(err)
		}
		ex := doc.Components.Examples[example]
		if ex == nil {
			t.Errorf("components.examples has no %s (examples/%s)", example, file)
			continue
		}
		value, _ := ex.Value.Value.(map[string]any)
		if got, _ := value["script"].(string); got != string(want) {
			t.Errorf("components.examples.%s.value.script differs from examples/%s:\n got %q\nwant %q", example, file, got, want)
		}
	}

	raw, err := os.ReadFile(filepath.Join(root, "examples", "pubsub-event.json"))
	if err != nil {
		t.Fatal(err)
	}
	var want any
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	body := doc.Paths.Value("/").Post.RequestBody.Value.Content["application/json"]
	if got := body.Examples["hello"].Value.Value; !reflect.DeepEqual(got, want) {
		t.Errorf("POST / example hello differs from examples/pubsub-event.json:\n got %v\nwant %v", got, want)
	}
}

// stringEnum is a schema's enum, or its const as a one-value enum.
func stringEnum(t *testing.T, s *openapi3.Schema) []string {
	t.Helper()
	values := s.Enum
	if s.Const != nil {
		values = append(values, s.Const)
	}
	var out []string
	for _, v := range values {
		str, ok := v.(string)
		if !ok {
			t.Fatalf("enum value %v is not a string", v)
		}
		out = append(out, str)
	}
	if len(out) == 0 {
		t.Fatal("schema has neither enum nor const")
	}
	return out
}

// moduleRoot is the directory of the go.mod this package belongs to.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// errorTypeConstants finds, in every non-test Go file of the module under
// root, the string constants declared with a type named ErrorType (of the
// declaring package or another: executor.ErrorType), written either as
// `X ErrorType = "v"` or as `X = ErrorType("v")`. It maps each value to where
// it is declared. It parses rather than imports, so a constant in any
// package, the transport's included wherever it lives, is found.
func errorTypeConstants(t *testing.T, root string) map[string]string {
	t.Helper()
	isErrorType := func(e ast.Expr) bool {
		switch e := e.(type) {
		case *ast.Ident:
			return e.Name == "ErrorType"
		case *ast.SelectorExpr:
			return e.Sel.Name == "ErrorType"
		}
		return false
	}
	stringLit := func(e ast.Expr) (string, bool) {
		lit, ok := e.(*ast.BasicLit)
		if !ok || lit.Kind != token.STRING {
			return "", false
		}
		s, err := strconv.Unquote(lit.Value)
		return s, err == nil
	}

	found := map[string]string{}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path == root {
				return nil
			}
			// Hidden directories, test data, build output and nested modules
			// are not this module's code.
			if strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata" || name == "vendor" || name == "bin" {
				return filepath.SkipDir
			}
			if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			return nil
		}
		file, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		for _, decl := range file.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.CONST {
				continue
			}
			for _, spec := range gen.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, value := range vs.Values {
					s, ok := "", false
					switch {
					case vs.Type != nil && isErrorType(vs.Type):
						s, ok = stringLit(value)
					default:
						if call, isCall := value.(*ast.CallExpr); isCall && isErrorType(call.Fun) && len(call.Args) == 1 {
							s, ok = stringLit(call.Args[0])
						}
					}
					if ok {
						rel, _ := filepath.Rel(root, path)
						found[s] = rel + ": " + vs.Names[i].Name
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("walking the module: %v", err)
	}
	return found
}

// A JSON-RPC response a client sends to /mcp may carry any result, as the
// server accepts it (mcpserver's TestResponsesAndNotificationsAreAcceptedWith202).
func TestJSONRPCMessageAcceptsAnyResult(t *testing.T) {
	doc := loadDoc(t, openAPIYAML)
	schema := doc.Components.Schemas["JSONRPCMessage"].Value
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"result":[1,2,3]}`,
		`{"jsonrpc":"2.0","id":1,"result":"done"}`,
		`{"jsonrpc":"2.0","id":1,"result":{}}`,
		`{"jsonrpc":"2.0","method":"notifications/initialized"}`,
	} {
		var v any
		if err := json.Unmarshal([]byte(body), &v); err != nil {
			t.Fatal(err)
		}
		if err := schema.VisitJSON(v, openapi3.EnableJSONSchema2020()); err != nil {
			t.Errorf("JSONRPCMessage refuses %s: %v", body, err)
		}
	}
}
