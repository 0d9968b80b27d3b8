package api

import (
	_ "embed"
	"fmt"
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
