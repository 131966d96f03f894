package writer

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// Two validator replicas with skewed clocks: the later decision in the
// stream says it was decided earlier. The stream's order decides which is
// the latest, so it is written (picking by DecidedAt left nothing written).
func TestLatestIsByStreamOrderNotClock(t *testing.T) {
	t.Parallel()
	dv := &fakeDataverse{}
	e := newFakeEnv(t, testConfig(), dv)
	now := time.Now()
	first := decision("first", orgA, contact(1), notAt, now)
	second := decision("second", orgA, contact(1), noFeedback, now.Add(-time.Minute)) // a clock behind
	mFirst, mSecond := msgOf(t, first, 1), msgOf(t, second, 1)
	e.svc.decisions = fakeDecisions{contact(1): mSecond.Seq}
	e.handle(mSecond, mFirst)
	wantAcked(t, mFirst, mSecond)
	if len(dv.batches) != 1 || len(dv.batches[0]) != 1 || dv.batches[0][0].Value != int(noFeedback) {
		t.Fatalf("writes = %+v, want the second decision's value alone", dv.batches)
	}
	got := e.pub.outcomes(t)
	wantOutcome(t, got, first, OutcomeSuperseded, 0)
	wantOutcome(t, got, second, OutcomeWritten, 204)
}

// A decision that names a contact id Dataverse cannot have (not a GUID),
// a flag value the column lacks, or another contact's subject is set
// aside, and nothing is sent for it.
func TestInvalidDecisionsAreSetAside(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func() *testkit.Msg{
		"contact not a GUID": func() *testkit.Msg {
			return msgOf(t, decision("d1", orgA, "contacts(7d8c4a0e-0000-4000-8000-000000000001)", notAt, time.Now()), 1)
		},
		"unknown value": func() *testkit.Msg {
			return msgOf(t, decision("d1", orgA, contact(1), eventsv1.Flag(7), time.Now()), 1)
		},
		"no decision id": func() *testkit.Msg { return msgOf(t, decision("", orgA, contact(1), notAt, time.Now()), 1) },
		"another subject": func() *testkit.Msg {
			m := msgOf(t, decision("d1", orgA, contact(1), notAt, time.Now()), 1)
			m.Subj = bus.DecisionSubject(orgA, contact(2))
			return m
		},
	} {
		t.Run(name, func(t *testing.T) {
			dv := &fakeDataverse{}
			e := newFakeEnv(t, testConfig(), dv)
			m := mk()
			e.handle(m)
			wantTermed(t, m)
			if len(dv.patches)+len(dv.batches) != 0 {
				t.Errorf("sent %v %v for an invalid decision", dv.patches, dv.batches)
			}
			if dl := e.pub.deadLetters(); len(dl) != 1 || !strings.Contains(dl[0].header.Get(bus.HeaderDeadReason), "invalid Decision") {
				t.Errorf("dead letters = %+v", dl)
			}
			if n := testutil.ToFloat64(e.svc.metrics.failures.WithLabelValues(classInvalid)); n != 1 {
				t.Errorf("failures{invalid} = %v, want 1", n)
			}
		})
	}
}

// A decision Dataverse answers 400 to goes to the dead letter stream for
// real, although the validator published it with a precondition header:
// before, JetStream refused the dead letter and the decision was retried
// forever, a Dataverse request each time.
func TestBadRequestIsDeadLetteredInJetStream(t *testing.T) {
	t.Parallel()
	c := newCluster(t, 2, orderConfig(10), bus.DefaultOptions(), dataversetest.Options{})
	bad := c.contacts[0]
	c.standin.Inject(dataversetest.Fault{Row: bad, Status: http.StatusBadRequest, Count: 1000})
	// As the validator publishes: each decision only on top of the
	// contact's last one, which the stream then drops.
	var last uint64
	for i, id := range append([]string{bad}, c.contacts...) {
		d := decision(fmt.Sprintf("dec-%d", i), orgA, id, notAt, time.Now())
		data, err := proto.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		expect := uint64(0)
		if i == 1 {
			expect = last
		}
		ack, err := c.js.Publish(t.Context(), bus.DecisionSubject(orgA, id), data,
			jetstream.WithExpectLastSequencePerSubject(expect), jetstream.WithMsgID(d.GetDecisionId()))
		if err != nil {
			t.Fatal(err)
		}
		last = ack.Sequence
	}
	c.start(0)
	dead, err := c.js.Stream(t.Context(), bus.StreamDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	var raw *jetstream.RawStreamMsg
	testkit.Eventually(t, "the dead letter", 10*time.Second, func() bool {
		raw, err = dead.GetLastMsgForSubject(t.Context(), bus.DeadLetterSubject(bus.ConsumerWriter))
		return err == nil
	})
	if !strings.Contains(raw.Header.Get(bus.HeaderDeadReason), "400") {
		t.Errorf("dead letter reason %q", raw.Header.Get(bus.HeaderDeadReason))
	}
	testkit.Eventually(t, "the consumer drained", 10*time.Second, c.drained)
	time.Sleep(500 * time.Millisecond)
	// One request per contact at most (both may share a $batch): the bad
	// decision was not retried.
	if n := len(c.standin.apiRequests()); n < 1 || n > 2 {
		t.Errorf("%d API requests, want one or two", n)
	}
	row, _ := c.standin.Row("contacts", c.contacts[1])
	if row[flagCol] != float64(notAt) {
		t.Errorf("the good contact's flag = %v", row[flagCol])
	}
}

// A write the Dataverse client refuses to build (a key or column it will
// not put in a URL) reached nobody: it is set aside at once, never retried.
func TestClientRefusalIsSetAside(t *testing.T) {
	t.Parallel()
	dv := &fakeDataverse{partErr: fmt.Errorf("%w: contact id is not a GUID", dataverse.ErrInvalidRequest)}
	e := newFakeEnv(t, testConfig(), dv)
	d := decision("d1", orgA, contact(1), notAt, time.Now())
	m := msgOf(t, d, 1)
	e.svc.decisions = fakeDecisions{contact(1): m.Seq}
	e.handle(m)
	wantTermed(t, m)
	wantOutcome(t, e.pub.outcomes(t), d, OutcomeFailed, 0)
}
