package deadletters

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

const (
	orgA     = "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f"
	orgB     = "7a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
	contactA = "3a7e9c10-5b2d-4f8e-9a61-7c4d2e8b1f03"
	rowA     = "b2d4f6a8-1c3e-4a5b-8d7f-9e0a1b2c3d4e"
)

type fixture struct {
	js    jetstream.JetStream
	store *Store
	logs  *testkit.SyncBuffer
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	js, _ := testkit.JetStream(t)
	logs := &testkit.SyncBuffer{}
	store, err := New(ctx(t), js, 5*time.Second, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{js: js, store: store, logs: logs}
}

func ctx(t testing.TB) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// origin stores a message on subject as a producer would and returns it
// as a consumer would hand it over after deliveries deliveries.
func (f *fixture) origin(t testing.TB, subject string, m proto.Message, header nats.Header, deliveries uint64) *testkit.Msg {
	t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return f.originRaw(t, subject, data, header, deliveries)
}

func (f *fixture) originRaw(t testing.TB, subject string, data []byte, header nats.Header, deliveries uint64) *testkit.Msg {
	t.Helper()
	ack, err := f.js.PublishMsg(ctx(t), &nats.Msg{Subject: subject, Data: data, Header: header})
	if err != nil {
		t.Fatalf("publish %s: %v", subject, err)
	}
	return &testkit.Msg{Subj: subject, Payload: data, Header: header, Delivered: deliveries,
		Stream: ack.Stream, Seq: ack.Sequence, Stored: time.Now()}
}

// deadLetter sets m aside as consumer's settler does, and returns the dead
// letter's sequence.
func (f *fixture) deadLetter(t testing.TB, consumer string, m *testkit.Msg, reason string) uint64 {
	t.Helper()
	meta, _ := m.Metadata()
	if err := bus.DeadLetter(ctx(t), bus.NewPublisher(f.js, 5*time.Second), consumer, m, meta, reason); err != nil {
		t.Fatal(err)
	}
	s, err := f.js.Stream(ctx(t), bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(ctx(t), bus.DeadLetterSubject(consumer))
	if err != nil {
		t.Fatal(err)
	}
	return raw.Sequence
}

// messages reads every message of stream on subject.
func (f *fixture) messages(t testing.TB, stream, subject string) []*jetstream.RawStreamMsg {
	t.Helper()
	s, err := f.js.Stream(ctx(t), stream)
	if err != nil {
		t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); ; seq++ {
		m, err := s.GetMsg(ctx(t), seq, jetstream.WithGetMsgSubject(subject))
		if err != nil {
			return out
		}
		out = append(out, m)
		seq = m.Sequence
	}
}

func (f *fixture) deadLetterExists(t testing.TB, seq uint64) bool {
	t.Helper()
	_, err := f.store.Get(ctx(t), seq)
	return err == nil
}

func sameBytes(a, b []byte) bool { return bytes.Equal(a, b) }
