package testsupport

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
	"time"

	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/pyexec/pyexec/server"
)

// StartPubsub starts a Pub/Sub emulator (pstest) on a loopback port and
// points the Pub/Sub client at it with PUBSUB_EMULATOR_HOST, as for any
// emulator.
func StartPubsub(t testing.TB) *pstest.Server {
	t.Helper()
	srv := pstest.NewServerWithAddress("127.0.0.1:0")
	t.Cleanup(func() { srv.Close() })
	t.Setenv("PUBSUB_EMULATOR_HOST", srv.Addr)
	return srv
}

// CreateTopic creates the topic name ("projects/P/topics/T") in srv.
func CreateTopic(t testing.TB, srv *pstest.Server, name string) {
	t.Helper()
	if _, err := srv.GServer.CreateTopic(context.Background(), &pb.Topic{Name: name}); err != nil {
		t.Fatalf("CreateTopic(%s) = %v", name, err)
	}
}

// ScriptData is the data of a message that asks to run script, with the
// caller's id.
func ScriptData(script, id string) []byte {
	b, _ := json.Marshal(map[string]string{"script": script, "id": id})
	return b
}

// PublishedEvent is a messagePublished event as Eventarc delivers a Pub/Sub
// message: messageData is its message.data, base64-encoded in the envelope.
func PublishedEvent(messageID string, messageData []byte) event.Event {
	envelope, _ := json.Marshal(map[string]any{
		"message": map[string]any{
			"data":        base64.StdEncoding.EncodeToString(messageData),
			"messageId":   messageID,
			"publishTime": time.Now().UTC().Format(time.RFC3339),
		},
		"subscription": "projects/proj/subscriptions/scripts",
	})
	return MessagePublishedEvent(messageID, envelope)
}

// MessagePublishedEvent is a messagePublished event whose data is data, as
// it is (none when nil).
func MessagePublishedEvent(id string, data []byte) event.Event {
	e := event.New()
	e.SetID(id)
	e.SetType(server.MessagePublished)
	e.SetSource("//pubsub.googleapis.com/projects/proj/topics/scripts")
	if data != nil {
		_ = e.SetData(event.ApplicationJSON, data)
	}
	return e
}

// ContentMode is how a CloudEvent travels over HTTP.
type ContentMode string

// The CloudEvents HTTP content modes.
const (
	BinaryMode     ContentMode = "binary"
	StructuredMode ContentMode = "structured"
)

// Sender delivers CloudEvents over HTTP, as Eventarc does.
type Sender struct {
	url    string
	client cloudevents.Client
}

// NewSender returns a Sender to url.
func NewSender(t testing.TB, url string) *Sender {
	t.Helper()
	// A push that is not answered in time fails the test instead of hanging
	// it; Pub/Sub also gives up on a push after its ack deadline.
	c, err := cloudevents.NewClientHTTP(cehttp.WithClient(http.Client{Timeout: 2 * time.Minute}))
	if err != nil {
		t.Fatal(err)
	}
	return &Sender{url: url, client: c}
}

// Send delivers e once and returns the HTTP status it got. It may run on
// any goroutine.
func (s *Sender) Send(mode ContentMode, e event.Event) (int, error) {
	ctx := cloudevents.ContextWithTarget(context.Background(), s.url)
	if mode == BinaryMode {
		ctx = cloudevents.WithEncodingBinary(ctx)
	} else {
		ctx = cloudevents.WithEncodingStructured(ctx)
	}
	res := s.client.Send(ctx, e)
	var httpRes *cehttp.Result
	if !errors.As(res, &httpRes) {
		return 0, fmt.Errorf("sending event %s: %w", e.ID(), res)
	}
	return httpRes.StatusCode, nil
}

// SendOnce is Send for the test's own goroutine: an error fails t.
func (s *Sender) SendOnce(t testing.TB, mode ContentMode, e event.Event) int {
	t.Helper()
	status, err := s.Send(mode, e)
	if err != nil {
		t.Fatal(err)
	}
	return status
}

// Deliver sends e until it is acknowledged, backing off between attempts as
// Pub/Sub does when a push endpoint answers an error. It returns the
// statuses of the refused attempts. It may run on any goroutine.
func (s *Sender) Deliver(t testing.TB, mode ContentMode, e event.Event) []int {
	var refused []int
	backoff := 50 * time.Millisecond
	deadline := time.Now().Add(4 * time.Minute)
	for {
		status, err := s.Send(mode, e)
		if err != nil {
			t.Error(err)
			return refused
		}
		if status/100 == 2 {
			return refused
		}
		refused = append(refused, status)
		if time.Now().After(deadline) {
			t.Errorf("event %s still refused after %d attempts (last status %d)", e.ID(), len(refused), status)
			return refused
		}
		time.Sleep(backoff/2 + rand.N(backoff))
		backoff = min(2*backoff, 2*time.Second)
	}
}

// CompactJSON is v as compact JSON, to compare values decoded from log
// entries and messages.
func CompactJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
