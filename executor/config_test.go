package executor

import (
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/pyexec/pyexec/api"
)

// envOf is a getenv over a fixed map.
func envOf(m map[string]string) func(string) string {
	return func(name string) string { return m[name] }
}

func TestConfigFromEnvWithNothingSetIsTheSpecDefaults(t *testing.T) {
	cfg, err := ConfigFromEnv(envOf(nil))
	if err != nil {
		t.Fatalf("ConfigFromEnv(empty) = %v, want the defaults", err)
	}
	want := Config{
		NsjailPath:     "/opt/pyexec/bin/nsjail",
		PythonPath:     "/opt/pyexec/venv/bin/python3",
		Timeout:        30 * time.Second,
		MemoryBytes:    512 << 20,
		MaxScriptBytes: 100 * 1024,
		MaxOutputBytes: 1 << 20,
		MaxResultBytes: 4 << 20,
		// PYEXEC_MAX_INPUT_FILES_BYTES, PYEXEC_MAX_OUTPUT_FILES_BYTES
		MaxInputFilesBytes:  8 << 20,
		MaxOutputFilesBytes: 8 << 20,
		MaxProcs:            64,
		TmpBytes:            64 << 20,
		Concurrency:         runtime.NumCPU(),
		Queue:               4 * runtime.NumCPU(),
		Mode:                ModeAuto,
		CgroupRoot:          "/sys/fs/cgroup",
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("ConfigFromEnv(empty) = %+v, want %+v", cfg, want)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("the defaults do not validate: %v", err)
	}
}

func TestConfigFromEnvReadsEveryVariable(t *testing.T) {
	cfg, err := ConfigFromEnv(envOf(map[string]string{
		"PYEXEC_NSJAIL":                 "/usr/local/bin/nsjail",
		"PYEXEC_PYTHON":                 " /usr/bin/python3 ",
		"PYEXEC_TIMEOUT_SECONDS":        "2",
		"PYEXEC_MEMORY_MB":              "256",
		"PYEXEC_MAX_SCRIPT_BYTES":       "2048",
		"PYEXEC_MAX_OUTPUT_BYTES":       "4096",
		"PYEXEC_MAX_RESULT_BYTES":       "8192",
		"PYEXEC_MAX_INPUT_FILES_BYTES":  "1024",
		"PYEXEC_MAX_OUTPUT_FILES_BYTES": "0",
		"PYEXEC_MAX_PROCS":              "8",
		"PYEXEC_TMP_MB":                 "16",
		"PYEXEC_CONCURRENCY":            "3",
		"PYEXEC_MODE":                   " COLD ",
	}))
	if err != nil {
		t.Fatalf("ConfigFromEnv = %v", err)
	}
	want := Config{
		NsjailPath:          "/usr/local/bin/nsjail",
		PythonPath:          "/usr/bin/python3",
		Timeout:             2 * time.Second,
		MemoryBytes:         256 << 20,
		MaxScriptBytes:      2048,
		MaxOutputBytes:      4096,
		MaxResultBytes:      8192,
		MaxInputFilesBytes:  1024,
		MaxOutputFilesBytes: 0,
		MaxProcs:            8,
		TmpBytes:            16 << 20,
		Concurrency:         3,
		Queue:               12, // 4 × the configured concurrency, not the CPUs'
		Mode:                ModeCold,
		CgroupRoot:          "/sys/fs/cgroup",
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("ConfigFromEnv = %+v, want %+v", cfg, want)
	}
}

