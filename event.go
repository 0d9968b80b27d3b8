package pyexec

import (
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/pubsub/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/uuid"

	"github.com/pyexec/pyexec/dedup"
	"github.com/pyexec/pyexec/execlog"
	"github.com/pyexec/pyexec/executor"
)

// messagePublished is the CloudEvent type Eventarc gives Pub/Sub messages.
const messagePublished = "google.cloud.pubsub.topic.v1.messagePublished"

const (
	// maxEventBytes caps what is read of a delivery: a Pub/Sub message is at
	// most 10 MB, which base64 makes 13.4 MB.
	maxEventBytes = 16 << 20
	// maxLoggedBytes caps stdout, result and traceback in a log entry; the
	// published outcome carries them whole.
	maxLoggedBytes = 64 << 10
	// publishTimeout bounds the wait for the results topic to accept an
	// outcome; past it the message is redelivered.
	publishTimeout = 30 * time.Second
	// Completed message IDs are remembered this long, and at most this many:
	// redeliveries come within minutes, and memory stays bounded.
	dedupTTL = time.Hour
	dedupMax = 10000
)

// serveEvent is the ExecuteEvent function: one Pub/Sub message per request,
// as a CloudEvent from Eventarc (binary or structured mode) or as the bare
// envelope of a push subscription. A 2xx answer acknowledges the message;
// any other makes Pub/Sub redeliver it.
func serveEvent(w http.ResponseWriter, r *http.Request) {
	s, err := defaultService()
	if err != nil {
		// Only invalid configuration gets here, which cmd/ refuses at start.
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	ev, err := defaultEvents(s.log.ProjectID())
	if err != nil {
		s.log.Log(execlog.Entry{
			Severity: execlog.Error,
			Message:  "ExecuteEvent is misconfigured; messages are redelivered",
			Fields:   map[string]any{"function": "ExecuteEvent", "error": err.Error()},
		})
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	ev.serveHTTP(w, r, s)
}

func (ev *events) serveHTTP(w http.ResponseWriter, r *http.Request, s *service) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxEventBytes)
	if err := ev.handle(r.Context(), s, readDelivery(r, s.log.ProjectID())); err != nil {
		w.WriteHeader(statusOf(executor.TypeOf(err)))
		return
	}
	w.WriteHeader(http.StatusOK)
}

// eventConfig is ExecuteEvent's own configuration.
type eventConfig struct {
	// ResultTopic is where outcomes are published: a topic ID in the
	// service's project or a full "projects/P/topics/T"; "" publishes none.
	ResultTopic string
}

func eventConfigFromEnv(getenv func(string) string) eventConfig {
	return eventConfig{ResultTopic: strings.TrimSpace(getenv("PYEXEC_RESULT_TOPIC"))}
}

// events is what ExecuteEvent keeps from one message to the next.
type events struct {
	done    *dedup.Set
	results *topicPublisher // nil without a results topic
}

var (
	eventsOnce      sync.Once
	sharedEvents    *events
	sharedEventsErr error
)

// defaultEvents returns the process's ExecuteEvent state, built on first use:
// the results topic may need the project, known once the service exists.
func defaultEvents(projectID string) (*events, error) {
	eventsOnce.Do(func() {
		sharedEvents, sharedEventsErr = newEvents(context.Background(), eventConfigFromEnv(os.Getenv), projectID)
	})
	return sharedEvents, sharedEventsErr
}

func newEvents(ctx context.Context, cfg eventConfig, projectID string) (*events, error) {
	ev := &events{done: dedup.New(dedupMax, dedupTTL)}
	if cfg.ResultTopic == "" {
		return ev, nil
	}
	results, err := newTopicPublisher(ctx, cfg.ResultTopic, projectID)
	if err != nil {
		return nil, err
	}
	ev.results = results
	return ev, nil
}

// topicPublisher publishes outcomes with the Pub/Sub client. The client
// honours PUBSUB_EMULATOR_HOST, which points it at an emulator.
type topicPublisher struct {
	topic *pubsub.Publisher
}

