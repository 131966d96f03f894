package deadletters

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
)

var admin = Actor{Name: "ops-oncall", TokenFingerprint: "1a2b3c4d"}

// auditRecords reads the dead letter actions recorded for org.
func (f *fixture) auditRecords(t *testing.T, org string) []*eventsv1.DeadLetterAction {
	t.Helper()
	var out []*eventsv1.DeadLetterAction
	for _, m := range f.messages(t, bus.StreamAudit, bus.AuditSubject("deadletter", org)) {
		var rec eventsv1.DeadLetterAction
		if err := proto.Unmarshal(m.Data, &rec); err != nil {
			t.Fatal(err)
		}
		out = append(out, &rec)
	}
	return out
}

func TestRedriveRepublishesWithoutPreconditions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	subject := bus.CRMSubject(orgA, "contact", rowA)
	change := &eventsv1.CrmChange{EventId: "e-1", OrganizationId: orgA, Table: "contact", RowId: rowA}
	// The original publish carried a message id; the stream deduplicates
	// on it for an hour, so a redrive that kept it would be dropped.
	orig := f.origin(t, subject, change, nats.Header{"X-Trace": {"t-1"}, jetstream.MsgIDHeader: {"e-1"}}, 8)
	deadSeq := f.deadLetter(t, bus.ConsumerValidatorCRM, orig, "gave up after 8 deliveries")

	// Preconditions that held when the dead letter was stored would fail on
	// the origin stream (another stream; a subject that has messages).
	deadStream, _ := f.js.Stream(ctx(t), bus.StreamDeadLetter)
	raw, _ := deadStream.GetMsg(ctx(t), deadSeq)
	h := raw.Header
	h.Del(jetstream.MsgIDHeader) // else it is the first dead letter again
	h.Set(jetstream.ExpectedStreamHeader, bus.StreamDeadLetter)
	h.Set(jetstream.ExpectedLastSubjSeqHeader, "0")
	ack, err := f.js.PublishMsg(ctx(t), &nats.Msg{Subject: bus.DeadLetterSubject("replayed"), Data: raw.Data, Header: h})
	if err != nil {
		t.Fatal(err)
	}
	stored, _ := deadStream.GetMsg(ctx(t), ack.Sequence)
	if stored.Header.Get(jetstream.ExpectedStreamHeader) == "" {
		t.Fatalf("the dead letter stream dropped the precondition headers itself: the test proves nothing: %v", stored.Header)
	}

	out, err := f.store.Redrive(ctx(t), ack.Sequence, admin)
	if err != nil {
		t.Fatalf("redrive: %v", err)
	}
	again := f.messages(t, bus.StreamCRM, subject)
	if len(again) != 2 || out.Outcome != OutcomeRedriven || out.RedrivenSequence != again[1].Sequence || out.OriginSubject != subject {
		t.Fatalf("outcome %+v, %d messages on %s", out, len(again), subject)
	}
	r := again[1]
	if !sameBytes(r.Data, orig.Payload) {
		t.Error("the redriven payload differs from the original")
	}
	if r.Header.Get("X-Trace") != "t-1" || r.Header.Get(HeaderRedrivenFrom) != strconv.FormatUint(ack.Sequence, 10) {
		t.Errorf("headers %v: want the original X-Trace and %s", r.Header, HeaderRedrivenFrom)
	}
	for k := range r.Header {
		if strings.HasPrefix(k, "Nac-Dead-") || strings.HasPrefix(k, "Nats-Expected") {
			t.Errorf("redriven message carries %s", k)
		}
	}
	if got := r.Header.Get(jetstream.MsgIDHeader); got == "e-1" || !strings.HasPrefix(got, "redrive.") {
		t.Errorf("Nats-Msg-Id %q, want one derived from the dead letter", got)
	}
	if f.deadLetterExists(t, ack.Sequence) {
		t.Error("the dead letter is still there after its redrive")
	}
	if _, err := f.store.Redrive(ctx(t), ack.Sequence, admin); !errors.Is(err, ErrNotFound) {
		t.Errorf("second redrive: %v, want ErrNotFound", err)
	}
	if !f.deadLetterExists(t, deadSeq) {
		t.Error("another dead letter went too")
	}
}