func TestConfigFromEnvTakesAQueueOfZero(t *testing.T) {
	cfg, err := ConfigFromEnv(envOf(map[string]string{"PYEXEC_QUEUE": "0"}))
	if err != nil || cfg.Queue != 0 {
		t.Fatalf("ConfigFromEnv(PYEXEC_QUEUE=0) = %+v, %v; want queue 0", cfg, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Errorf("a queue of 0 does not validate: %v", err)
	}
}

func TestConfigFromEnvRefusesMalformedNumbers(t *testing.T) {
	for _, tt := range []struct{ name, value string }{
		{"PYEXEC_TIMEOUT_SECONDS", "30s"},
		{"PYEXEC_MEMORY_MB", "1.5"},
		{"PYEXEC_MAX_SCRIPT_BYTES", "100KB"},
		{"PYEXEC_MAX_OUTPUT_BYTES", "lots"},
		{"PYEXEC_MAX_RESULT_BYTES", "0x10"},
		{"PYEXEC_MAX_INPUT_FILES_BYTES", "8MiB"},
		{"PYEXEC_MAX_OUTPUT_FILES_BYTES", "8e6"},
		{"PYEXEC_MAX_PROCS", "sixty-four"},
		{"PYEXEC_TMP_MB", "64MB"},
		{"PYEXEC_CONCURRENCY", "2 cores"},
		{"PYEXEC_QUEUE", "-"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ConfigFromEnv(envOf(map[string]string{tt.name: tt.value}))
			if err == nil || !strings.Contains(err.Error(), tt.name) || !strings.Contains(err.Error(), tt.value) {
				t.Errorf("ConfigFromEnv(%s=%q) = %v, want an error naming the variable and its value", tt.name, tt.value, err)
			}
		})
	}
	t.Run("every malformed variable is reported at once", func(t *testing.T) {
		_, err := ConfigFromEnv(envOf(map[string]string{"PYEXEC_MEMORY_MB": "x", "PYEXEC_MAX_PROCS": "y"}))
		if err == nil || !strings.Contains(err.Error(), "PYEXEC_MEMORY_MB") || !strings.Contains(err.Error(), "PYEXEC_MAX_PROCS") {
			t.Errorf("ConfigFromEnv with two malformed variables = %v, want both named", err)
		}
	})
}

