//go:build integration

package integration

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/pyexec/pyexec/executor"
	"github.com/pyexec/pyexec/internal/testsupport"
)

// The checks of answers that the tests of this package share.

// failure is what a failing answer must look like.
type failure struct {
	status    int
	errorType string
	errPrefix string
}

// checkFailure fails t unless r is the failure want, with the fields every
// answer carries.
func checkFailure(t *testing.T, what string, r testsupport.Response, want failure) {
	t.Helper()
	if r.Status != want.status || r.ErrorType != want.errorType || !strings.HasPrefix(r.Error, want.errPrefix) {
		t.Errorf("POST /execute %s = %d %s, want %d error_type %q error starting %q",
			what, r.Status, testsupport.Clip(r.Raw), want.status, want.errorType, want.errPrefix)
	}
	checkCommonFields(t, what, r)
	if r.Stdout == nil {
		t.Errorf("POST /execute %s = %s, want a stdout field on failures too", what, testsupport.Clip(r.Raw))
	}
	if r.Result != nil {
		t.Errorf("POST /execute %s = %s, want no result on a failure", what, testsupport.Clip(r.Raw))
	}
}

// checkOK fails t unless r is a success whose result is exactly wantResult
// (compared as text) and whose stdout is wantStdout.
func checkOK(t *testing.T, what string, r testsupport.Response, wantResult, wantStdout string) {
	t.Helper()
	if r.Status != http.StatusOK || string(r.Result) != wantResult || r.Stdout == nil || *r.Stdout != wantStdout {
		t.Errorf("POST /execute %s = %d %s, want 200 with result %s and stdout %q", what, r.Status, testsupport.Clip(r.Raw), wantResult, wantStdout)
	}
	checkCommonFields(t, what, r)
}

// checkCommonFields checks what every answer carries: an execution ID and a
// JSON content type. (testsupport.Do already refuses bodies that are not
// strict JSON.)
func checkCommonFields(t *testing.T, what string, r testsupport.Response) {
	t.Helper()
	if id := r.Header.Get("X-Execution-Id"); uuid.Validate(id) != nil {
		t.Errorf("%s: X-Execution-Id = %q, want a UUID on every response", what, id)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type = %q, want application/json", what, ct)
	}
}

// checkHealthz fails t unless r is /healthz's 200: status ok and the
// isolation and versions in force.
func checkHealthz(t *testing.T, what string, r testsupport.Response) {
	t.Helper()
	var body struct {
		Status    string             `json:"status"`
		Isolation executor.Isolation `json:"isolation"`
		Versions  executor.Versions  `json:"versions"`
	}
	if err := json.Unmarshal(r.Raw, &body); err != nil {
		t.Fatalf("%s body %s: %v", what, r.Raw, err)
	}
	if r.Status != http.StatusOK || body.Status != "ok" {
		t.Errorf("%s = %d %s, want 200 status ok", what, r.Status, r.Raw)
	}
	if len(body.Isolation.Namespaces) < 6 || !body.Isolation.Seccomp || body.Isolation.Limits == "" {
		t.Errorf("%s isolation = %+v, want namespaces, seccomp and a limit kind", what, body.Isolation)
	}
	if !strings.HasPrefix(body.Versions.Python, "3.11") || body.Versions.Pandas == "" || body.Versions.Numpy == "" || body.Versions.Nsjail == "" {
		t.Errorf("%s versions = %+v, want Python 3.11, pandas, numpy and nsjail", what, body.Versions)
	}
	checkCommonFields(t, what, r)
}

// deref is what s points to, or "" for nil.
func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
