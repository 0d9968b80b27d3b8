package execlog

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	logpb "cloud.google.com/go/logging/apiv2/loggingpb"
	"google.golang.org/api/option"
	"google.golang.org/genproto/googleapis/api/monitoredres"
	ltype "google.golang.org/genproto/googleapis/logging/type"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// fakeLogging is the Logging API's WriteLogEntries, served over real gRPC on
// a loopback port.
type fakeLogging struct {
	logpb.UnimplementedLoggingServiceV2Server
	addr string

	mu       sync.Mutex
	requests []*logpb.WriteLogEntriesRequest
	fail     error // returned by WriteLogEntries when set
}

func startFakeLogging(t *testing.T) *fakeLogging {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeLogging{addr: lis.Addr().String()}
	srv := grpc.NewServer()
	logpb.RegisterLoggingServiceV2Server(srv, f)
	go srv.Serve(lis)
	t.Cleanup(srv.Stop)
	return f
}

func (f *fakeLogging) WriteLogEntries(_ context.Context, req *logpb.WriteLogEntriesRequest) (*logpb.WriteLogEntriesResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return nil, f.fail
	}
	f.requests = append(f.requests, req)
	return &logpb.WriteLogEntriesResponse{}, nil
}

// entries returns what was written to log, with the resource each request
// named for it.
func (f *fakeLogging) entries(log string) (entries []*logpb.LogEntry, resources []*monitoredres.MonitoredResource) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, req := range f.requests {
		for _, e := range req.Entries {
			name := e.LogName
			if name == "" {
				name = req.LogName
			}
			if name == log {
				entries = append(entries, e)
				resources = append(resources, req.Resource)
			}
		}
	}
	return entries, resources
}

func (f *fakeLogging) clientOptions() []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(f.addr),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
}

// noMetadata fails the test if the logger asks the metadata server anything.
func noMetadata(t *testing.T) func(context.Context, string) (string, error) {
	return func(_ context.Context, path string) (string, error) {
		t.Errorf("metadata server asked for %q, want no look-up", path)
		return "", context.Canceled
	}
}

func TestCloudModeWritesEntriesThroughTheLoggingAPI(t *testing.T) {
	srv := startFakeLogging(t)
	errs := &errorList{}
	l, err := New(context.Background(), Config{
		Mode:          ModeCloud,
		ProjectID:     "proj",
		Service:       "pyexec-events",
		Revision:      "pyexec-events-00001-abc",
		Configuration: "pyexec-events",
		Region:        "europe-west1",
		ClientOptions: srv.clientOptions(),
		OnError:       errs.add,
		Metadata:      noMetadata(t),
	})
	if err != nil {
		t.Fatalf("New(cloud) = %v", err)
	}
	if l.ProjectID() != "proj" {
		t.Errorf("ProjectID() = %q, want %q", l.ProjectID(), "proj")
	}

	l.Log(Entry{
		Severity: Warning,
		Message:  "script error: exception",
		Trace:    "projects/proj/traces/4bf92f3577b34da6a3ce929d0e0e4736",
		SpanID:   "00f067aa0ba902b7",
		Labels:   map[string]string{"function": "ExecuteEvent"},
		Fields: map[string]any{
			"execution_id": "e-1",
			"status":       "error",
			"error_type":   "exception",
			"duration_ms":  int64(42),
			"severity":     "DEBUG", // reserved: dropped as on stdout
		},
	})
	l.Log(Entry{Severity: Info, Message: "execution ok", Fields: map[string]any{"status": "ok"}})
	l.Log(Entry{Severity: Error, Message: "service busy"})
	if err := l.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}

	entries, resources := srv.entries("projects/proj/logs/" + LogName)
	if len(entries) != 3 {
		t.Fatalf("server got %d entries in log %q, want 3", len(entries), LogName)
	}
	wantResource := map[string]string{
		"project_id":         "proj",
		"service_name":       "pyexec-events",
		"revision_name":      "pyexec-events-00001-abc",
		"configuration_name": "pyexec-events",
		"location":           "europe-west1",
	}
	if r := resources[0]; r.GetType() != "cloud_run_revision" || mustJSON(t, r.GetLabels()) != mustJSON(t, wantResource) {
		t.Errorf("resource = %v, want cloud_run_revision with %v", r, wantResource)
	}

	first := entries[0]
	if first.Severity != ltype.LogSeverity_WARNING {
		t.Errorf("severity = %v, want WARNING", first.Severity)
	}
	if first.Trace != "projects/proj/traces/4bf92f3577b34da6a3ce929d0e0e4736" || first.SpanId != "00f067aa0ba902b7" {
		t.Errorf("trace, span = %q, %q; want the entry's", first.Trace, first.SpanId)
	}
	if first.Labels["function"] != "ExecuteEvent" {
		t.Errorf("labels = %v, want function=ExecuteEvent", first.Labels)
	}
	payload := first.GetJsonPayload().AsMap()
	want := map[string]any{
		"message":      "script error: exception",
		"execution_id": "e-1",
		"status":       "error",
		"error_type":   "exception",
		"duration_ms":  float64(42),
	}
	if g, w := mustJSON(t, payload), mustJSON(t, want); g != w {
		t.Errorf("jsonPayload =\n%s\nwant\n%s", g, w)
	}
	if entries[1].Severity != ltype.LogSeverity_INFO || entries[2].Severity != ltype.LogSeverity_ERROR {
		t.Errorf("severities = %v, %v; want INFO, ERROR", entries[1].Severity, entries[2].Severity)
	}
	if errs.len() != 0 {
		t.Errorf("OnError got %v, want none", errs.all())
	}
}

