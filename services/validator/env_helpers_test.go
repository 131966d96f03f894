package validator

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/validator/decide"
)

// Helpers shared by the scope, settings, fan-out and concurrency tests, on
// top of newEnv and msgOf.

const (
	// otherUser is a Dynamics user who is not a sync user.
	otherUser = "5e5e5e5e-0000-4000-8000-0000000000ff"
	// otherAccount is an account otherUser owns.
	otherAccount = "a1b2c3d4-0000-4000-8000-0000000000ff"
)

func boolV(b bool) *eventsv1.Value      { return &eventsv1.Value{Kind: &eventsv1.Value_Boolean{Boolean: b}} }
func owner(user string) *eventsv1.Value { return refV("systemuser", user) }

// crmRow is an update of one row at version (minutes after t0), carrying
// the columns given, as a post-image would.
func crmRow(table, id string, version int, cols map[string]*eventsv1.Value) *eventsv1.CrmChange {
	return &eventsv1.CrmChange{
		EventId: fmt.Sprintf("crm-%s-%s-%d", table, id, version), OrganizationId: org, Table: table, RowId: id,
		Operation: eventsv1.Operation_OPERATION_UPDATE, Columns: cols, RowModifiedAt: at(version),
	}
}

func mailOf(id string) string { return "person-" + id + "@contoso.com" }

// person is a contact of account owned by ownerID ("" for none), whose
// name and email only the member of profileFor(id) shares.
func person(id, account, ownerID string, version int) *eventsv1.CrmChange {
	cols := map[string]*eventsv1.Value{
		"firstname": strV("Pat"), "lastname": strV("L" + id), "emailaddress1": strV(mailOf(id)),
		"parentcustomerid": refV("account", account), "statecode": choiceV(0),
	}
	if ownerID != "" {
		cols["ownerid"] = owner(ownerID)
	}
	return crmRow("contact", id, version, cols)
}

// company is an account named Contoso Ltd owned by ownerID.
func company(id, ownerID string, version int) *eventsv1.CrmChange {
	return crmRow("account", id, version, map[string]*eventsv1.Value{
		"name": strV("Contoso Ltd"), "ownerid": owner(ownerID), "statecode": choiceV(0),
	})
}

// profileFor is the member matching person(id) by email: at Contoso until
// 2024-06, at Fabrikam since.
func profileFor(id string, observed int) *eventsv1.ProfileChange {
	p := leftProfile(fmt.Sprintf("feed-%s-%d", id, observed), observed)
	p.MemberId, p.LastName, p.EmailSha256 = "m-"+id, "L"+id, []string{eventsv1.HashEmail(mailOf(id))}
	p.FirstName = "Pat"
	return p
}

func (e *env) mustAdmin(subject string, m proto.Message) {
	e.t.Helper()
	if err := e.svc.HandleAdmin(e.ctx, msgOf(e.t, subject, m)); err != nil {
		e.t.Fatalf("HandleAdmin(%s): %v", subject, err)
	}
}

func (e *env) syncUserChange(user string, enabled bool, changed int) {
	e.t.Helper()
	e.mustAdmin(bus.AdminSyncUserSubject(org, user), &eventsv1.SyncUserChange{
		EventId: fmt.Sprintf("su-%s-%v-%d", user, enabled, changed), OrganizationId: org, UserId: user,
		Enabled: enabled, ChangedAt: at(changed),
	})
}

// decisionOf returns the contact's last decision, or nil when none.
func (e *env) decisionOf(contact string) *eventsv1.Decision {
	e.t.Helper()
	s, err := e.js.Stream(e.ctx, bus.StreamDecisions)
	if err != nil {
		e.t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(e.ctx, bus.DecisionSubject(org, contact))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	var d eventsv1.Decision
	if err := proto.Unmarshal(raw.Data, &d); err != nil {
		e.t.Fatal(err)
	}
	return &d
}

// wantDecision checks the contact's last decision.
func (e *env) wantDecision(contact string, value eventsv1.Flag, reason, cause string) {
	e.t.Helper()
	d := e.decisionOf(contact)
	if d == nil {
		e.t.Errorf("contact %s: no decision, want %v %s", contact, value, reason)
		return
	}
	if d.GetValue() != value || d.GetReason() != reason || (cause != "" && d.GetCauseEventId() != cause) {
		e.t.Errorf("contact %s: decision %v %q (cause %q), want %v %q (cause %q)",
			contact, d.GetValue(), d.GetReason(), d.GetCauseEventId(), value, reason, cause)
	}
}

// opened is the decision's evidence with the member's part opened.
func (e *env) opened(d *eventsv1.Decision) *eventsv1.Evidence {
	e.t.Helper()
	ev, err := e.svc.OpenEvidence(e.ctx, d)
	if err != nil {
		e.t.Fatalf("open the evidence of decision %s: %v", d.GetDecisionId(), err)
	}
	return ev
}

func (e *env) wantNoDecision(contact string) {
	e.t.Helper()
	if d := e.decisionOf(contact); d != nil {
		e.t.Errorf("contact %s: decision %v %q (cause %q), want none", contact, d.GetValue(), d.GetReason(), d.GetCauseEventId())
	}
}

// verdict is what the validator would decide for the contact now, and
// whether it finds it in scope, without publishing anything.
func (e *env) verdict(contact string) (decide.Result, bool) {
	e.t.Helper()
	row, err := e.svc.store.Row(e.ctx, org, "contact", contact)
	if err != nil || row == nil {
		e.t.Fatalf("contact %s: row %v, %v", contact, row, err)
	}
	last, _, err := e.svc.decisions.Last(e.ctx, org, contact)
	if err != nil {
		e.t.Fatal(err)
	}
	in, _, err := e.svc.input(e.ctx, freshReads(e.svc.store), org, row, last)
	if err != nil {
		e.t.Fatal(err)
	}
	return decide.Evaluate(in), in.InScope
}

func (e *env) evaluations(kind string) float64 {
	return e.counter(e.svc.metrics.evaluations.WithLabelValues(kind))
}

// failingDecisions is the decision stream refusing every publish, as when
// JetStream is briefly unavailable.
type failingDecisions struct{ Decisions }

func (failingDecisions) Publish(context.Context, *eventsv1.Decision, DecisionMeta, uint64) error {
	return errors.New("nats: timeout")
}
