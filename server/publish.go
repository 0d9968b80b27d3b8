package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"cloud.google.com/go/pubsub/v2"

	"github.com/pyexec/pyexec/api"
)

// Publisher sends ExecuteEvent's outcomes on; *TopicPublisher is the real
// one.
type Publisher interface {
	// Publish returns once o is accepted. An error makes the message be
	// delivered, and run, again.
	Publish(ctx context.Context, o api.Outcome) error
}

// ErrOutcomeTooLarge is an outcome larger than a Pub/Sub message may be
// (10 MB): publishing it would fail on every redelivery.
var ErrOutcomeTooLarge = errors.New("the outcome is over Pub/Sub's 10 MB message limit")

// publishTimeout bounds the wait for the results topic to accept an
// outcome; past it the message is redelivered.
const publishTimeout = 30 * time.Second

// TopicPublisher publishes outcomes to a Pub/Sub topic with the Pub/Sub
// client, which honours PUBSUB_EMULATOR_HOST and so can point at an
// emulator.
type TopicPublisher struct {
	topic *pubsub.Publisher
}

// NewTopicPublisher publishes to topic: a topic ID in projectID, or a full
// "projects/P/topics/T".
func NewTopicPublisher(ctx context.Context, topic, projectID string) (*TopicPublisher, error) {
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
	return &TopicPublisher{topic: client.Publisher(topic)}, nil
}

// Publish sends o to the topic, with its IDs and status as attributes, and
// waits until it is accepted. An outcome over Pub/Sub's message limit is
// ErrOutcomeTooLarge.
func (p *TopicPublisher) Publish(ctx context.Context, o api.Outcome) error {
	data, err := json.Marshal(o)
	if err != nil {
		return fmt.Errorf("encoding outcome of execution %s: %w", o.ExecutionID, err)
	}
	if len(data) > pubsub.MaxPublishRequestBytes {
		return fmt.Errorf("outcome of execution %s, %d bytes: %w", o.ExecutionID, len(data), ErrOutcomeTooLarge)
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	res := p.topic.Publish(ctx, &pubsub.Message{
		Data: data,
		// The attributes are named as the log entry's fields.
		Attributes: map[string]string{
			fieldExecutionID: o.ExecutionID,
			fieldStatus:      o.Status,
			fieldMessageID:   o.MessageID,
		},
	})
	if _, err := res.Get(ctx); err != nil {
		if errors.Is(err, pubsub.ErrOversizedMessage) {
			// With its attributes, just over the limit.
			err = ErrOutcomeTooLarge
		}
		return fmt.Errorf("publishing outcome of execution %s to %s: %w", o.ExecutionID, p.topic, err)
	}
	return nil
}
