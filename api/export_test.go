package api

// For the tests of package api_test, which import executor (and so, through
// it, api) and cannot be in package api.
var (
	OpenAPIYAML = openAPIYAML
	LoadDoc     = loadDoc
)