func newTopicPublisher(ctx context.Context, topic, projectID string) (*topicPublisher, error) {
	project := projectID
	if strings.Contains(topic, "/") {
		parts := strings.Split(topic, "/")
		if len(parts) != 4 || parts[0] != "projects" || parts[1] == "" || parts[2] != "topics" || parts[3] == "" {
			return nil, fmt.Errorf("PYEXEC_RESULT_TOPIC %q: want a topic ID or projects/PROJECT/topics/TOPIC", topic)
		}
		project = parts[1]
	}
	if project == "" {
		return nil, fmt.Errorf("PYEXEC_RESULT_TOPIC %q names no project and none is known: set GOOGLE_CLOUD_PROJECT or use projects/PROJECT/topics/TOPIC", topic)
	}
	client, err := pubsub.NewClient(ctx, project)
	if err != nil {
		return nil, fmt.Errorf("creating pubsub client for results topic %q: %w", topic, err)
	}
	return &topicPublisher{topic: client.Publisher(topic)}, nil
}

// publish sends o to the results topic and waits until it is accepted.
func (p *topicPublisher) publish(ctx context.Context, o outcome) error {
	data, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("encoding outcome of execution %s: %w", o.ExecutionID, err)
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	res := p.topic.Publish(ctx, &pubsub.Message{
		Data: data,
		Attributes: map[string]string{
			"execution_id": o.ExecutionID,
			"status":       o.Status,
			"message_id":   o.MessageID,
		},
	})
	if _, err := res.Get(ctx); err != nil {
		return fmt.Errorf("publishing outcome of execution %s to %s: %w", o.ExecutionID, p.topic, err)
	}
	return nil
}

// outcome is what became of one message: the execution's answer, in the
// shape of Execute's response bodies plus the IDs that tie it to the message.
type outcome struct {
	ExecutionID string             `json:"execution_id"`
	MessageID   string             `json:"message_id"`
	ID          string             `json:"id,omitempty"`
	Status      string             `json:"status"`
	Result      json.RawMessage    `json:"result,omitempty"`
	Stdout      string             `json:"stdout"`
	Error       string             `json:"error,omitempty"`
	ErrorType   executor.ErrorType `json:"error_type,omitempty"`
	Traceback   string             `json:"traceback,omitempty"`
	DurationMS  int64              `json:"duration_ms"`
}

// message is a script delivered by Pub/Sub.
type message struct {
	ID       string // Pub/Sub's message ID
	CallerID string // the optional "id" of the data
	Script   string
}

// invalid is the error of a payload that can never run. It is the
// executor's invalid_request, like a blank script, so it is acknowledged
// and its message reported as is.
func invalid(format string, args ...any) error {
	return &executor.Error{Type: executor.TypeInvalidRequest, Message: fmt.Sprintf(format, args...)}
}

// envelope is the Pub/Sub push envelope: the body of a push subscription's
// request, and the data of Eventarc's event.
type envelope struct {
	Message struct {
		Data      *string `json:"data"`
		MessageID string  `json:"messageId"`
		// The push format also spells the ID in snake case.
		MessageIDSnake string `json:"message_id"`
	} `json:"message"`
}

// delivery is one delivery of a message: what it says (or why it cannot be
// read) and the trace it belongs to.
type delivery struct {
	msg         message
	err         error
	trace, span string
}

