package validator

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/evaluations"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
	"github.com/notatcompany/notatcompany/services/validator/decide"
)

// The erased member of the erasure scenario and everything about them that
// only the profile source knows. The contact's own name and email are the
// CRM's data (the CRM keeps them, and so does the validator's copy of the
// contact): so the member's profile names them differently, and has an
// email the CRM does not know.
const (
	erasedMember  = "urn:li:person:X7kQ2m9LpA"
	erasedFirst   = "Augusta"
	erasedLast    = "Byron-King"
	erasedURL     = "https://www.linkedin.com/in/augusta-byron-king-1815/"
	erasedEmail   = "countess@analytical.example"
	erasedTitle   = "Analytical Engine Programmer"
	erasedNewCo   = "Babbage Difference Works"
	erasedNewRole = "Chief Mathematician"
	crmEmail      = "ada.lovelace@contoso.com"
	// A second contact and member, not erased.
	keptContact = "7d8c4a0e-0000-4000-8000-0000000000b2"
	keptMember  = "urn:li:person:Grace-1906"
)

// erasedNeedles are the byte strings none of which may be left anywhere
// once the member is erased.
func erasedNeedles() map[string]string {
	return map[string]string{
		"member id":               erasedMember,
		"member subject token":    bus.Token(erasedMember),
		"member subject":          bus.ProfileMemberSubject(erasedMember),
		"first name":              erasedFirst,
		"last name":               erasedLast,
		"name index token":        bus.Token(decide.NameKey(erasedFirst, erasedLast)),
		"profile URL":             "augusta-byron-king-1815",
		"profile URL index token": bus.Token(decide.ProfileURLKey(erasedURL)),
		"email hash":              eventsv1.HashEmail(erasedEmail),
		"title":                   erasedTitle,
		"new company":             erasedNewCo,
		"new title":               erasedNewRole,
	}
}

func erasedProfile(eventID string, observed int) *eventsv1.ProfileChange {
	return &eventsv1.ProfileChange{
		EventId: eventID, Source: "feed", MemberId: erasedMember, FirstName: erasedFirst, LastName: erasedLast,
		ProfileUrl: erasedURL, EmailSha256: []string{eventsv1.HashEmail(crmEmail), eventsv1.HashEmail(erasedEmail)},
		ObservedAt: at(observed), ReceivedAt: at(observed), Country: "GB",
		Positions: []*eventsv1.Position{
			{CompanyName: "Contoso Ltd", Title: erasedTitle, Start: ymP(2018, 3), End: ymP(2024, 6)},
			{CompanyName: erasedNewCo, Title: erasedNewRole, Start: ymP(2024, 7), Current: true},
		},
	}
}

// pipeline is the validator running on its consumers, fed through the
// streams as ingest feeds it.
type pipeline struct {
	t   *testing.T
	ctx context.Context
	js  jetstream.JetStream
	svc *Service
}