// A redrive interrupted after its publish (before the delete) and tried
// again stores the message once, also on a stream that keeps one message
// per subject, where the precondition fails before deduplication.
func TestRedriveRetriedStoresOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, c := range []struct {
		name, stream, subject, consumer string
		msg                             proto.Message
	}{
		{"crm", bus.StreamCRM, bus.CRMSubject(orgA, "account", rowA), bus.ConsumerValidatorCRM, &eventsv1.CrmChange{EventId: "e-2"}},
		{"decision", bus.StreamDecisions, bus.DecisionSubject(orgA, contactA), bus.ConsumerWriter, &eventsv1.Decision{DecisionId: "d-2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			seq := f.deadLetter(t, c.consumer, f.origin(t, c.subject, c.msg, nil, 1), "400")
			m, err := f.store.read(ctx(t), seq)
			if err != nil {
				t.Fatal(err)
			}
			first, err := f.store.republish(ctx(t), m, letterOf(m))
			if err != nil {
				t.Fatal(err)
			}
			second, err := f.store.republish(ctx(t), m, letterOf(m))
			if err != nil {
				t.Fatalf("republish tried again: %v", err)
			}
			out, err := f.store.Redrive(ctx(t), seq, admin)
			if err != nil {
				t.Fatalf("redrive after two republishes: %v", err)
			}
			stored := f.messages(t, c.stream, c.subject)
			if first != second || out.RedrivenSequence != first || stored[len(stored)-1].Sequence != first {
				t.Errorf("stored at %d, then %d, redrive says %d, last on the subject %d", first, second, out.RedrivenSequence, stored[len(stored)-1].Sequence)
			}
			if c.stream == bus.StreamCRM && len(stored) != 2 {
				t.Errorf("%d messages on %s, want the original and one redrive", len(stored), c.subject)
			}
			if recs := f.auditRecords(t, orgA); len(recs) == 0 || recs[len(recs)-1].GetSequence() != seq {
				t.Errorf("audit records %v, want one for dead letter %d", recs, seq)
			}
		})
	}
}

// An old decision never replaces a newer one: the decision stream keeps
// one per contact.
func TestRedriveOfSupersededDecisionRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	subject := bus.DecisionSubject(orgA, contactA)
	seq := f.deadLetter(t, bus.ConsumerWriter, f.origin(t, subject, &eventsv1.Decision{DecisionId: "d-old"}, nil, 1), "400")
	newer := f.origin(t, subject, &eventsv1.Decision{DecisionId: "d-new"}, nil, 1)

	if _, err := f.store.Redrive(ctx(t), seq, admin); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("redrive of a superseded decision: %v, want ErrSuperseded", err)
	}
	stored := f.messages(t, bus.StreamDecisions, subject)
	if len(stored) != 1 || stored[0].Sequence != newer.Seq {
		t.Errorf("decisions on the subject: %d, want only the newer one (%d)", len(stored), newer.Seq)
	}
	if !f.deadLetterExists(t, seq) || len(f.auditRecords(t, orgA)) != 0 {
		t.Error("a refused redrive deleted or audited the dead letter")
	}
	if _, err := f.store.Discard(ctx(t), seq, admin); err != nil || f.deadLetterExists(t, seq) {
		t.Errorf("discard: %v", err)
	}
}

func TestDiscardAuditsWhoAndWhen(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	f.store.now = func() time.Time { return now }
	member := bus.ProfileMemberSubject("member-42")
	seq := f.deadLetter(t, bus.ConsumerValidatorProfile, f.origin(t, member, &eventsv1.ProfileChange{EventId: "p-1", MemberId: "member-42"}, nil, 2), "bad")
	out, err := f.store.Discard(ctx(t), seq, admin)
	if err != nil || out.Outcome != OutcomeDiscarded {
		t.Fatalf("discard: %+v, %v", out, err)
	}
	if f.deadLetterExists(t, seq) {
		t.Error("the dead letter is still there")
	}
	if n := len(f.messages(t, bus.StreamProfile, member)); n != 1 {
		t.Errorf("%d profile events, want the original only", n)
	}
	recs := f.auditRecords(t, AuditOrganization)
	if len(recs) != 1 {
		t.Fatalf("%d audit records, want 1", len(recs))
	}
	r := recs[0]
	if r.GetAction() != ActionDiscard || r.GetSequence() != seq || r.GetConsumer() != bus.ConsumerValidatorProfile || r.GetReason() != "bad" ||
		r.GetActor() != admin.Name || r.GetTokenFingerprint() != admin.TokenFingerprint || !r.GetActedAt().AsTime().Equal(now) ||
		r.GetOriginStream() != bus.StreamProfile || r.GetOriginSubject() != "nac.profile.member.*" {
		t.Errorf("audit record %v", r)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, "dead letter discarded") || !strings.Contains(logs, "sequence="+strconv.FormatUint(seq, 10)) {
		t.Errorf("log lacks the discard: %s", logs)
	}
	if strings.Contains(logs, "member-42") {
		t.Errorf("log names the member: %s", logs)
	}
}

