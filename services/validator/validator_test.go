package validator

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
	"github.com/notatcompany/notatcompany/services/validator/decide"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

const (
	org       = "5f0c7f10-0000-4000-8000-00000000000a"
	contactID = "7d8c4a0e-0000-4000-8000-000000000001"
	otherID   = "7d8c4a0e-0000-4000-8000-000000000002"
	accountID = "a1b2c3d4-0000-4000-8000-000000000001"
	syncUser  = "5e5e5e5e-0000-4000-8000-000000000001"
	email     = "Ada.Lovelace@Contoso.com"
)

var t0 = time.Date(2025, 5, 1, 8, 0, 0, 0, time.UTC)

func at(n int) *timestamppb.Timestamp { return timestamppb.New(t0.Add(time.Duration(n) * time.Minute)) }

// msgOf is m as a consumer hands it to a handler.
func msgOf(t *testing.T, subject string, m proto.Message) *testkit.Msg {
	t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return &testkit.Msg{Subj: subject, Payload: data}
}

type env struct {
	t   *testing.T
	svc *Service
	reg *prometheus.Registry
	js  jetstream.JetStream
	ctx context.Context
}

func newEnv(t *testing.T) *env {
	t.Helper()
	js, _ := testkit.JetStream(t)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	reg := prometheus.NewRegistry()
	cfg := Config{FlagColumn: DefaultFlagColumn, Threshold: DefaultThreshold, Workers: 1, HandleTimeout: 10 * time.Second,
		InlineFanout: 200, ChunkSize: 500}
	svc, err := Open(ctx, cfg, js, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	// The test account's owner is a sync user: its contacts are in scope.
	if _, _, err := svc.store.ApplySyncUser(ctx, &eventsv1.SyncUserChange{EventId: "su", OrganizationId: org,
		UserId: syncUser, Enabled: true, ChangedAt: at(0)}); err != nil {
		t.Fatal(err)
	}
	return &env{t: t, svc: svc, reg: reg, js: js, ctx: ctx}
}

func (e *env) crm(ch *eventsv1.CrmChange) error {
	// A change of a system user is held back for a second pass, which
	// TestScopeChangeSettles looks at: here the first pass is enough.
	err := e.svc.HandleCRM(e.ctx, msgOf(e.t, bus.CRMSubject(ch.GetOrganizationId(), ch.GetTable(), ch.GetRowId()), ch))
	if bus.IsHold(err) {
		return nil
	}
	return err
}

func (e *env) mustCRM(ch *eventsv1.CrmChange) {
	e.t.Helper()
	if err := e.crm(ch); err != nil {
		e.t.Fatalf("HandleCRM(%s %s): %v", ch.GetTable(), ch.GetRowId(), err)
	}
}

func (e *env) mustProfile(p *eventsv1.ProfileChange) {
	e.t.Helper()
	if err := e.svc.HandleProfile(e.ctx, msgOf(e.t, bus.ProfileMemberSubject(p.GetMemberId()), p)); err != nil {
		e.t.Fatalf("HandleProfile(%s): %v", p.GetEventId(), err)
	}
}

// published counts the messages ever stored in a stream.
func (e *env) published(stream string) uint64 {
	e.t.Helper()
	s, err := e.js.Stream(e.ctx, stream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(e.ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.LastSeq
}

// last returns the newest message on subject, decoded into m.
func (e *env) last(stream, subject string, m proto.Message) *jetstream.RawStreamMsg {
	e.t.Helper()
	s, err := e.js.Stream(e.ctx, stream)
	if err != nil {
		e.t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(e.ctx, subject)
	if err != nil {
		e.t.Fatalf("last message on %s: %v", subject, err)
	}
	if err := proto.Unmarshal(raw.Data, m); err != nil {
		e.t.Fatal(err)
	}
	return raw
}

func (e *env) counter(c prometheus.Collector) float64 { return testutil.ToFloat64(c) }

func contactChange(id string, version int, cols map[string]*eventsv1.Value) *eventsv1.CrmChange {
	return &eventsv1.CrmChange{
		EventId: "crm-" + id + "-" + at(version).AsTime().Format("1504"), OrganizationId: org, Table: "contact", RowId: id,
		Operation: eventsv1.Operation_OPERATION_UPDATE, Columns: cols, RowModifiedAt: at(version),
	}
}

func strV(s string) *eventsv1.Value {
	return &eventsv1.Value{Kind: &eventsv1.Value_String_{String_: s}}
}
func choiceV(n int32) *eventsv1.Value {
	return &eventsv1.Value{Kind: &eventsv1.Value_Choice{Choice: n}}
}
func refV(table, id string) *eventsv1.Value {
	return &eventsv1.Value{Kind: &eventsv1.Value_Reference{Reference: &eventsv1.EntityReference{Table: table, Id: id}}}
}

func contactCreate(id, mail string) *eventsv1.CrmChange {
	ch := contactChange(id, 1, map[string]*eventsv1.Value{
		"firstname": strV("Ada"), "lastname": strV("Lovelace"), "emailaddress1": strV(mail),
		"parentcustomerid": refV("account", accountID), "statecode": choiceV(0),
	})
	ch.Operation = eventsv1.Operation_OPERATION_CREATE
	return ch
}

func accountCreate(name, website string) *eventsv1.CrmChange {
	return &eventsv1.CrmChange{
		EventId: "crm-account-1", OrganizationId: org, Table: "account", RowId: accountID,
		Operation: eventsv1.Operation_OPERATION_CREATE, RowModifiedAt: at(2),
		Columns: map[string]*eventsv1.Value{"name": strV(name), "websiteurl": strV(website), "ownerid": refV("systemuser", syncUser)},
	}
}

func ymP(y, m int32) *eventsv1.YearMonth { return &eventsv1.YearMonth{Year: y, Month: m} }

// leftProfile: Contoso ended, Fabrikam current.
func leftProfile(eventID string, observed int) *eventsv1.ProfileChange {
	return &eventsv1.ProfileChange{
		EventId: eventID, Source: "feed", MemberId: "m-1", FirstName: "Ada", LastName: "Lovelace",
		EmailSha256: []string{eventsv1.HashEmail(email)}, ObservedAt: at(observed),
		Positions: []*eventsv1.Position{
			{CompanyName: "Contoso", Title: "Engineer", Start: ymP(2018, 3), End: ymP(2024, 6)},
			{CompanyName: "Fabrikam", Title: "Lead", Start: ymP(2024, 7), Current: true},
		},
	}
}

// backProfile: current at Contoso again.
func backProfile(eventID string, observed int) *eventsv1.ProfileChange {
	p := leftProfile(eventID, observed)
	p.Positions = append(p.Positions, &eventsv1.Position{CompanyName: "Contoso Ltd.", Title: "Principal", Start: ymP(2025, 4), Current: true})
	return p
}

func TestScenarioLeftThenBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	evalContact := e.svc.metrics.evaluations.WithLabelValues("crm_contact")
	evalAccount := e.svc.metrics.evaluations.WithLabelValues("crm_account")
	decisionSubject := bus.DecisionSubject(org, contactID)
	auditSubject := bus.AuditSubject("decision", org)

	e.mustCRM(contactCreate(contactID, email))
	if got := e.counter(evalContact); got != 1 {
		t.Errorf("evaluations{crm_contact} = %v after one contact change, want 1", got)
	}
	e.mustCRM(accountCreate("Contoso Ltd", "https://www.contoso.com"))
	if got := e.counter(evalAccount); got != 1 {
		t.Errorf("evaluations{crm_account} = %v, want 1 (the account's one contact)", got)
	}
	if n := e.published(bus.StreamDecisions); n != 0 {
		t.Fatalf("%d decisions before any profile, want none (no feedback is the column's value already)", n)
	}

	left := leftProfile("feed-1", 10)
	e.mustProfile(left)
	if n := e.published(bus.StreamDecisions); n != 1 {
		t.Fatalf("%d decisions published, want exactly 1", n)
	}
	var d eventsv1.Decision
	raw := e.last(bus.StreamDecisions, decisionSubject, &d)
	if raw.Subject != "nac.decision."+org+"."+contactID {
		t.Errorf("decision subject = %s", raw.Subject)
	}
	if d.GetValue() != eventsv1.Flag_FLAG_NOT_AT_COMPANY || d.GetPrevious() != eventsv1.Flag_FLAG_NO_FEEDBACK || d.GetReason() != decide.ReasonLeft {
		t.Errorf("decision = %v (previous %v) %q, want NOT_AT_COMPANY left_company", d.GetValue(), d.GetPrevious(), d.GetReason())
	}
	if d.GetOrganizationId() != org || d.GetContactId() != contactID || d.GetCauseEventId() != "feed-1" || d.GetDecisionId() == "" {
		t.Errorf("decision ids = %q %q %q %q", d.GetOrganizationId(), d.GetContactId(), d.GetCauseEventId(), d.GetDecisionId())
	}
	if d.GetConfidence() != 0.855 {
		t.Errorf("confidence = %v, want 0.855", d.GetConfidence())
	}
	// What the decision says of the member travels only sealed.
	if ev := d.GetEvidence(); ev.GetMemberId() != "" || ev.GetCurrentPosition() != nil || ev.GetEndedPosition() != nil ||
		ev.GetContradicts() != nil || ev.GetProfileObservedAt() != nil || ev.GetSealed() == nil {
		t.Errorf("published evidence carries the member's part in clear: %v", ev)
	}
	ev := e.opened(&d)
	if ev.GetMemberId() != "m-1" || ev.GetMemberMatch() != "email" || ev.GetCompanyName() != "Contoso Ltd" || ev.GetCompanyMatch() != "name" {
		t.Errorf("evidence = %v", ev)
	}
	if ev.GetCurrentPosition().GetCompanyName() != "Fabrikam" || !ev.GetCurrentPosition().GetCurrent() {
		t.Errorf("current position = %v, want Fabrikam", ev.GetCurrentPosition())
	}
	if ep := ev.GetEndedPosition(); ep.GetCompanyName() != "Contoso" || ep.GetEnd().GetYear() != 2024 || ep.GetEnd().GetMonth() != 6 {
		t.Errorf("ended position = %v, want Contoso until 2024-06", ep)
	}
	if ev.GetContradicts()["parentcustomerid"] != "Contoso Ltd" || ev.GetProfileSource() != "feed" || !ev.GetProfileObservedAt().AsTime().Equal(left.GetObservedAt().AsTime()) {
		t.Errorf("evidence = %v", ev)
	}
	if raw.Header.Get(nats.MsgIdHdr) != d.GetDecisionId() {
		t.Errorf("Nats-Msg-Id = %q, want the decision id %q", raw.Header.Get(nats.MsgIdHdr), d.GetDecisionId())
	}
	var audit eventsv1.Decision
	e.last(bus.StreamAudit, auditSubject, &audit)
	if !proto.Equal(&audit, &d) {
		t.Errorf("audit copy = %v, want %v", &audit, &d)
	}
	if got := e.counter(e.svc.metrics.decisions.WithLabelValues("1", decide.ReasonLeft)); got != 1 {
		t.Errorf("decisions{1,left_company} = %v", got)
	}

	// The same profile again (a redelivery, or the source repeating itself).
	e.mustProfile(left)
	e.mustProfile(leftProfile("feed-1-again", 10))
	if n := e.published(bus.StreamDecisions); n != 1 {
		t.Errorf("a duplicate profile published a decision (%d in all)", n)
	}
	if n := e.published(bus.StreamAudit); n != 1 {
		t.Errorf("a duplicate profile published an audit record (%d in all)", n)
	}
	if got := e.counter(e.svc.metrics.events.WithLabelValues("profile", "unchanged")); got != 2 {
		t.Errorf("events{profile,unchanged} = %v, want 2", got)
	}

	// Back at the company, observed later.
	e.mustProfile(backProfile("feed-2", 20))
	if n := e.published(bus.StreamDecisions); n != 2 {
		t.Fatalf("%d decisions published in all, want 2", n)
	}
	var back eventsv1.Decision
	e.last(bus.StreamDecisions, decisionSubject, &back)
	if back.GetValue() != eventsv1.Flag_FLAG_NO_FEEDBACK || back.GetReason() != decide.ReasonStillThere || back.GetPrevious() != eventsv1.Flag_FLAG_NOT_AT_COMPANY {
		t.Errorf("decision = %v %q (previous %v), want NO_FEEDBACK still_at_company", back.GetValue(), back.GetReason(), back.GetPrevious())
	}
	if back.GetDecisionId() == d.GetDecisionId() || back.GetCauseEventId() != "feed-2" {
		t.Errorf("second decision ids = %q cause %q", back.GetDecisionId(), back.GetCauseEventId())
	}
	// The stream keeps only the latest decision for the contact.
	if s, _ := e.js.Stream(e.ctx, bus.StreamDecisions); s != nil {
		if info, err := s.Info(e.ctx); err != nil || info.State.Msgs != 1 {
			t.Errorf("NAC_DECISIONS holds %d messages, want 1", info.State.Msgs)
		}
	}
	if n := e.published(bus.StreamAudit); n != 2 {
		t.Errorf("%d audit records, want 2", n)
	}

	// An older observation arriving late changes nothing.
	e.mustProfile(leftProfile("feed-late", 15))
	if n := e.published(bus.StreamDecisions); n != 2 {
		t.Errorf("an older profile published a decision (%d in all)", n)
	}
	last, _, err := e.svc.decisions.Last(e.ctx, org, contactID)
	if err != nil || last.Value != decide.NoFeedback || last.Decision.GetReason() != decide.ReasonStillThere || last.Decision.GetDecisionId() != back.GetDecisionId() {
		t.Errorf("last decision = %+v, %v", last, err)
	}

	if problems, err := testutil.GatherAndLint(e.reg); err != nil || len(problems) != 0 {
		t.Errorf("metric lint: %v %v", problems, err)
	}
}

func TestContactChangeEvaluatesOnlyThatContact(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	evalContact := e.svc.metrics.evaluations.WithLabelValues("crm_contact")
	evalAccount := e.svc.metrics.evaluations.WithLabelValues("crm_account")
	e.mustCRM(contactCreate(contactID, email))
	e.mustCRM(contactCreate(otherID, "grace@contoso.com"))
	e.mustCRM(accountCreate("Contoso Ltd", ""))
	if got := e.counter(evalAccount); got != 2 {
		t.Errorf("account change evaluated %v contacts, want its 2", got)
	}
	before := e.counter(evalContact)
	e.mustCRM(contactChange(contactID, 5, map[string]*eventsv1.Value{"jobtitle": strV("Engineer")}))
	if got := e.counter(evalContact) - before; got != 1 {
		t.Errorf("contact change evaluated %v contacts, want 1", got)
	}
	// A rename takes the contact out of its name's counts: the other Ada
	// Lovelace of the account is no longer one of two.
	before = e.counter(evalContact)
	e.mustCRM(contactChange(contactID, 6, map[string]*eventsv1.Value{"lastname": strV("King")}))
	if got := e.counter(evalContact) - before; got != 2 {
		t.Errorf("rename evaluated %v contacts, want it and its former namesake", got)
	}
	// A change that changes nothing evaluates nobody.
	before = e.counter(evalContact)
	e.mustCRM(contactChange(contactID, 6, map[string]*eventsv1.Value{"lastname": strV("King")}))
	if got := e.counter(evalContact) - before; got != 0 {
		t.Errorf("duplicate contact change evaluated %v contacts, want 0", got)
	}
	if got := e.counter(e.svc.metrics.events.WithLabelValues("crm_contact", "unchanged")); got != 1 {
		t.Errorf("events{crm_contact,unchanged} = %v", got)
	}
	// Other tables are not used.
	if err := e.crm(&eventsv1.CrmChange{OrganizationId: org, Table: "lead", RowId: accountID}); err != nil {
		t.Errorf("untracked table: %v", err)
	}
	if got := e.counter(e.svc.metrics.events.WithLabelValues("crm_other", "not_used")); got != 1 {
		t.Errorf("events{crm_other,not_used} = %v", got)
	}
}

func TestPermanentErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	garbage := []byte("this is not protobuf")
	for name, call := range map[string]func() error{
		"crm garbage": func() error {
			return e.svc.HandleCRM(e.ctx, &testkit.Msg{Subj: "nac.crm.x.contact.y", Payload: garbage})
		},
		"profile garbage": func() error {
			return e.svc.HandleProfile(e.ctx, &testkit.Msg{Subj: bus.ProfileMemberSubject("m"), Payload: garbage})
		},
		"erasure garbage": func() error {
			return e.svc.HandleProfile(e.ctx, &testkit.Msg{Subj: bus.ProfileErasureSubject("m"), Payload: garbage})
		},
		"company garbage": func() error {
			return e.svc.HandleProfile(e.ctx, &testkit.Msg{Subj: bus.ProfileCompanySubject("c"), Payload: garbage})
		},
		"unknown profile subject": func() error {
			return e.svc.HandleProfile(e.ctx, msgOf(t, "nac.profile.other.x", leftProfile("x", 1)))
		},
	} {
		t.Run(name, func(t *testing.T) {
			err := call()
			if err == nil || !bus.IsPermanent(err) {
				t.Errorf("err = %v, want a permanent error", err)
			}
		})
	}
	// A change that needs a read-back is acknowledged and changes nothing:
	// the sync workers read the row back and publish it.
	rb := contactChange(contactID, 1, nil)
	rb.ReadBackRequired = true
	if err := e.crm(rb); err != nil {
		t.Errorf("read-back required: %v, want acknowledged", err)
	}
	if row, err := e.svc.store.Row(e.ctx, org, "contact", contactID); row != nil || err != nil {
		t.Errorf("a read-back change was applied: %+v %v", row, err)
	}
	// Read-back of a table the validator does not keep is simply not used.
	ch := &eventsv1.CrmChange{OrganizationId: org, Table: "lead", RowId: contactID, ReadBackRequired: true}
	if err := e.crm(ch); err != nil {
		t.Errorf("read-back of an untracked table: %v", err)
	}
}

func TestErasureClearsFlag(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCRM(contactCreate(contactID, email))
	e.mustCRM(accountCreate("Contoso Ltd", ""))
	e.mustProfile(leftProfile("feed-1", 10))
	erasure := &eventsv1.MemberErased{EventId: "erase-1", Source: "feed", MemberId: "m-1", ObservedAt: at(11)}
	if err := e.svc.HandleProfile(e.ctx, msgOf(t, bus.ProfileErasureSubject("m-1"), erasure)); err != nil {
		t.Fatal(err)
	}
	var d eventsv1.Decision
	e.last(bus.StreamDecisions, bus.DecisionSubject(org, contactID), &d)
	if d.GetValue() != eventsv1.Flag_FLAG_NO_FEEDBACK || d.GetReason() != decide.ReasonUnmatched || d.GetCauseEventId() != "erase-1" {
		t.Errorf("decision after erasure = %v %q cause %q, want NO_FEEDBACK unmatched", d.GetValue(), d.GetReason(), d.GetCauseEventId())
	}
	if d.GetEvidence().GetMemberId() != "" || d.GetEvidence().GetCurrentPosition() != nil {
		t.Errorf("decision after erasure carries member data: %v", d.GetEvidence())
	}
	// The erased member's late profile does not bring it back.
	e.mustProfile(leftProfile("feed-late", 9))
	if n := e.published(bus.StreamDecisions); n != 2 {
		t.Errorf("%d decisions, want 2", n)
	}
}

func TestCompanyPageMatchesByDomain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCRM(contactCreate(contactID, email))
	e.mustCRM(accountCreate("Contoso Ltd", "https://www.contoso.com"))
	p := leftProfile("feed-1", 10)
	p.Positions[0].CompanyId, p.Positions[0].CompanyName = "co-77", "CTSO"
	e.mustProfile(p)
	if n := e.published(bus.StreamDecisions); n != 0 {
		t.Fatalf("%d decisions before the company page is known, want 0", n)
	}
	co := &eventsv1.CompanyChange{EventId: "co-1", Source: "feed", CompanyId: "co-77", Name: "CTSO Holdings", Domains: []string{"contoso.com"}, ObservedAt: at(12)}
	if err := e.svc.HandleProfile(e.ctx, msgOf(t, bus.ProfileCompanySubject("co-77"), co)); err != nil {
		t.Fatal(err)
	}
	var d eventsv1.Decision
	e.last(bus.StreamDecisions, bus.DecisionSubject(org, contactID), &d)
	if d.GetValue() != eventsv1.Flag_FLAG_NOT_AT_COMPANY || d.GetEvidence().GetCompanyMatch() != "domain" ||
		d.GetEvidence().GetCompanyId() != "co-77" || d.GetConfidence() != 0.931 || d.GetCauseEventId() != "co-1" {
		t.Errorf("decision = %v", &d)
	}
	if got := e.counter(e.svc.metrics.evaluations.WithLabelValues("company")); got != 1 {
		t.Errorf("evaluations{company} = %v", got)
	}
	// The same company page again: nothing.
	if err := e.svc.HandleProfile(e.ctx, msgOf(t, bus.ProfileCompanySubject("co-77"), co)); err != nil {
		t.Fatal(err)
	}
	if got := e.counter(e.svc.metrics.events.WithLabelValues("company", "unchanged")); got != 1 {
		t.Errorf("events{company,unchanged} = %v", got)
	}
}

func TestUserIgnoreIsKept(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ch := contactCreate(contactID, email)
	ch.Columns[DefaultFlagColumn] = choiceV(decide.Ignore)
	e.mustCRM(ch)
	e.mustCRM(accountCreate("Contoso Ltd", ""))
	e.mustProfile(leftProfile("feed-1", 10))
	if n := e.published(bus.StreamDecisions); n != 0 {
		t.Errorf("%d decisions for a contact a user set to Ignore", n)
	}
}

func TestUserResetAfterDecisionIsFlaggedAgain(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.svc.now = func() time.Time { return at(10).AsTime() }
	e.mustCRM(contactCreate(contactID, email))
	e.mustCRM(accountCreate("Contoso Ltd", ""))
	e.mustProfile(leftProfile("feed-1", 10))
	// Our own write of the flag coming back changes nothing.
	e.mustCRM(contactChange(contactID, 12, map[string]*eventsv1.Value{DefaultFlagColumn: choiceV(1)}))
	if n := e.published(bus.StreamDecisions); n != 1 {
		t.Fatalf("%d decisions, want 1", n)
	}
	// A user sets the column back to No Feedback after the decision: the
	// evidence still holds, so the decision goes out again.
	e.mustCRM(contactChange(contactID, 30, map[string]*eventsv1.Value{DefaultFlagColumn: choiceV(0)}))
	if n := e.published(bus.StreamDecisions); n != 2 {
		t.Fatalf("%d decisions, want 2", n)
	}
	var d eventsv1.Decision
	e.last(bus.StreamDecisions, bus.DecisionSubject(org, contactID), &d)
	if d.GetValue() != eventsv1.Flag_FLAG_NOT_AT_COMPANY {
		t.Errorf("decision = %v", d.GetValue())
	}
}

func TestDeletedContactIsUnflagged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCRM(contactCreate(contactID, email))
	e.mustCRM(accountCreate("Contoso Ltd", ""))
	e.mustProfile(leftProfile("feed-1", 10))
	ch := contactChange(contactID, 40, nil)
	ch.Operation = eventsv1.Operation_OPERATION_DELETE
	e.mustCRM(ch)
	var d eventsv1.Decision
	e.last(bus.StreamDecisions, bus.DecisionSubject(org, contactID), &d)
	if d.GetValue() != eventsv1.Flag_FLAG_NO_FEEDBACK || d.GetReason() != decide.ReasonContactGone {
		t.Errorf("decision = %v %q", d.GetValue(), d.GetReason())
	}
	// And it is no longer found through its email.
	refs, err := e.svc.store.ContactsMatchable(e.ctx, &state.MemberRecord{EmailHashes: []string{eventsv1.HashEmail(email)}})
	if err != nil || len(refs) != 0 {
		t.Errorf("ContactsByEmail = %v %v", refs, err)
	}
}

