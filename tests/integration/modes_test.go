//go:build integration

package integration

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/pyexec/pyexec/internal/pyprobe"
	"github.com/pyexec/pyexec/internal/testsupport"
)

// The rest of the suite runs the default mode. Every mode a deployment can
// choose must keep the same contract: the outcomes and the isolation facts
// that differ most between a fresh jail and a forked interpreter.
func TestEveryModeKeepsTheContract(t *testing.T) {
	for _, mode := range []string{"cold", "pool", "fork"} {
		t.Run(mode, func(t *testing.T) {
			canary := "pyexec-mode-canary-" + uuid.NewString()
			t.Setenv("PYEXEC_TEST_CANARY", canary)
			// The service's wall clock is roomy, so that on a loaded machine
			// only the limit a row is about ends it; the timeout row asks for
			// 2 seconds itself.
			ts := testsupport.StartService(t, map[string]string{"PYEXEC_MODE": mode, "PYEXEC_TIMEOUT_SECONDS": "30", "PYEXEC_QUEUE": "64"})

			t.Run("outcomes", func(t *testing.T) {
				for _, tt := range []struct {
					name   string
					script string
					want   failure // zero for success
					result string
					limits string // the request's "limits", if any
				}{
					{name: "a pandas result", script: "import pandas as pd\n\ndef main():\n    print('sum')\n    return int(pd.Series([1, 2, 3]).sum())\n", result: "6"},
					{name: "an exact big integer", script: "def main():\n    return 2**64 + 1\n", result: "18446744073709551617"},
					{name: "no main", script: "x = 1\n", want: failure{400, "no_main", "Script must contain a 'def main()' function"}},
					{name: "an exception", script: "def main():\n    raise ValueError('boom')\n", want: failure{400, "exception", "ValueError: boom"}},
					{name: "a timeout", script: "def main():\n    while True:\n        pass\n", limits: `{"timeout_seconds": 2}`, want: failure{400, "timeout", "Execution timed out after 2 seconds"}},
					{name: "the memory limit", script: "def main():\n    return len(bytearray(4 << 30))\n", want: failure{400, "memory_limit", "Memory limit exceeded (512 MB)"}},
					{name: "a segfault", script: "import ctypes\n\ndef main():\n    ctypes.string_at(0)\n", want: failure{400, "exited", "Script was killed by signal SIGSEGV"}},
					{name: "an exit", script: "import os\n\ndef main():\n    os._exit(4)\n", want: failure{400, "exited", "Script exited with code 4 before main() returned"}},
				} {
					t.Run(tt.name, func(t *testing.T) {
						t.Parallel()
						var r testsupport.Response
						if tt.limits == "" {
							r = ts.Execute(t, tt.script)
						} else {
							body, err := json.Marshal(map[string]any{"script": tt.script, "limits": json.RawMessage(tt.limits)})
							if err != nil {
								t.Fatal(err)
							}
							r = ts.Post(t, "/execute", "application/json", body)
						}
						if tt.want.status == 0 {
							if r.Status != 200 || string(r.Result) != tt.result {
								t.Errorf("%s mode: POST /execute %s = %d %s, want 200 %s", mode, tt.name, r.Status, testsupport.Clip(r.Raw), tt.result)
							}
							return
						}
						checkFailure(t, mode+" mode: "+tt.name, r, tt.want)
					})
				}
			})

			t.Run("isolation", func(t *testing.T) {
				script := pyprobe.ProcStatus + `import os, socket

def main():
    status = proc_status()
    with open('/proc/net/dev') as f:
        interfaces = sorted(line.split(':')[0].strip() for line in f.readlines()[2:])
    try:
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        inet = True
    except OSError:
        inet = False
    with open('/proc/self/environ', 'rb') as f:
        environ = f.read().decode(errors='replace')
    leftover = os.listdir('/tmp')
    with open('/tmp/left-behind', 'w') as f:
        f.write('x')
    try:
        open('/usr/pyexec-write-test', 'w')
        usr_writable = True
    except OSError:
        usr_writable = False
    return {'uid': os.getuid(), 'cap_eff': status['CapEff'], 'seccomp': status['Seccomp'],
            'interfaces': interfaces, 'inet': inet, 'environ': environ + repr(dict(os.environ)),
            'tmp': leftover, 'usr_writable': usr_writable, 'hostname': socket.gethostname()}
`
				for i := 0; i < 2; i++ {
					var got struct {
						UID         int      `json:"uid"`
						CapEff      string   `json:"cap_eff"`
						Seccomp     string   `json:"seccomp"`
						Interfaces  []string `json:"interfaces"`
						Inet        bool     `json:"inet"`
						Environ     string   `json:"environ"`
						Tmp         []string `json:"tmp"`
						USRWritable bool     `json:"usr_writable"`
						Hostname    string   `json:"hostname"`
					}
					r := ts.Execute(t, script)
					if r.Status != 200 || json.Unmarshal(r.Result, &got) != nil {
						t.Fatalf("%s mode: POST /execute isolation facts = %d %s, want 200", mode, r.Status, testsupport.Clip(r.Raw))
					}
					if got.UID != 65534 || got.CapEff != "0000000000000000" || got.Seccomp != "2" {
						t.Errorf("%s mode: uid %d CapEff %s Seccomp %s, want 65534, no capabilities and a seccomp filter", mode, got.UID, got.CapEff, got.Seccomp)
					}
					if len(got.Interfaces) != 1 || got.Interfaces[0] != "lo" || got.Inet {
						t.Errorf("%s mode: interfaces %v, AF_INET socket %v; want only lo and no socket", mode, got.Interfaces, got.Inet)
					}
					if strings.Contains(got.Environ, canary) {
						t.Errorf("%s mode: the service's environment is visible: %s", mode, got.Environ)
					}
					if len(got.Tmp) != 0 {
						t.Errorf("%s mode: execution %d found %v in /tmp, want a fresh /tmp", mode, i+1, got.Tmp)
					}
					if got.USRWritable || got.Hostname != "pyexec" {
						t.Errorf("%s mode: /usr writable %v, hostname %q; want read-only and pyexec", mode, got.USRWritable, got.Hostname)
					}
				}
			})
		})
	}
}
