package execlog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"cloud.google.com/go/compute/metadata"
	"google.golang.org/api/option"
)

// Modes of a Logger: through the Cloud Logging API, or as structured lines
// on stdout.
const (
	ModeCloud  = "cloud"
	ModeStdout = "stdout"
)

var (
	// ErrNoProject means cloud mode was asked for but no project ID is known.
	ErrNoProject = errors.New("no google cloud project for cloud logging: set GOOGLE_CLOUD_PROJECT")
	// ErrUnknownMode means PYEXEC_LOG is neither "cloud" nor "stdout".
	ErrUnknownMode = errors.New("unknown log mode")
)

// metadataTimeout bounds the project and region look-ups at startup, so a
// missing metadata server delays startup by seconds, not minutes.
const metadataTimeout = 5 * time.Second

// Config says where a Logger writes.
type Config struct {
	// Mode is ModeCloud, ModeStdout, or "" to choose: cloud on Cloud Run
	// (Service set) when a project is known, stdout otherwise.
	Mode string
	// ProjectID is the project entries are written to and traces belong to.
	// On Cloud Run it is looked up when empty.
	ProjectID string
	// Service, Revision and Configuration are Cloud Run's K_SERVICE,
	// K_REVISION and K_CONFIGURATION: the labels of the cloud_run_revision
	// resource. A Service means the process runs on Cloud Run.
	Service       string
	Revision      string
	Configuration string
	// Region is the resource's location; on Cloud Run it is looked up when
	// empty.
	Region string
	// Out receives the lines in stdout mode; nil means os.Stdout.
	Out io.Writer
	// ClientOptions are passed to the Cloud Logging client (tests point it
	// at a local server).
	ClientOptions []option.ClientOption
	// OnError receives every failure to write an entry; nil prints it to
	// stderr. Logging failures never reach an execution.
	OnError func(error)
	// Metadata reads a value of the metadata server, e.g.
	// "project/project-id". It is called only on Cloud Run, for what the
	// environment does not say; nil means the real metadata server.
	Metadata func(ctx context.Context, path string) (string, error)
}

// ConfigFromEnv reads the logging configuration from the environment:
// PYEXEC_LOG (cloud|stdout), GOOGLE_CLOUD_PROJECT and Cloud Run's K_SERVICE,
// K_REVISION and K_CONFIGURATION.
func ConfigFromEnv(getenv func(string) string) Config {
	return Config{
		Mode:          strings.TrimSpace(getenv("PYEXEC_LOG")),
		ProjectID:     getenv("GOOGLE_CLOUD_PROJECT"),
		Service:       getenv("K_SERVICE"),
		Revision:      getenv("K_REVISION"),
		Configuration: getenv("K_CONFIGURATION"),
	}
}

// New returns a Logger for cfg. It fails for an unknown mode, and in cloud
// mode when no project is known or the client cannot be created.
func New(ctx context.Context, cfg Config) (*Logger, error) {
	l := &Logger{
		project: cfg.ProjectID,
		onError: serialized(cfg.OnError),
		now:     time.Now,
		stdout:  &lineWriter{out: cfg.Out},
	}
	if l.stdout.out == nil {
		l.stdout.out = os.Stdout
	}
	switch cfg.Mode {
	case ModeCloud, "":
	case ModeStdout:
		return l, nil
	default:
		return nil, fmt.Errorf("%w %q: want %q or %q", ErrUnknownMode, cfg.Mode, ModeCloud, ModeStdout)
	}

	onCloudRun := cfg.Service != ""
	if onCloudRun {
		lookUpPlatform(ctx, &cfg)
		l.project = cfg.ProjectID
	}
	if cfg.ProjectID == "" {
		if cfg.Mode == ModeCloud {
			return nil, ErrNoProject
		}
		return l, nil
	}
	if cfg.Mode == "" && !onCloudRun {
		return l, nil
	}
	cloud, err := newCloudSink(ctx, cfg, l.onError)
	if err != nil {
		return nil, err
	}
	l.cloud = cloud
	return l, nil
}

// lookUpPlatform fills in the project and region from the metadata server
// where the environment left them out. A failed look-up leaves them empty:
// without a project the logger falls back to stdout, which Cloud Run also
// collects.
func lookUpPlatform(ctx context.Context, cfg *Config) {
	if cfg.ProjectID != "" && cfg.Region != "" {
		return
	}
	get := cfg.Metadata
	if get == nil {
		get = metadata.GetWithContext
	}
	ctx, cancel := context.WithTimeout(ctx, metadataTimeout)
	defer cancel()
	if cfg.ProjectID == "" {
		if p, err := get(ctx, "project/project-id"); err == nil {
			cfg.ProjectID = strings.TrimSpace(p)
		}
	}
	if cfg.Region == "" {
		// The server answers "projects/NUMBER/regions/REGION".
		if r, err := get(ctx, "instance/region"); err == nil {
			cfg.Region = strings.TrimSpace(r[strings.LastIndex(r, "/")+1:])
		}
	}
}
