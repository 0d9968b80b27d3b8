package server

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
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/google/uuid"

	"github.com/pyexec/pyexec/execlog"
)

// MessagePublished is the CloudEvent type Eventarc gives Pub/Sub messages.
const MessagePublished = "google.cloud.pubsub.topic.v1.messagePublished"

// maxEventBytes caps what is read of a delivery: a Pub/Sub message is at
// most 10 MB, which base64 makes 13.4 MB.
const maxEventBytes = 16 << 20

// ExecuteEvent is the handler of the ExecuteEvent function: one Pub/Sub
// message per POST, as a CloudEvent from Eventarc (binary or structured
// mode) or as the bare envelope of a push subscription, at /; and
// GET /healthz as Execute serves it. A 2xx answer acknowledges the message;
// any other makes Pub/Sub deliver it again. Other paths answer a JSON 404
// as Execute's do (and other methods on /healthz its 405): they are never
// taken as deliveries. Every request but GET, HEAD and OPTIONS passes the
// guard first (guard.go): a web page of another origin delivers nothing.
//
// The event is decoded here with sdk-go rather than by the Functions
// Framework's CloudEvent receiver, which passes requests to handlers over
// one shared channel (cloudevents sdk-go v2.16.2): under concurrent
// deliveries a handler can get another request's context, and a request
// can wait for the next one to arrive before it is handled at all
// (cloudevents/sdk-go#1224, #1332).
func (s *Server) ExecuteEvent(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != rootPath {
		s.serve(w, r, func(string) error {
			if err := s.guard.check(r, eventBodies); err != nil {
				return err
			}
			if r.URL.Path == healthPath {
				return s.serveHealth(w, r)
			}
			return errEventNotFound
		})
		return
	}
	s.answering.add()
	defer s.answering.done()
	defer func() {
		if p := recover(); p != nil {
			s.log.Log(panicEntry("", p))
			writeStatus(w, mapError(errPanic, ""), nil)
		}
	}()
	if r.Method != http.MethodPost {
		writeStatus(w, mapError(methodNotAllowed(http.MethodPost), ""), nil)
		return
	}
	// A refusal is answered as Execute's are, with a body, unlike the
	// answers Pub/Sub reads: whoever sent it is not Pub/Sub, and learns why.
	if err := s.guard.check(r, eventBodies); err != nil {
		s.serve(w, r, func(string) error { return err })
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxEventBytes)
	if err := s.deliver(r.Context(), readDelivery(r, s.log.ProjectID(), s.decoder())); err != nil {
		writeStatus(w, mapError(err, ""), nil)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// delivery is one delivery of a message: what it asks (or why that cannot
// be read) and the trace it belongs to.
type delivery struct {
	messageID   string // Pub/Sub's message ID, "" if unknown
	req         request
	err         error
	trace, span string
}

// readDelivery reads a delivery from an HTTP request and decodes its
// message with dec. A body that cannot be read is a fault to retry; one
// that can be read but is no message is an invalid payload.
func readDelivery(r *http.Request, projectID string, dec decoder) delivery {
	d := delivery{messageID: r.Header.Get("Ce-Id")}
	d.trace, d.span = execlog.TraceFromHeaders(r.Header, projectID)
	body, err := io.ReadAll(r.Body)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		d.err = invalidRequest(fmt.Sprintf("delivery is larger than %d bytes", tooLarge.Limit))
		return d
	case err != nil:
		d.err = fmt.Errorf("reading delivery: %w", err)
		return d
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.Header.Get("Ce-Specversion") == "" && !strings.HasPrefix(ct, "application/cloudevents") {
		// A push subscription's own request: the body is the envelope.
		d.messageID, d.req, d.err = decodeEnvelope(body, "", dec)
		return d
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	e, err := cehttp.NewEventFromHTTPRequest(r)
	if err == nil {
		err = e.Validate()
	}
	if err != nil {
		d.err = invalidRequest(fmt.Sprintf("request is not a valid CloudEvent: %v", err))
		return d
	}
	d.messageID, d.req, d.err = decodeEvent(*e, dec)
	if d.trace == "" {
		// The request's trace, as in Cloud Run's request log, or else the
		// event's traceparent extension.
		tp, _ := e.Extensions()["traceparent"].(string)
		d.trace, d.span = execlog.TraceFromHeaders(http.Header{"Traceparent": {tp}}, projectID)
	}
	return d
}

// decodeEvent reads the request out of a messagePublished event.
func decodeEvent(e event.Event, dec decoder) (messageID string, req request, err error) {
	if e.Type() != MessagePublished {
		return e.ID(), req, invalidRequest(fmt.Sprintf("event type %q is not %s", e.Type(), MessagePublished))
	}
	// Eventarc sets the event ID to the message ID, so it stands in for an
	// envelope without one.
	return decodeEnvelope(e.Data(), e.ID(), dec)
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

// decodeEnvelope reads the request out of a Pub/Sub push envelope. The
// message ID (id when the envelope has none) is returned whenever it can be
// read, even with an error, so that invalid messages are deduplicated and
// reported under their ID too.
func decodeEnvelope(data []byte, id string, dec decoder) (messageID string, req request, err error) {
	if len(data) == 0 {
		return id, req, invalidRequest("event has no data")
	}
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return id, req, invalidRequest(fmt.Sprintf("event data is not a Pub/Sub message envelope: %v", err))
	}
	messageID = cmp.Or(env.Message.MessageID, env.Message.MessageIDSnake, id)
	if env.Message.Data == nil || *env.Message.Data == "" {
		return messageID, req, invalidRequest(`message.data is empty: want base64 of {"script": "..."}`)
	}
	raw, err := base64.StdEncoding.DecodeString(*env.Message.Data)
	if err != nil {
		return messageID, req, invalidRequest(fmt.Sprintf("message.data is not valid base64: %v", err))
	}
	req, err = dec.decodeMessage(raw)
	return messageID, req, err
}

// deliver runs the request of one delivery and tells whether Pub/Sub should
// deliver it again (an error) or not (nil).
func (s *Server) deliver(ctx context.Context, d delivery) error {
	if d.messageID != "" {
		done, err := s.done.Claim(ctx, d.messageID)
		if err != nil {
			return fmt.Errorf("waiting for another delivery of message %s: %w", d.messageID, err)
		}
		if done {
			s.log.Log(duplicateEntry(d))
			return nil
		}
	}
	completed := false
	defer func() {
		if d.messageID != "" {
			s.done.Release(d.messageID, completed)
		}
	}()

	x := execution{
		id: uuid.NewString(), arrived: time.Now(), req: d.req, err: d.err,
		trace: d.trace, span: d.span, messageID: d.messageID,
	}
	// The outcome is logged (by run) before it is published, so a failed
	// publish never loses it.
	o := s.run(ctx, viaPubSub, x)
	if o.failure.redeliver {
		return fmt.Errorf("execution %s of message %s: %w", x.id, x.messageID, o.err)
	}
	if s.results != nil {
		published := o.published
		err := s.results.Publish(ctx, published)
		if errors.Is(err, ErrOutcomeTooLarge) {
			// It would fail the same way at every redelivery: the outcome
			// is published as the output_limit it is, and logged.
			s.log.Log(outcomeTooLargeEntry(x, err))
			err = s.results.Publish(ctx, tooLargeOutcome(published))
		}
		if err != nil {
			s.log.Log(publishFailedEntry(x, err))
			return err
		}
	}
	completed = true
	return nil
}
