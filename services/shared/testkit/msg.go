package testkit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Msg is a jetstream.Msg as a consumer hands it to a handler, without a
// server: it records how it was settled.
type Msg struct {
	Subj    string
	Payload []byte
	Header  nats.Header
	// Delivered is the delivery count (0 counts as 1).
	Delivered uint64
	// NoMetadata makes Metadata fail, as for a message not from a consumer.
	NoMetadata       bool
	Stream, Consumer string
	Seq              uint64    // stream sequence
	Stored           time.Time // when the stream stored it

	mu    sync.Mutex
	acks  int
	naks  []Nak
	terms []string
}

// Nak is one NakWithDelay (or Nak, delay 0).
type Nak struct {
	Delay time.Duration
	At    time.Time
}

var _ jetstream.Msg = (*Msg)(nil)

func (m *Msg) Metadata() (*jetstream.MsgMetadata, error) {
	if m.NoMetadata {
		return nil, errors.New("no metadata")
	}
	return &jetstream.MsgMetadata{
		NumDelivered: max(m.Delivered, 1), Stream: m.Stream, Consumer: m.Consumer,
		Sequence: jetstream.SequencePair{Stream: m.Seq, Consumer: m.Seq}, Timestamp: m.Stored,
	}, nil
}
func (m *Msg) Data() []byte                    { return m.Payload }
func (m *Msg) Headers() nats.Header            { return m.Header }
func (m *Msg) Subject() string                 { return m.Subj }
func (m *Msg) Reply() string                   { return "" }
func (m *Msg) DoubleAck(context.Context) error { return m.Ack() }
func (m *Msg) InProgress() error               { return nil }
func (m *Msg) Nak() error                      { return m.NakWithDelay(0) }
func (m *Msg) Term() error                     { return m.TermWithReason("") }

func (m *Msg) Ack() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.acks++
	return nil
}

func (m *Msg) NakWithDelay(d time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.naks = append(m.naks, Nak{Delay: d, At: time.Now()})
	return nil
}

func (m *Msg) TermWithReason(reason string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.terms = append(m.terms, reason)
	return nil
}

// Settled is how the message was settled so far: acks, naks, and the
// reasons of its terms.
func (m *Msg) Settled() (acks int, naks []Nak, terms []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.acks, slices.Clone(m.naks), slices.Clone(m.terms)
}

// Redelivered is the next delivery of m, as the server would make it.
func (m *Msg) Redelivered() *Msg {
	return &Msg{Subj: m.Subj, Payload: m.Payload, Header: m.Header, Delivered: max(m.Delivered, 1) + 1, NoMetadata: m.NoMetadata,
		Stream: m.Stream, Consumer: m.Consumer, Seq: m.Seq, Stored: m.Stored}
}

// String names the message in failures.
func (m *Msg) String() string {
	acks, naks, terms := m.Settled()
	delays := make([]time.Duration, len(naks))
	for i, n := range naks {
		delays[i] = n.Delay
	}
	return fmt.Sprintf("msg{seq %d, delivery %d: %d acks, naks %v, terms %q}", m.Seq, m.Delivered, acks, delays, terms)
}

// Batch is ms as a consumer hands a batch to a handler.
func Batch(ms ...*Msg) []jetstream.Msg {
	out := make([]jetstream.Msg, len(ms))
	for i, m := range ms {
		out[i] = m
	}
	return out
}
