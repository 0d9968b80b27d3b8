package api

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"sigs.k8s.io/yaml"
)

// openAPIYAML is the OpenAPI 3.1 document of both functions, as written.
//
//go:embed openapi.yaml
var openAPIYAML []byte

// openAPIJSON converts the document once, on first use. The embedded YAML
// is checked by this package's tests, so a failure here is a build that
// skipped them.
var openAPIJSON = sync.OnceValue(func() []byte {
	doc, err := yaml.YAMLToJSON(openAPIYAML)
	if err != nil {
		panic(fmt.Sprintf("api: the embedded openapi.yaml is not valid YAML: %v", err))
	}
	return doc
})

// OpenAPIJSON returns the OpenAPI 3.1 document of pyexec's API (api/openapi.yaml)
// as JSON, the body of GET /openapi.json. Each call returns a fresh copy the
// caller may keep or change.
func OpenAPIJSON() []byte {
	return append([]byte(nil), openAPIJSON()...)
}

// httpMethods are the operations a path item may hold.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// FunctionOpenAPIJSON returns the OpenAPI document of what one function
// serves: the operations tagged with its name ("Execute" or
// "ExecuteEvent"), and no path with none of them. A tester given the
// document a function serves finds only operations that function answers.
// Each call returns a fresh copy.
func FunctionOpenAPIJSON(function string) []byte {
	var doc map[string]any
	if err := json.Unmarshal(openAPIJSON(), &doc); err != nil {
		panic(fmt.Sprintf("api: the embedded document is not JSON: %v", err))
	}
	paths, _ := doc["paths"].(map[string]any)
	for path, item := range paths {
		ops, _ := item.(map[string]any)
		kept := 0
		for _, method := range httpMethods {
			op, ok := ops[method].(map[string]any)
			if !ok {
				continue
			}
			if !slices.Contains(tagsOf(op), function) {
				delete(ops, method)
				continue
			}
			kept++
		}
		if kept == 0 {
			delete(paths, path)
		}
	}
	out, err := json.Marshal(doc)
	if err != nil {
		panic(fmt.Sprintf("api: encoding the document of %s: %v", function, err))
	}
	return out
}

func tagsOf(op map[string]any) []string {
	list, _ := op["tags"].([]any)
	var tags []string
	for _, t := range list {
		if s, ok := t.(string); ok {
			tags = append(tags, s)
		}
	}
	return tags
}