// readDelivery reads a delivery from an HTTP request. A body that cannot be
// read is a fault to retry; one that can be read but is no message is an
// invalid payload.
func readDelivery(r *http.Request, projectID string) delivery {
	trace, span := execlog.TraceFromHeaders(r.Header, projectID)
	d := delivery{msg: message{ID: r.Header.Get("Ce-Id")}, trace: trace, span: span}
	body, err := io.ReadAll(r.Body)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		d.err = invalid("delivery is larger than %d bytes", tooLarge.Limit)
		return d
	case err != nil:
		d.err = fmt.Errorf("reading delivery: %w", err)
		return d
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.Header.Get("Ce-Specversion") == "" && !strings.HasPrefix(ct, "application/cloudevents") {
		// A push subscription's own request: the body is the envelope.
		d.msg, d.err = decodeEnvelope(body, "")
		return d
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	e, err := cehttp.NewEventFromHTTPRequest(r)
	if err == nil {
		err = e.Validate()
	}
	if err != nil {
		d.err = invalid("request is not a valid CloudEvent: %v", err)
		return d
	}
	return deliveryOf(*e, r.Header, projectID)
}

// deliveryOf reads a delivery from a messagePublished event. Its trace is
// the request's (h), as in Cloud Run's request log, or else the event's
// traceparent extension.
func deliveryOf(e event.Event, h http.Header, projectID string) delivery {
	msg, err := decodeMessage(e)
	d := delivery{msg: msg, err: err}
	d.trace, d.span = execlog.TraceFromHeaders(h, projectID)
	if d.trace == "" {
		tp, _ := e.Extensions()["traceparent"].(string)
		d.trace, d.span = execlog.TraceFromHeaders(http.Header{"Traceparent": {tp}}, projectID)
	}
	return d
}

// decodeMessage reads the script out of a messagePublished event.
func decodeMessage(e event.Event) (message, error) {
	if e.Type() != messagePublished {
		return message{ID: e.ID()}, invalid("event type %q is not %s", e.Type(), messagePublished)
	}
	// Eventarc sets the event ID to the message ID, so it stands in for an
	// envelope without one.
	return decodeEnvelope(e.Data(), e.ID())
}

// decodeEnvelope reads the script out of a Pub/Sub push envelope. The
// message ID is returned whenever it can be read, even with an error, so
// that invalid messages are deduplicated and reported under their ID too.
func decodeEnvelope(data []byte, id string) (message, error) {
	msg := message{ID: id}
	if len(data) == 0 {
		return msg, invalid("event has no data")
	}
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return msg, invalid("event data is not a Pub/Sub message envelope: %v", err)
	}
	if id := cmp.Or(env.Message.MessageID, env.Message.MessageIDSnake); id != "" {
		msg.ID = id
	}
	if env.Message.Data == nil || *env.Message.Data == "" {
		return msg, invalid("message.data is empty: want base64 of {\"script\": \"...\"}")
	}
	raw, err := base64.StdEncoding.DecodeString(*env.Message.Data)
	if err != nil {
		return msg, invalid("message.data is not valid base64: %v", err)
	}
	// encoding/json would quietly replace invalid UTF-8, running a script
	// other than the one sent.
	if !utf8.Valid(raw) {
		return msg, invalid("message data must be valid UTF-8")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return msg, invalid("message data must be a JSON object {\"script\": \"...\"}")
	}
	if id, ok := fields["id"]; ok && string(id) != "null" {
		if err := json.Unmarshal(id, &msg.CallerID); err != nil {
			return msg, invalid("\"id\" must be a string")
		}
	}
	script, ok := fields["script"]
	if !ok {
		return msg, invalid("message data has no \"script\"")
	}
	if string(script) == "null" || json.Unmarshal(script, &msg.Script) != nil {
		return msg, invalid("\"script\" must be a string")
	}
	return msg, nil
}