// failingPublisher stores nothing.
type failingPublisher struct{ err error }

func (p failingPublisher) PublishProto(context.Context, string, string, proto.Message) error {
	return p.err
}

func (p failingPublisher) Publish(context.Context, string, string, []byte, nats.Header) error {
	return p.err
}

func (p failingPublisher) PublishAll(_ context.Context, out []bus.Outgoing) []error {
	errs := make([]error, len(out))
	for i := range errs {
		errs[i] = p.err
	}
	return errs
}

func TestPublishFailureIsTransientAndRetried(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCRM(contactCreate(contactID, email))
	e.mustCRM(accountCreate("Contoso Ltd", ""))
	good := e.svc.pub
	e.svc.pub = failingPublisher{err: bus.ErrNotStored}
	msg := msgOf(t, bus.ProfileMemberSubject("m-1"), leftProfile("feed-1", 10))
	err := e.svc.HandleProfile(e.ctx, msg)
	if err == nil || bus.IsPermanent(err) || !errors.Is(err, bus.ErrNotStored) {
		t.Fatalf("err = %v, want a transient error", err)
	}
	// The decision went out; its audit record did not.
	if n := e.published(bus.StreamAudit); n != 0 {
		t.Fatalf("%d audit records with the audit publisher failing", n)
	}
	// The redelivery finds the profile applied and the decision published
	// already; it stores the audit record the first attempt could not.
	e.svc.pub = good
	msg.Delivered = 2
	if err := e.svc.HandleProfile(e.ctx, msg); err != nil {
		t.Fatal(err)
	}
	var d eventsv1.Decision
	e.last(bus.StreamDecisions, bus.DecisionSubject(org, contactID), &d)
	if d.GetValue() != eventsv1.Flag_FLAG_NOT_AT_COMPANY || d.GetCauseEventId() != "feed-1" {
		t.Errorf("decision = %v cause %q", d.GetValue(), d.GetCauseEventId())
	}
	var audited eventsv1.Decision
	e.last(bus.StreamAudit, bus.AuditSubject("decision", org), &audited)
	if audited.GetDecisionId() != d.GetDecisionId() {
		t.Errorf("audit record %q, want the decision %q", audited.GetDecisionId(), d.GetDecisionId())
	}
	// Redelivered again (say the ack was lost): nothing new.
	msg.Delivered = 3
	if err := e.svc.HandleProfile(e.ctx, msg); err != nil {
		t.Fatal(err)
	}
	if n := e.published(bus.StreamDecisions); n != 1 {
		t.Errorf("%d decisions, want 1", n)
	}
}