func TestBulkRedriveAndDiscard(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	crmA, crmB, decision, profile := someDeadLetters(t, f)

	res, err := f.store.RedriveAll(ctx(t), Bulk{Filter: Filter{Organization: orgA}, Limit: 1}, admin)
	if err != nil {
		t.Fatal(err)
	}
	if res.Done != 1 || len(res.Outcomes) != 1 || res.Outcomes[0].Sequence != crmA || res.Next != crmA || res.UpTo != profile {
		t.Fatalf("first page: %+v", res)
	}
	// A message set aside again meanwhile lies beyond UpTo.
	later := f.deadLetter(t, bus.ConsumerValidatorCRM,
		f.origin(t, bus.CRMSubject(orgA, "contact", rowA), &eventsv1.CrmChange{EventId: "e-later"}, nil, 8), "gave up again")
	res, err = f.store.RedriveAll(ctx(t), Bulk{Filter: Filter{Organization: orgA}, After: res.Next, UpTo: res.UpTo}, admin)
	if err != nil {
		t.Fatal(err)
	}
	if res.Done != 1 || len(res.Outcomes) != 1 || res.Outcomes[0].Sequence != decision || res.Next != 0 {
		t.Fatalf("second page: %+v", res)
	}
	for _, seq := range []uint64{crmA, decision} {
		if f.deadLetterExists(t, seq) {
			t.Errorf("dead letter %d is still there", seq)
		}
	}
	for _, seq := range []uint64{crmB, profile, later} {
		if !f.deadLetterExists(t, seq) {
			t.Errorf("dead letter %d outside the filter or bound is gone", seq)
		}
	}

	res, err = f.store.DiscardAll(ctx(t), Bulk{Filter: Filter{Consumer: bus.ConsumerValidatorCRM}}, admin)
	if err != nil || res.Done != 2 || res.Action != ActionDiscard {
		t.Fatalf("discard all of a consumer: %+v, %v", res, err)
	}
	p, _ := f.store.List(ctx(t), Filter{}, 0, 0)
	if !equalSeqs(seqs(p), []uint64{profile}) {
		t.Errorf("left %v, want only the profile event's", seqs(p))
	}
	if n := len(f.auditRecords(t, orgA)); n != 3 {
		t.Errorf("%d audit records of organization A, want 3 (two redrives, one discard)", n)
	}
}

func TestBulkReportsSupersededAndGoesOn(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	subject := bus.DecisionSubject(orgA, contactA)
	old := f.deadLetter(t, bus.ConsumerWriter, f.origin(t, subject, &eventsv1.Decision{DecisionId: "d-old"}, nil, 1), "400")
	f.origin(t, subject, &eventsv1.Decision{DecisionId: "d-new"}, nil, 1)
	other := f.deadLetter(t, bus.ConsumerWriter, f.origin(t, bus.DecisionSubject(orgA, rowA), &eventsv1.Decision{DecisionId: "d-2"}, nil, 1), "400")
	res, err := f.store.RedriveAll(ctx(t), Bulk{Filter: Filter{Consumer: bus.ConsumerWriter}}, admin)
	if err != nil {
		t.Fatal(err)
	}
	if res.Done != 1 || len(res.Outcomes) != 2 || res.Outcomes[0].Sequence != old || res.Outcomes[0].Outcome != OutcomeSuperseded ||
		res.Outcomes[1].Sequence != other || res.Outcomes[1].Outcome != OutcomeRedriven {
		t.Errorf("result %+v", res)
	}
}