func TestCloudModeReportsAFailingAPIToOnErrorAndNeverToTheCaller(t *testing.T) {
	srv := startFakeLogging(t)
	srv.fail = status.Error(codes.PermissionDenied, "logging.logEntries.create denied")
	errs := &errorList{}
	l, err := New(context.Background(), Config{
		Mode: ModeCloud, ProjectID: "proj", ClientOptions: srv.clientOptions(), OnError: errs.add,
	})
	if err != nil {
		t.Fatalf("New(cloud) = %v", err)
	}
	l.Log(Entry{Severity: Info, Message: "lost"})
	closeErr := l.Close()
	if closeErr == nil || !strings.Contains(closeErr.Error(), "denied") {
		t.Errorf("Close() = %v, want the API's error", closeErr)
	}
	// The client hands errors to OnError from a goroutine of its own, which
	// Close does not wait for.
	deadline := time.Now().Add(10 * time.Second)
	for errs.len() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if errs.len() == 0 {
		t.Errorf("OnError was not called within 10 s, want the API's error")
	}
}

func TestEntriesLoggedAfterCloseGoToStdout(t *testing.T) {
	srv := startFakeLogging(t)
	var out bytes.Buffer
	l, err := New(context.Background(), Config{
		Mode: ModeCloud, ProjectID: "proj", ClientOptions: srv.clientOptions(), Out: &out,
	})
	if err != nil {
		t.Fatalf("New(cloud) = %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	l.Log(Entry{Severity: Info, Message: "late"})
	if lines := lines(&out); len(lines) != 1 || !strings.Contains(lines[0], `"message":"late"`) {
		t.Errorf("stdout after Close = %q, want the late entry", lines)
	}
}

func TestEntriesLoggedWhileClosingAreNeitherLostNorRacy(t *testing.T) {
	srv := startFakeLogging(t)
	var out bytes.Buffer
	l, err := New(context.Background(), Config{
		Mode: ModeCloud, ProjectID: "proj", ClientOptions: srv.clientOptions(), Out: &out,
	})
	if err != nil {
		t.Fatalf("New(cloud) = %v", err)
	}
	const n = 200
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() { l.Log(Entry{Severity: Info, Message: "m"}) })
	}
	if err := l.Close(); err != nil {
		t.Errorf("Close() = %v", err)
	}
	wg.Wait()
	sent, _ := srv.entries("projects/proj/logs/" + LogName)
	if got := len(sent) + len(lines(&out)); got != n {
		t.Errorf("%d entries reached the API and %d stdout, want %d in all", len(sent), len(lines(&out)), n)
	}
}