func TestRedeliveredCRMChangeIsEvaluated(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustProfile(leftProfile("feed-1", 10))
	e.mustCRM(contactCreate(contactID, email))
	e.svc.pub = failingPublisher{err: bus.ErrNotStored}
	account := msgOf(t, bus.CRMSubject(org, "account", accountID), accountCreate("Contoso Ltd", ""))
	if err := e.svc.HandleCRM(e.ctx, account); err == nil || bus.IsPermanent(err) {
		t.Fatalf("err = %v, want a transient error", err)
	}
	e.svc.pub = bus.NewPublisher(e.js, 5*time.Second)
	account.Delivered = 2
	if err := e.svc.HandleCRM(e.ctx, account); err != nil {
		t.Fatal(err)
	}
	var d eventsv1.Decision
	e.last(bus.StreamDecisions, bus.DecisionSubject(org, contactID), &d)
	if d.GetValue() != eventsv1.Flag_FLAG_NOT_AT_COMPANY {
		t.Errorf("decision = %v", d.GetValue())
	}
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	env := map[string]string{"NAC_CONFIDENCE_THRESHOLD": "0.9", "NAC_FLAG_COLUMN": "msdyn_orgchangestatus"}
	var out strings.Builder
	cfg, err := ParseConfig([]string{"-workers", "2"}, func(k string) string { return env[k] }, &out)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Threshold != 0.9 || cfg.FlagColumn != "msdyn_orgchangestatus" || cfg.Workers != 2 || cfg.HandleTimeout != 20*time.Second {
		t.Errorf("cfg = %+v", cfg)
	}
	env = map[string]string{"NAC_CONFIDENCE_THRESHOLD": "1.5", "NAC_FLAG_COLUMN": "Bad Column", "NAC_HANDLE_TIMEOUT": "45s"}
	_, err = ParseConfig(nil, func(k string) string { return env[k] }, &out)
	if err == nil {
		t.Fatal("bad configuration accepted")
	}
	for _, want := range []string{"NAC_CONFIDENCE_THRESHOLD", "NAC_FLAG_COLUMN", "NAC_HANDLE_TIMEOUT"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// store publishes m on subject, as ingest does, and returns its sequence.
func (e *env) store(subject string, m proto.Message) uint64 {
	e.t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		e.t.Fatal(err)
	}
	ack, err := e.js.Publish(e.ctx, subject, data)
	if err != nil {
		e.t.Fatalf("publish %s: %v", subject, err)
	}
	return ack.Sequence
}

// subjectMsgs counts the messages a stream holds on subject.
func (e *env) subjectMsgs(stream, subject string) uint64 {
	e.t.Helper()
	s, err := e.js.Stream(e.ctx, stream)
	if err != nil {
		e.t.Fatal(err)
	}
	info, err := s.Info(e.ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		e.t.Fatal(err)
	}
	return info.State.Subjects[subject]
}

// deliverNext takes the next message of the validator's profile consumer,
// which must be seq, hands it to HandleProfile and acknowledges it.
func (e *env) deliverNext(cons jetstream.Consumer, seq uint64) {
	e.t.Helper()
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		e.t.Fatalf("next message: %v", err)
	}
	meta, err := msg.Metadata()
	if err != nil {
		e.t.Fatal(err)
	}
	if meta.Sequence.Stream != seq {
		e.t.Fatalf("delivered %s at %d, want sequence %d", msg.Subject(), meta.Sequence.Stream, seq)
	}
	if err := e.svc.HandleProfile(e.ctx, msg); err != nil {
		e.t.Fatalf("HandleProfile(%s): %v", msg.Subject(), err)
	}
	if err := msg.Ack(); err != nil {
		e.t.Fatal(err)
	}
}

