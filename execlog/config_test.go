package execlog

import (
	"context"
	"errors"
	"testing"
)

func TestConfigFromEnvReadsTheLoggingVariables(t *testing.T) {
	env := map[string]string{
		"PYEXEC_LOG":           " stdout ",
		"GOOGLE_CLOUD_PROJECT": "proj",
		"K_SERVICE":            "svc",
		"K_REVISION":           "svc-00001",
		"K_CONFIGURATION":      "svc-conf",
	}
	got := ConfigFromEnv(func(k string) string { return env[k] })
	want := Config{Mode: "stdout", ProjectID: "proj", Service: "svc", Revision: "svc-00001", Configuration: "svc-conf"}
	if got.Mode != want.Mode || got.ProjectID != want.ProjectID || got.Service != want.Service ||
		got.Revision != want.Revision || got.Configuration != want.Configuration {
		t.Errorf("ConfigFromEnv = %+v, want %+v", got, want)
	}
}

func TestNewChoosesTheMode(t *testing.T) {
	srv := startFakeLogging(t)
	tests := []struct {
		name        string
		cfg         Config
		metadata    map[string]string // nil: the test fails if it is asked
		wantCloud   bool
		wantProject string
		wantErr     error
	}{
		{
			name: "local runs write to stdout",
			cfg:  Config{},
		},
		{
			name:        "a project alone is not Cloud Run, so stdout, but traces know the project",
			cfg:         Config{ProjectID: "proj"},
			wantProject: "proj",
		},
		{
			name:        "Cloud Run with a project writes to the API",
			cfg:         Config{Service: "svc", ProjectID: "proj", Region: "us-central1"},
			wantCloud:   true,
			wantProject: "proj",
		},
		{
			name:        "Cloud Run without a project asks the metadata server",
			cfg:         Config{Service: "svc"},
			metadata:    map[string]string{"project/project-id": "meta-proj", "instance/region": "projects/123/regions/us-east1"},
			wantCloud:   true,
			wantProject: "meta-proj",
		},
		{
			name:     "Cloud Run with no project anywhere falls back to stdout",
			cfg:      Config{Service: "svc"},
			metadata: map[string]string{},
		},
		{
			name:        "PYEXEC_LOG=stdout wins on Cloud Run",
			cfg:         Config{Mode: ModeStdout, Service: "svc", ProjectID: "proj"},
			wantProject: "proj",
		},
		{
			name:        "PYEXEC_LOG=cloud works off Cloud Run with a project",
			cfg:         Config{Mode: ModeCloud, ProjectID: "proj"},
			wantCloud:   true,
			wantProject: "proj",
		},
		{
			name:    "PYEXEC_LOG=cloud without a project is an error",
			cfg:     Config{Mode: ModeCloud},
			wantErr: ErrNoProject,
		},
		{
			name:    "an unknown mode is an error",
			cfg:     Config{Mode: "syslog"},
			wantErr: ErrUnknownMode,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.ClientOptions = srv.clientOptions()
			cfg.Metadata = noMetadata(t)
			if tt.metadata != nil {
				cfg.Metadata = func(_ context.Context, path string) (string, error) {
					if v, ok := tt.metadata[path]; ok {
						return v, nil
					}
					return "", errors.New("not defined")
				}
			}
			l, err := New(context.Background(), cfg)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("New(%+v) = %v, want %v", tt.cfg, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New(%+v) = %v", tt.cfg, err)
			}
			t.Cleanup(func() { l.Close() })
			if got := l.cloud != nil; got != tt.wantCloud {
				t.Errorf("New(%+v) cloud mode = %v, want %v", tt.cfg, got, tt.wantCloud)
			}
			if l.ProjectID() != tt.wantProject {
				t.Errorf("ProjectID() = %q, want %q", l.ProjectID(), tt.wantProject)
			}
		})
	}
}
