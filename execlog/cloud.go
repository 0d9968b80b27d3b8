package execlog

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"time"

	"cloud.google.com/go/logging"
	mrpb "google.golang.org/genproto/googleapis/api/monitoredres"
)

// LogName is the log ID entries are written to in cloud mode.
const LogName = "pyexec"

// cloudSink writes entries through the Cloud Logging client, which buffers
// them and sends them in batches from its own goroutines.
type cloudSink struct {
	client *logging.Client
	logger *logging.Logger
}

func newCloudSink(ctx context.Context, cfg Config, onError func(error)) (*cloudSink, error) {
	client, err := logging.NewClient(ctx, "projects/"+cfg.ProjectID, cfg.ClientOptions...)
	if err != nil {
		return nil, fmt.Errorf("creating cloud logging client for project %q: %w", cfg.ProjectID, err)
	}
	client.OnError = onError
	// An explicit resource also keeps the client from probing the
	// environment (and the metadata server) for one.
	logger := client.Logger(LogName, logging.CommonResource(resource(cfg)))
	return &cloudSink{client: client, logger: logger}, nil
}

// resource is the monitored resource entries belong to: the Cloud Run
// revision when running on Cloud Run, the project otherwise.
func resource(cfg Config) *mrpb.MonitoredResource {
	if cfg.Service == "" {
		return &mrpb.MonitoredResource{
			Type:   "global",
			Labels: map[string]string{"project_id": cfg.ProjectID},
		}
	}
	return &mrpb.MonitoredResource{
		Type: "cloud_run_revision",
		Labels: map[string]string{
			"project_id":         cfg.ProjectID,
			"service_name":       cfg.Service,
			"revision_name":      cfg.Revision,
			"configuration_name": cfg.Configuration,
			"location":           cfg.Region,
		},
	}
}

func (s *cloudSink) log(e Entry, payload []byte, ts time.Time) {
	s.logger.Log(logging.Entry{
		Timestamp: ts,
		Severity:  logging.ParseSeverity(string(e.Severity)),
		Payload:   json.RawMessage(payload),
		// The client takes ownership of the map; the caller keeps its own.
		Labels: maps.Clone(e.Labels),
		Trace:  e.Trace,
		SpanID: e.SpanID,
	})
}

// close flushes the buffered entries and closes the client.
func (s *cloudSink) close() error {
	if err := s.client.Close(); err != nil {
		return fmt.Errorf("flushing cloud logging: %w", err)
	}
	return nil
}