func TestValidateNamesTheVariableOfEachProblem(t *testing.T) {
	valid, err := ConfigFromEnv(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		mutate  func(*Config)
		wantVar string
	}{
		{"a relative nsjail path", func(c *Config) { c.NsjailPath = "nsjail" }, "PYEXEC_NSJAIL"},
		{"a relative python path", func(c *Config) { c.PythonPath = "venv/bin/python3" }, "PYEXEC_PYTHON"},
		{"a timeout under a second", func(c *Config) { c.Timeout = 0 }, "PYEXEC_TIMEOUT_SECONDS"},
		{"a negative timeout", func(c *Config) { c.Timeout = -time.Second }, "PYEXEC_TIMEOUT_SECONDS"},
		{"a timeout over an hour", func(c *Config) { c.Timeout = 3601 * time.Second }, "PYEXEC_TIMEOUT_SECONDS"},
		{"memory under 64 MiB", func(c *Config) { c.MemoryBytes = 63 << 20 }, "PYEXEC_MEMORY_MB"},
		{"memory over 64 GiB", func(c *Config) { c.MemoryBytes = 65 << 30 }, "PYEXEC_MEMORY_MB"},
		{"a zero script size", func(c *Config) { c.MaxScriptBytes = 0 }, "PYEXEC_MAX_SCRIPT_BYTES"},
		{"a zero output cap", func(c *Config) { c.MaxOutputBytes = 0 }, "PYEXEC_MAX_OUTPUT_BYTES"},
		{"a negative result cap", func(c *Config) { c.MaxResultBytes = -1 }, "PYEXEC_MAX_RESULT_BYTES"},
		{"a negative input files cap", func(c *Config) { c.MaxInputFilesBytes = -1 }, "PYEXEC_MAX_INPUT_FILES_BYTES"},
		{"input files over 1 GiB", func(c *Config) { c.MaxInputFilesBytes = 1<<30 + 1 }, "PYEXEC_MAX_INPUT_FILES_BYTES"},
		{"a negative output files cap", func(c *Config) { c.MaxOutputFilesBytes = -1 }, "PYEXEC_MAX_OUTPUT_FILES_BYTES"},
		{"output files over 64 MiB", func(c *Config) { c.MaxOutputFilesBytes = 64<<20 + 1 }, "PYEXEC_MAX_OUTPUT_FILES_BYTES"},
		{"zero processes", func(c *Config) { c.MaxProcs = 0 }, "PYEXEC_MAX_PROCS"},
		{"a /tmp under 1 MiB", func(c *Config) { c.TmpBytes = 0 }, "PYEXEC_TMP_MB"},
		{"a concurrency of zero", func(c *Config) { c.Concurrency = 0 }, "PYEXEC_CONCURRENCY"},
		{"a negative queue", func(c *Config) { c.Queue = -1 }, "PYEXEC_QUEUE"},
		{"an unknown mode", func(c *Config) { c.Mode = "warm-ish" }, "PYEXEC_MODE"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := valid
			tt.mutate(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.wantVar) {
				t.Errorf("Validate(%s) = %v, want an error naming %s", tt.name, err, tt.wantVar)
			}
			if _, err := New(cfg); err == nil {
				t.Errorf("New(%s) succeeded, want it to refuse an invalid configuration", tt.name)
			}
		})
	}
	t.Run("every problem is reported at once", func(t *testing.T) {
		cfg := valid
		cfg.Timeout, cfg.MaxProcs, cfg.Concurrency = 0, 0, 0
		err := cfg.Validate()
		for _, name := range []string{"PYEXEC_TIMEOUT_SECONDS", "PYEXEC_MAX_PROCS", "PYEXEC_CONCURRENCY"} {
			if err == nil || !strings.Contains(err.Error(), name) {
				t.Errorf("Validate with three problems = %v, want %s named", err, name)
			}
		}
	})
	t.Run("the bounds themselves are valid", func(t *testing.T) {
		for _, mutate := range []func(*Config){
			func(c *Config) { c.Timeout = time.Second },
			func(c *Config) { c.Timeout = time.Hour },
			func(c *Config) { c.MemoryBytes = 64 << 20 },
			func(c *Config) { c.MaxProcs = 1 },
			func(c *Config) { c.Concurrency, c.Queue = 1, 0 },
			func(c *Config) { c.MaxInputFilesBytes, c.MaxOutputFilesBytes = 0, 0 },
			func(c *Config) { c.MaxInputFilesBytes, c.MaxOutputFilesBytes = 1<<30, 64<<20 },
		} {
			cfg := valid
			mutate(&cfg)
			if err := cfg.Validate(); err != nil {
				t.Errorf("Validate(%+v) = %v, want a configuration at the bounds to be valid", cfg, err)
			}
		}
	})
}

func TestRequestsAreValidatedBeforeAnythingRuns(t *testing.T) {
	cfg, err := ConfigFromEnv(envOf(nil))
	if err != nil {
		t.Fatal(err)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pad := func(n int) string { return "def main():\n    return 1\n#" + strings.Repeat("x", n-26) }
	tests := []struct {
		name    string
		script  string
		wantErr string // "" for valid
	}{
		{"an empty script", "", "Script must be a non-empty string"},
		{"a blank script", " \n\t\r\n", "Script must be a non-empty string"},
		{"a NUL byte", "def main():\n    return 1\x00\n", "Script must not contain NUL bytes"},
		{"invalid UTF-8", "def main():\n    return '\xff'\n", "Script must be valid UTF-8"},
		{"one byte over 100 KiB", pad(100*1024 + 1), "Script too large (max 100KB)"},
		{"exactly 100 KiB", pad(100 * 1024), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := e.validateScript(tt.script)
			if tt.wantErr == "" {
				if err != nil {
					t.Errorf("validateScript(%s) = %v, want it accepted", tt.name, err)
				}
				return
			}
			if TypeOf(err) != api.ErrorTypeInvalidRequest || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("validateScript(%s) = %v, want invalid_request %q", tt.name, err, tt.wantErr)
			}
		})
	}
	// Before Start, nothing runs: a valid script is refused, not run.
	if _, err := e.Run(t.Context(), Request{Script: "def main():\n    return 1\n"}); TypeOf(err) != api.ErrorTypeSandboxUnavailable {
		t.Errorf("Run before Start = %v, want sandbox_unavailable", err)
	}
}