// handle runs the script of one message and tells whether Pub/Sub should
// deliver it again.
func (ev *events) handle(ctx context.Context, s *service, d delivery) error {
	s.inflight.Add(1)
	defer s.inflight.Done()

	msg, trace, span := d.msg, d.trace, d.span
	if msg.ID != "" {
		done, err := ev.done.Claim(ctx, msg.ID)
		if err != nil {
			return fmt.Errorf("waiting for another delivery of message %s: %w", msg.ID, err)
		}
		if done {
			s.log.Log(execlog.Entry{
				Severity: execlog.Info,
				Message:  "duplicate message acknowledged without running it again",
				Trace:    trace,
				SpanID:   span,
				Fields:   map[string]any{"function": "ExecuteEvent", "message_id": msg.ID, "duplicate": true},
			})
			return nil
		}
	}
	completed := false
	defer func() {
		if msg.ID != "" {
			ev.done.Release(msg.ID, completed)
		}
	}()

	o := outcome{ExecutionID: uuid.NewString(), MessageID: msg.ID, ID: msg.CallerID, Status: "ok"}
	var res executor.Result
	err := d.err
	if err == nil {
		res, err = s.exec.Run(ctx, executor.Request{ID: o.ExecutionID, Script: msg.Script})
	}
	o.Stdout, o.DurationMS = res.Stdout, res.Duration.Milliseconds()
	if err == nil {
		o.Result = res.Value
	} else {
		o.Status, o.ErrorType = "error", executor.TypeOf(err)
		var xe *executor.Error
		switch {
		case errors.As(err, &xe):
			o.Error, o.Traceback = xe.Message, xe.Traceback
		case o.ErrorType == executor.TypeBusy:
			o.Error = "Service busy, retry later"
		case o.ErrorType == executor.TypeSandboxUnavailable:
			o.Error = "Sandbox unavailable"
		default:
			o.Error = internalMessage(o.ExecutionID)
		}
	}

	retry := redeliver(o.ErrorType)
	entry := logEntry(o, len(msg.Script), retry, err)
	entry.Trace, entry.SpanID = trace, span
	// The outcome is logged before it is published, so a failed publish
	// never loses it.
	s.log.Log(entry)
	if retry {
		return fmt.Errorf("execution %s of message %s: %w", o.ExecutionID, msg.ID, err)
	}
	if ev.results != nil {
		if err := ev.results.publish(ctx, o); err != nil {
			s.log.Log(execlog.Entry{
				Severity: execlog.Error,
				Message:  "publishing the outcome failed; the message will be redelivered",
				Trace:    trace,
				SpanID:   span,
				Fields: map[string]any{
					"function":     "ExecuteEvent",
					"execution_id": o.ExecutionID,
					"message_id":   o.MessageID,
					"error":        err.Error(),
				},
			})
			return err
		}
	}
	completed = true
	return nil
}

// redeliver tells which failures Pub/Sub should retry: the service's faults,
// after which the script may well run. Script errors and invalid payloads
// would fail the same way again.
func redeliver(t executor.ErrorType) bool {
	switch t {
	case executor.TypeBusy, executor.TypeSandboxUnavailable, executor.TypeInternal:
		return true
	default:
		return false
	}
}

// logEntry is the one log entry of an execution of a message.
func logEntry(o outcome, scriptBytes int, retry bool, err error) execlog.Entry {
	fields := map[string]any{
		"function":     "ExecuteEvent",
		"execution_id": o.ExecutionID,
		"message_id":   o.MessageID,
		"id":           o.ID,
		"status":       o.Status,
		"duration_ms":  o.DurationMS,
		"script_bytes": scriptBytes,
		"stdout_bytes": len(o.Stdout),
	}
	stdout, cut := capText(o.Stdout)
	fields["stdout"] = stdout
	if cut {
		fields["stdout_truncated"] = true
	}
	entry := execlog.Entry{Severity: execlog.Info, Message: "execution ok", Fields: fields}
	if err == nil {
		if len(o.Result) <= maxLoggedBytes {
			fields["result"] = o.Result
		} else {
			fields["result_truncated"] = true
		}
		fields["result_bytes"] = len(o.Result)
		return entry
	}

	fields["error"], fields["error_type"] = o.Error, o.ErrorType
	if o.Traceback != "" {
		fields["traceback"], _ = capText(o.Traceback)
	}
	entry.Severity, entry.Message = execlog.Warning, "execution failed: "+string(o.ErrorType)
	if retry {
		entry.Severity, entry.Message = execlog.Error, "execution failed: "+string(o.ErrorType)+"; the message will be redelivered"
		fields["retry"] = true
		if o.ErrorType == executor.TypeInternal {
			fields["cause"] = err.Error()
		}
	}
	return entry
}

// capText cuts s to maxLoggedBytes at a character boundary, since Cloud
// Logging refuses invalid UTF-8.
func capText(s string) (string, bool) {
	if len(s) <= maxLoggedBytes {
		return s, false
	}
	cut := maxLoggedBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut], true
}