func TestErasurePurgesStoredProfilesAndIsAudited(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cons, err := e.js.Consumer(e.ctx, bus.StreamProfile, bus.ConsumerValidatorProfile)
	if err != nil {
		t.Fatal(err)
	}
	memberSubject := bus.ProfileMemberSubject("m-1")
	hash := eventsv1.HashEmail(email)
	decision := func() *eventsv1.Decision {
		t.Helper()
		var d eventsv1.Decision
		e.last(bus.StreamDecisions, bus.DecisionSubject(org, contactID), &d)
		return &d
	}

	e.mustCRM(contactCreate(contactID, email))
	e.mustCRM(accountCreate("Contoso Ltd", ""))
	firstSeq := e.store(memberSubject, leftProfile("feed-1", 10))
	e.deliverNext(cons, firstSeq)
	if d := decision(); d.GetValue() != eventsv1.Flag_FLAG_NOT_AT_COMPANY {
		t.Fatalf("decision before the erasure = %v, want NOT_AT_COMPANY", d.GetValue())
	}
	if members, err := e.svc.store.Candidates(e.ctx, decide.Contact{EmailHashes: []string{hash}}); err != nil || len(members) != 1 || members[0].ID != "m-1" {
		t.Fatalf("MembersByEmail before the erasure = %v, %v; want m-1", members, err)
	}

	erasure := &eventsv1.MemberErased{EventId: "erase-1", Source: "feed", MemberId: "m-1", ObservedAt: at(11), ReceivedAt: at(11)}
	erasureSeq := e.store(bus.ProfileErasureSubject("m-1"), erasure)
	// A profile observed after the erasure arrives before it is handled.
	laterSeq := e.store(memberSubject, leftProfile("feed-2", 12))
	if n := e.subjectMsgs(bus.StreamProfile, memberSubject); n != 2 {
		t.Fatalf("%s holds %d messages before the erasure, want 2", memberSubject, n)
	}

	e.deliverNext(cons, erasureSeq)

	// Everything received about the member before the erasure is gone from
	// the stream; what came after it is a new start and is kept.
	if n := e.subjectMsgs(bus.StreamProfile, memberSubject); n != 1 {
		t.Errorf("%s holds %d messages after the erasure, want only the later one", memberSubject, n)
	}
	profiles, err := e.js.Stream(e.ctx, bus.StreamProfile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := profiles.GetMsg(e.ctx, firstSeq); !errors.Is(err, jetstream.ErrMsgNotFound) {
		t.Errorf("profile stored before the erasure (sequence %d): err %v, want it gone", firstSeq, err)
	}
	if m, err := profiles.GetLastMsgForSubject(e.ctx, memberSubject); err != nil || m.Sequence != laterSeq {
		t.Errorf("last profile of the member: %v, %v; want sequence %d (published after the erasure)", m, err, laterSeq)
	}

	// The erasure is in the audit trail.
	if got := bus.AuditSubject("erasure", "all"); got != "nac.audit.erasure.all" {
		t.Errorf("erasure audit subject %q", got)
	}
	// The erasure is in the audit trail, without the member id.
	var audited eventsv1.MemberErased
	raw := e.last(bus.StreamAudit, "nac.audit.erasure.all", &audited)
	wantAudit := proto.CloneOf(erasure)
	wantAudit.MemberId = ""
	if !proto.Equal(&audited, wantAudit) {
		t.Errorf("audit record %v, want %v", &audited, wantAudit)
	}
	if id := raw.Header.Get(nats.MsgIdHdr); id != "audit.erasure.erase-1" {
		t.Errorf("audit Nats-Msg-Id %q", id)
	}

	// The member is gone, and the contact it flagged is unflagged.
	if members, err := e.svc.store.Candidates(e.ctx, decide.Contact{EmailHashes: []string{hash}}); err != nil || len(members) != 0 {
		t.Errorf("MembersByEmail after the erasure = %v, %v; want none", members, err)
	}
	d := decision()
	if d.GetValue() != eventsv1.Flag_FLAG_NO_FEEDBACK || d.GetReason() != decide.ReasonUnmatched ||
		d.GetPrevious() != eventsv1.Flag_FLAG_NOT_AT_COMPANY || d.GetCauseEventId() != "erase-1" {
		t.Errorf("decision after the erasure = %v %q (previous %v, cause %q), want NO_FEEDBACK unmatched caused by erase-1",
			d.GetValue(), d.GetReason(), d.GetPrevious(), d.GetCauseEventId())
	}
	if d.GetEvidence().GetMemberId() != "" {
		t.Errorf("decision after the erasure names the member: %v", d.GetEvidence())
	}
	decisions, audits := e.published(bus.StreamDecisions), e.published(bus.StreamAudit)

	// A redelivery of the erasure changes nothing: the later profile stays,
	// the audit record is not repeated, no decision goes out.
	again := msgOf(t, bus.ProfileErasureSubject("m-1"), erasure)
	again.Delivered, again.Seq = 2, erasureSeq
	if err := e.svc.HandleProfile(e.ctx, again); err != nil {
		t.Fatal(err)
	}
	if n := e.subjectMsgs(bus.StreamProfile, memberSubject); n != 1 {
		t.Errorf("%s holds %d messages after a redelivered erasure, want 1", memberSubject, n)
	}
	if n := e.subjectMsgs(bus.StreamAudit, "nac.audit.erasure.all"); n != 1 {
		t.Errorf("%d erasure audit records, want 1", n)
	}
	if n := e.published(bus.StreamDecisions); n != decisions {
		t.Errorf("a redelivered erasure published %d decisions", n-decisions)
	}
	if n := e.published(bus.StreamAudit); n != audits {
		t.Errorf("a redelivered erasure published %d audit records", n-audits)
	}

	// The later profile, observed after the erasure, starts the member anew.
	e.deliverNext(cons, laterSeq)
	if members, err := e.svc.store.Candidates(e.ctx, decide.Contact{EmailHashes: []string{hash}}); err != nil || len(members) != 1 {
		t.Errorf("MembersByEmail after the later profile = %v, %v; want m-1 again", members, err)
	}
	if d := decision(); d.GetValue() != eventsv1.Flag_FLAG_NOT_AT_COMPANY || d.GetCauseEventId() != "feed-2" {
		t.Errorf("decision after the later profile = %v cause %q", d.GetValue(), d.GetCauseEventId())
	}
}