func startPipeline(t *testing.T) *pipeline {
	t.Helper()
	js, _ := testkit.JetStream(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	cfg := Config{FlagColumn: DefaultFlagColumn, Threshold: DefaultThreshold, Workers: 2, HandleTimeout: 10 * time.Second,
		InlineFanout: 200, ChunkSize: 500}
	loops, err := Workers(ctx, cfg, js, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, run := range loops {
		wg.Go(func() { _ = run(runCtx) })
	}
	t.Cleanup(func() { stop(); wg.Wait() })
	svc, err := Open(ctx, cfg, js, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return &pipeline{t: t, ctx: ctx, js: js, svc: svc}
}

func (p *pipeline) publish(subject string, m proto.Message) {
	p.t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.js.Publish(p.ctx, subject, data); err != nil {
		p.t.Fatalf("publish %s: %v", subject, err)
	}
}

func (p *pipeline) crm(ch *eventsv1.CrmChange) {
	p.publish(bus.CRMSubject(ch.GetOrganizationId(), ch.GetTable(), ch.GetRowId()), ch)
}

func (p *pipeline) decision(contact string) *eventsv1.Decision {
	s, err := p.js.Stream(p.ctx, bus.StreamDecisions)
	if err != nil {
		p.t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(p.ctx, bus.DecisionSubject(org, contact))
	if err != nil {
		return nil
	}
	var d eventsv1.Decision
	if err := proto.Unmarshal(raw.Data, &d); err != nil {
		p.t.Fatal(err)
	}
	return &d
}

func (p *pipeline) waitDecision(contact string, value eventsv1.Flag, cause string) *eventsv1.Decision {
	p.t.Helper()
	var d *eventsv1.Decision
	testkit.Eventually(p.t, "decision "+value.String()+" caused by "+cause, 20*time.Second, func() bool {
		d = p.decision(contact)
		return d.GetValue() == value && d.GetCauseEventId() == cause
	})
	return d
}

// idle waits until every validator consumer has handled all it was given.
func (p *pipeline) idle() {
	p.t.Helper()
	testkit.Eventually(p.t, "the validator's consumers idle", 20*time.Second, func() bool {
		for stream, name := range map[string]string{bus.StreamCRM: bus.ConsumerValidatorCRM, bus.StreamProfile: bus.ConsumerValidatorProfile,
			bus.StreamAdmin: bus.ConsumerValidatorAdmin, bus.StreamWork: bus.ConsumerValidatorWork} {
			c, err := p.js.Consumer(p.ctx, stream, name)
			if err != nil {
				return false
			}
			info, err := c.Info(p.ctx)
			if err != nil || info.NumPending > 0 || info.NumAckPending > 0 {
				return false
			}
		}
		return true
	})
}

// scan reads every message of every stream (KV buckets are streams too,
// every revision kept included): subject, headers and data, as raw bytes,
// and reports where each needle turns up.
func (p *pipeline) scan(needles map[string]string) []string {
	p.t.Helper()
	var found []string
	names := p.js.StreamNames(p.ctx)
	for name := range names.Name() {
		s, err := p.js.Stream(p.ctx, name)
		if err != nil {
			p.t.Fatal(err)
		}
		info, err := s.Info(p.ctx)
		if err != nil {
			p.t.Fatal(err)
		}
		for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
			m, err := s.GetMsg(p.ctx, seq)
			if errors.Is(err, jetstream.ErrMsgNotFound) {
				continue
			}
			if err != nil {
				p.t.Fatal(err)
			}
			var raw bytes.Buffer
			raw.WriteString(m.Subject + "\n")
			for k, vs := range m.Header {
				raw.WriteString(k + ": " + strings.Join(vs, ",") + "\n")
			}
			raw.Write(m.Data)
			for what, needle := range needles {
				if bytes.Contains(raw.Bytes(), []byte(needle)) {
					found = append(found, what+" in "+name+" "+m.Subject)
				}
			}
		}
	}
	if err := names.Err(); err != nil {
		p.t.Fatal(err)
	}
	return found
}

// erasureScenario flags two contacts on two members' profiles, sets aside
// a bad event of the member to be erased, and erases that member.
func erasureScenario(t *testing.T) (p *pipeline, before *eventsv1.Decision, kept *eventsv1.Decision) {
	p, before, kept, _ = erasureScenarioKept(t)
	return p, before, kept
}

// erasureScenarioKept is erasureScenario, and the erased member's contact's
// kept evaluation from before the erasure.
func erasureScenarioKept(t *testing.T) (p *pipeline, before, kept *eventsv1.Decision, keptBefore *eventsv1.Evaluation) {
	p = startPipeline(t)
	p.publish(bus.AdminSyncUserSubject(org, syncUser), &eventsv1.SyncUserChange{EventId: "su", OrganizationId: org,
		UserId: syncUser, Enabled: true, ChangedAt: at(0)})
	p.crm(accountCreate("Contoso Ltd", ""))
	p.crm(contactCreate(contactID, crmEmail))
	grace := contactCreate(keptContact, "grace@contoso.com")
	grace.EventId, grace.Columns["firstname"], grace.Columns["lastname"] = "crm-grace", strV("Grace"), strV("Hopper")
	p.crm(grace)
	p.idle()

	p.publish(bus.ProfileMemberSubject(erasedMember), erasedProfile("feed-ada", 10))
	p.publish(bus.ProfileMemberSubject(keptMember), &eventsv1.ProfileChange{
		EventId: "feed-grace", Source: "feed", MemberId: keptMember, FirstName: "Grace", LastName: "Hopper",
		EmailSha256: []string{eventsv1.HashEmail("grace@contoso.com")}, ObservedAt: at(10), ReceivedAt: at(10),
		Positions: []*eventsv1.Position{
			{CompanyName: "Contoso Ltd", Title: "Engineer", Start: ymP(2015, 1), End: ymP(2023, 1)},
			{CompanyName: "US Navy", Title: "Rear Admiral", Start: ymP(2023, 2), Current: true},
		},
	})
	// A bad event of the member's (an email hash that is none), set aside
	// in the dead letter stream with all it says.
	bad := erasedProfile("feed-ada-bad", 11)
	bad.EmailSha256 = append(bad.EmailSha256, "not a hash")
	p.publish(bus.ProfileMemberSubject(erasedMember), bad)
	before = p.waitDecision(contactID, eventsv1.Flag_FLAG_NOT_AT_COMPANY, "feed-ada")
	kept = p.waitDecision(keptContact, eventsv1.Flag_FLAG_NOT_AT_COMPANY, "feed-grace")
	p.idle()
	// Until the erasure, the evidence reads in full.
	if ev, err := p.svc.OpenEvidence(p.ctx, before); err != nil || ev.GetMemberId() != erasedMember ||
		ev.GetCurrentPosition().GetCompanyName() != erasedNewCo || ev.GetEndedPosition().GetTitle() != erasedTitle {
		t.Fatalf("evidence before the erasure: %v, %v", ev, err)
	}
	if found := p.scan(erasedNeedles()); len(found) == 0 {
		t.Fatal("the scan finds nothing of the member before the erasure: it cannot tell")
	}
	// The kept evaluation reads in full too, its member part sealed.
	keptBefore = p.evaluation(contactID)
	if ev, err := p.svc.OpenEvidence(p.ctx, keptBefore.GetResult()); err != nil || ev.GetMemberId() != erasedMember ||
		keptBefore.GetResult().GetEvidence().GetSealed() == nil || keptBefore.GetResult().GetEvidence().GetMemberId() != "" {
		t.Fatalf("kept evaluation before the erasure: %v, %v", ev, err)
	}

	p.publish(bus.ProfileErasureSubject(erasedMember), &eventsv1.MemberErased{EventId: "erase-ada", Source: "feed",
		MemberId: erasedMember, ObservedAt: at(20), ReceivedAt: at(20)})
	p.idle()
	return p, before, kept, keptBefore
}

// evaluation is the contact's kept evaluation.
func (p *pipeline) evaluation(contact string) *eventsv1.Evaluation {
	p.t.Helper()
	rec, _, err := p.svc.evals.get(p.ctx, evaluations.Key(org, contact))
	if err != nil || rec == nil {
		p.t.Fatalf("evaluation of %s: %v, %v", contact, rec, err)
	}
	return rec
}

func TestErasureLeavesNothingOfTheMember(t *testing.T) {
	t.Parallel()
	p, _, _, keptBefore := erasureScenarioKept(t)

	// The contact the member flagged is back to No Feedback; the other
	// member's contact still stands.
	if d := p.decision(contactID); d.GetValue() != eventsv1.Flag_FLAG_NO_FEEDBACK || d.GetReason() != decide.ReasonUnmatched ||
		d.GetCauseEventId() != "erase-ada" {
		t.Errorf("decision after the erasure = %v %q (cause %q), want NO_FEEDBACK unmatched caused by erase-ada",
			d.GetValue(), d.GetReason(), d.GetCauseEventId())
	}
	if d := p.decision(keptContact); d.GetValue() != eventsv1.Flag_FLAG_NOT_AT_COMPANY {
		t.Errorf("the other member's contact: %v, want still NOT_AT_COMPANY", d.GetValue())
	}
	for _, f := range p.scan(erasedNeedles()) {
		t.Errorf("after the erasure: %s", f)
	}
	// The kept evaluation is the new one, and a copy of the old one no
	// longer opens: its member part was sealed with the destroyed key.
	if rec := p.evaluation(contactID); rec.GetResult().GetReason() != decide.ReasonUnmatched || rec.GetResult().GetCauseEventId() != "erase-ada" {
		t.Errorf("kept evaluation after the erasure: %q caused by %q", rec.GetResult().GetReason(), rec.GetResult().GetCauseEventId())
	}
	if _, err := p.svc.OpenEvidence(p.ctx, keptBefore.GetResult()); !errors.Is(err, ErrShredded) {
		t.Errorf("the kept evaluation from before the erasure opens: %v, want ErrShredded", err)
	}
	if s, err := p.js.Stream(p.ctx, "KV_"+bus.BucketEvaluations); err != nil || s.CachedInfo().State.Msgs == 0 {
		t.Errorf("the scan above did not cover the kept evaluations: %v", err)
	}
	// The scan is not blind: the member not erased is still there.
	if found := p.scan(map[string]string{"kept member": keptMember}); len(found) == 0 {
		t.Error("the member not erased is gone too")
	}
}
