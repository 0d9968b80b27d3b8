package testsupport

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/pyexec/pyexec/api"
)

// RunAsCell runs script, which binds main as /execute's scripts do, as a
// cell of a session of its own: the script's code with main() as the
// cell's last expression, so that the cell answers what POST /execute
// answers for the script (but for a value without a JSON form, which a
// cell answers as text). The session is deleted afterwards, unless the
// cell ended it.
func (s *Service) RunAsCell(t testing.TB, script string) Response {
	t.Helper()
	created := s.Post(t, "/sessions", "application/json", []byte(`{}`))
	if created.Status != http.StatusCreated {
		t.Fatalf("POST /sessions = %d %s, want 201", created.Status, Clip(created.Raw))
	}
	var session api.Session
	if err := json.Unmarshal(created.Raw, &session); err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(api.Cell{Code: script + "\n\nmain()\n"})
	if err != nil {
		t.Fatal(err)
	}
	r := s.Post(t, "/sessions/"+session.ID+"/execute", "application/json", body)
	req, err := http.NewRequest(http.MethodDelete, s.URL+"/sessions/"+session.ID, bytes.NewReader(nil))
	if err != nil {
		t.Fatal(err)
	}
	if end := Do(t, req); end.Status != http.StatusNoContent && end.ErrorType != string(api.ErrorTypeSessionNotFound) {
		t.Fatalf("DELETE /sessions/{id} = %d %s, want 204, or 404 for a session the cell ended", end.Status, Clip(end.Raw))
	}
	return r
}
