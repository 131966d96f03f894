package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
)

// Publishing is what a service publishes through: raw data (dead
// letters), one protobuf message, or many without waiting for each
// acknowledgement in turn. *Publisher is the one services run with; tests
// put a recording or failing one in its place.
type Publishing interface {
	RawPublisher
	PublishProto(ctx context.Context, subject, msgID string, m proto.Message) error
	PublishAll(ctx context.Context, out []Outgoing) []error
}

var _ Publishing = (*Publisher)(nil)

// Publisher publishes to JetStream and waits, for a bounded time, for the
// stream's acknowledgement: a nil error means the message is stored.
type Publisher struct {
	js      jetstream.JetStream
	timeout time.Duration
}

// NewPublisher returns a publisher that waits at most timeout for a PubAck.
func NewPublisher(js jetstream.JetStream, timeout time.Duration) *Publisher {
	return &Publisher{js: js, timeout: timeout}
}

// ErrNotStored means JetStream did not confirm that it stored the message.
var ErrNotStored = errors.New("jetstream did not store the message")

// Publish stores data on subject. msgID, when set, is the Nats-Msg-Id the
// stream deduplicates on; a duplicate is reported as stored (it already is).
func (p *Publisher) Publish(ctx context.Context, subject, msgID string, data []byte, header nats.Header) error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	msg := &nats.Msg{Subject: subject, Data: data, Header: header}
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	if _, err := p.js.PublishMsg(ctx, msg, opts...); err != nil {
		return fmt.Errorf("publish %s: %w: %w", subject, ErrNotStored, err)
	}
	return nil
}

// PublishProto encodes m and publishes it.
func (p *Publisher) PublishProto(ctx context.Context, subject, msgID string, m proto.Message) error {
	data, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode %T: %w", m, err)
	}
	return p.Publish(ctx, subject, msgID, data, nil)
}

// Outgoing is one message of PublishAll.
type Outgoing struct {
	Subject string
	MsgID   string
	Message proto.Message
}

// PublishAll publishes every message without waiting for each PubAck in
// turn, then waits for all of them; errs[i] is nil when out[i] is stored.
func (p *Publisher) PublishAll(ctx context.Context, out []Outgoing) []error {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	errs := make([]error, len(out))
	futures := make([]jetstream.PubAckFuture, len(out))
	for i, o := range out {
		data, err := proto.Marshal(o.Message)
		if err != nil {
			errs[i] = fmt.Errorf("encode %T: %w", o.Message, err)
			continue
		}
		var opts []jetstream.PublishOpt
		if o.MsgID != "" {
			opts = append(opts, jetstream.WithMsgID(o.MsgID))
		}
		if futures[i], err = p.js.PublishMsgAsync(&nats.Msg{Subject: o.Subject, Data: data}, opts...); err != nil {
			errs[i] = fmt.Errorf("publish %s: %w: %w", o.Subject, ErrNotStored, err)
		}
	}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
		case err := <-f.Err():
			errs[i] = fmt.Errorf("publish %s: %w: %w", out[i].Subject, ErrNotStored, err)
		case <-ctx.Done():
			errs[i] = fmt.Errorf("publish %s: %w: %w", out[i].Subject, ErrNotStored, ctx.Err())
		}
	}
	return errs
}
