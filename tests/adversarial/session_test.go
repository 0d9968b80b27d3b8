//go:build integration

package adversarial

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/pyexec/pyexec/api"
	"github.com/pyexec/pyexec/internal/testsupport"
)

// The session's own protocol, attacked from a cell: the cell shares its
// process with the loop that runs cells, so it can forge a report on its
// report descriptor, tell the executor it is done before it is, or take the
// control socket the next cell comes on. What it must never reach is
// another answer than one of its own making or the end of its own session: no
// fault of the service, no body that is not strict JSON, nothing that
// outlives the session.
func TestAdversarialSessionProtocol(t *testing.T) {
	ts := testsupport.StartService(t, map[string]string{"PYEXEC_CONCURRENCY": "4"})
	// reportFD finds the cell's report descriptor: the highest open
	// write end of a pipe, the last of the four the cell came with.
	const reportFD = "import os, socket, stat, threading, time\n" +
		"def report_fd():\n" +
		"    found = -1\n" +
		"    for fd in range(4, 256):\n" +
		"        try:\n" +
		"            if stat.S_ISFIFO(os.fstat(fd).st_mode):\n" +
		"                found = fd\n" +
		"        except OSError:\n" +
		"            pass\n" +
		"    return found\n"
	for _, tc := range []struct{ name, code string }{
		{"a forged report, then exit", reportFD + "os.write(report_fd(), b'{\"ok\": true, \"result\": \"forged\"}')\nos._exit(0)"},
		{"a forged report before the real one", reportFD + "os.write(report_fd(), b'{\"ok\": true, \"result\": \"forged\"}')\n'real'"},
		{"a forged error past the caps", reportFD + "os.write(report_fd(), b'{\"ok\": false, \"error_type\": \"busy\", \"error\": \"' + b'x' * 100000 + b'\"}')\nos._exit(0)"},
		{"done said early", reportFD + "socket.socket(fileno=os.dup(3)).send(b'done')\ntime.sleep(0.5)\n'real'"},
		{"junk on the control socket", reportFD + "s = socket.socket(fileno=os.dup(3))\nfor _ in range(1000):\n    s.send(b'cell')\n'real'"},
		{"the control socket closed", "import os\nos.close(3)\n'real'"},
		{"the next cell taken by a thread", reportFD + "s = socket.socket(fileno=os.dup(3))\nthreading.Thread(target=lambda: socket.recv_fds(s, 16, 4), daemon=True).start()\n'real'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			created := ts.Post(t, "/sessions", "application/json", []byte(`{"limits": {"timeout_seconds": 3}}`))
			var s api.Session
			if created.Status != http.StatusCreated || json.Unmarshal(created.Raw, &s) != nil {
				t.Fatalf("POST /sessions = %d %s", created.Status, testsupport.Clip(created.Raw))
			}
			for i, code := range []string{tc.code, "'next'"} {
				body, _ := json.Marshal(api.Cell{Code: code})
				r := ts.Post(t, "/sessions/"+s.ID+"/execute", "application/json", body)
				var f api.Failure
				_ = json.Unmarshal(r.Raw, &f)
				switch {
				case !json.Valid(r.Raw):
					t.Fatalf("cell %d answered a body that is not strict JSON: %q", i, testsupport.Clip(r.Raw))
				case r.Status == 200 && (string(r.Result) == `"real"` || string(r.Result) == `"next"`):
				case r.Status == 200 && string(r.Result) == `"forged"`:
					// A report the cell wrote and then exited on is its
					// own word, as a script's is.
				case r.Status == 400 && f.SessionEnded && f.ErrorType != string(api.ErrorTypeBusy):
					return // the cell ended its own session
				case r.Status == 404 && i == 1 && f.ErrorType == string(api.ErrorTypeSessionNotFound):
					return // the first cell ended it
				default:
					t.Fatalf("cell %d answered %d %s; want its own result or the end of its session", i, r.Status, testsupport.Clip(r.Raw))
				}
			}
		})
	}
	// The service is whole: a new session works.
	created := ts.Post(t, "/sessions", "application/json", []byte(`{}`))
	var s api.Session
	if created.Status != http.StatusCreated || json.Unmarshal(created.Raw, &s) != nil {
		t.Fatalf("POST /sessions after the attacks = %d %s", created.Status, testsupport.Clip(created.Raw))
	}
	if r := ts.Post(t, "/sessions/"+s.ID+"/execute", "application/json", []byte(`{"code": "1 + 1"}`)); r.Status != 200 || string(r.Result) != "2" {
		t.Fatalf("a cell after the attacks = %d %s", r.Status, testsupport.Clip(r.Raw))
	}
}
