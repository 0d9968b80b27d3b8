package api

import (
	"regexp"
	"slices"
	"strconv"
	"testing"
)

// The ErrorType constants are the document's ErrorType enum, value for value
// in both directions, and the document's table of error types gives each
// the status ErrorType.Status gives it.
func TestErrorTypesAreTheDocumentsEnum(t *testing.T) {
	doc := loadDoc(t, openAPIYAML)
	inDoc := stringEnum(t, doc.Components.Schemas["ErrorType"].Value)
	inCode := ErrorTypes()
	for _, v := range inCode {
		if !slices.Contains(inDoc, string(v)) {
			t.Errorf("error type %q is missing from components.schemas.ErrorType.enum", v)
		}
	}
	for _, v := range inDoc {
		if !slices.Contains(inCode, ErrorType(v)) {
			t.Errorf("components.schemas.ErrorType.enum has %q, which is no api.ErrorType constant", v)
		}
	}

	// statuses are the statuses the ErrorType description's table gives
	// each error type, from its rows "| `type` | status | when |".
	statuses := map[ErrorType][]int{}
	row := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| ([0-9]{3}) \\|")
	for _, m := range row.FindAllStringSubmatch(doc.Components.Schemas["ErrorType"].Value.Description, -1) {
		status, _ := strconv.Atoi(m[2])
		statuses[ErrorType(m[1])] = append(statuses[ErrorType(m[1])], status)
	}
	if len(statuses) == 0 {
		t.Fatal("the ErrorType description has no table of statuses")
	}
	for _, v := range inCode {
		if !slices.Contains(statuses[v], v.Status()) {
			t.Errorf("%q has status %d, but the ErrorType description's table gives %v", v, v.Status(), statuses[v])
		}
	}
}

func TestStatusAndRetryable(t *testing.T) {
	for _, tt := range []struct {
		t         ErrorType
		status    int
		retryable bool
	}{
		{ErrorTypeInvalidRequest, 400, false},
		{ErrorTypeException, 400, false},
		{ErrorTypeTimeout, 400, false},
		{ErrorTypeBusy, 503, true},
		{ErrorTypeSandboxUnavailable, 503, true},
		{ErrorTypeInternal, 500, false},
		{ErrorTypeNotFound, 404, false},
		{ErrorTypeMethodNotAllowed, 405, false},
		{ErrorTypeForbidden, 403, false},
		{ErrorTypeUnsupportedMediaType, 415, false},
		{"no_such_type", 500, false},
	} {
		if got, retry := tt.t.Status(), tt.t.Retryable(); got != tt.status || retry != tt.retryable {
			t.Errorf("%q: Status, Retryable = %d, %v; want %d, %v", tt.t, got, retry, tt.status, tt.retryable)
		}
	}
}
