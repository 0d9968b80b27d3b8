package api

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

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
