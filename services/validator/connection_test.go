package validator

import (
	"testing"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/evaluations"
	"github.com/notatcompany/notatcompany/services/validator/decide"
)

const (
	connID    = "c0c0c0c0-0000-4000-8000-000000000001"
	reverseID = "c0c0c0c0-0000-4000-8000-000000000002"
	roleID    = "e0e0e0e0-0000-4000-8000-000000000001"
)

// connection links opportunity opp to contact c (record1 the opportunity,
// or, reversed, record1 the contact), the contact's end in role roleID;
// statecode 0 active, 1 inactive.
func connection(id, opp, c string, reversed bool, state int32, version int) *eventsv1.CrmChange {
	one, two := refV("opportunity", opp), refV("contact", c)
	otc1, otc2 := choiceV(3), choiceV(2)
	roles := map[string]*eventsv1.Value{"record2roleid": refV("connectionrole", roleID), "record1roleid": nullV()}
	if reversed {
		one, two, otc1, otc2 = two, one, otc2, otc1
		roles = map[string]*eventsv1.Value{"record1roleid": refV("connectionrole", roleID), "record2roleid": nullV()}
	}
	cols := map[string]*eventsv1.Value{"record1id": one, "record2id": two, "record1objecttypecode": otc1,
		"record2objecttypecode": otc2, "statecode": choiceV(state)}
	for k, v := range roles {
		cols[k] = v
	}
	return crmRow("connection", id, version, cols)
}

func nullV() *eventsv1.Value { return &eventsv1.Value{Kind: &eventsv1.Value_Null{Null: true}} }

func deleteOf(table, id string, version int) *eventsv1.CrmChange {
	ch := crmRow(table, id, version, nil)
	ch.Operation = eventsv1.Operation_OPERATION_DELETE
	return ch
}

// Rule 3 through a stakeholder connection, in either direction: the
// contact is in scope while an active connection links it to a sync user's
// opportunity, and leaves when the connection is deactivated or deleted.
func TestScopeThroughConnection(t *testing.T) {
	t.Parallel()
	for _, reversed := range []bool{false, true} {
		t.Run(map[bool]string{false: "opportunity to contact", true: "contact to opportunity"}[reversed], func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			const c = "7d8c4a0e-0000-4000-8000-0000000000cc"
			e.mustCRM(company(accountID, otherUser, 1))
			e.mustCRM(person(c, accountID, otherUser, 2))
			e.mustCRM(opportunity(oppID, syncUser, 3, nil))
			e.mustProfile(profileFor(c, 10))
			e.wantNoDecision(c)

			link := connection(connID, oppID, c, reversed, 0, 20)
			e.mustCRM(link)
			e.wantDecision(c, eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, link.GetEventId())
			rec, _ := e.kept(c)
			s := rec.GetScope()
			if !s.GetInScope() || s.GetVia() != scopeOpportunityConnection || s.GetOpportunityId() != oppID ||
				s.GetConnectionId() != connID || s.GetRoleId() != roleID || s.GetUserId() != syncUser {
				t.Errorf("scope path %v, want through connection %s (role %s) of %s", s, connID, roleID, oppID)
			}
			if last := s.GetChecks()[len(s.GetChecks())-1]; last.GetConnectionId() != connID || last.GetRoleId() != roleID {
				t.Errorf("last check %v, want the connection and its role", last)
			}

			off := connection(connID, oppID, c, reversed, 1, 30)
			e.mustCRM(off)
			e.wantDecision(c, eventsv1.Flag_FLAG_NO_FEEDBACK, decide.ReasonOutOfScope, off.GetEventId())

			on := connection(connID, oppID, c, reversed, 0, 40)
			e.mustCRM(on)
			e.wantDecision(c, eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, on.GetEventId())

			gone := deleteOf("connection", connID, 50)
			e.mustCRM(gone)
			e.wantDecision(c, eventsv1.Flag_FLAG_NO_FEEDBACK, decide.ReasonOutOfScope, gone.GetEventId())
			if k, err := e.svc.store.StakeholdingsOf(e.ctx, org, c); err != nil || len(k) != 0 {
				t.Errorf("StakeholdingsOf after the delete = %v, %v; want none", k, err)
			}
		})
	}
}

// A connection to a contact that is not an opportunity's (an account to a
// contact) brings nothing into scope; an opportunity's owner becoming a
// sync user brings its stakeholders in.
func TestScopeConnectionOwnerAndOtherRecords(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const c = "7d8c4a0e-0000-4000-8000-0000000000cc"
	e.mustCRM(company(accountID, syncUser, 1))
	e.mustCRM(company(otherAccount, otherUser, 1))
	e.mustCRM(person(c, otherAccount, otherUser, 2))
	e.mustCRM(opportunity(oppID, otherUser, 3, nil))
	e.mustProfile(profileFor(c, 10))
	e.mustCRM(crmRow("connection", reverseID, 4, map[string]*eventsv1.Value{
		"record1id": refV("account", accountID), "record1objecttypecode": choiceV(1),
		"record2id": refV("contact", c), "record2objecttypecode": choiceV(2), "statecode": choiceV(0)}))
	e.mustCRM(connection(connID, oppID, c, false, 0, 5))
	e.wantNoDecision(c)

	move := opportunity(oppID, syncUser, 20, nil)
	e.mustCRM(move)
	e.wantDecision(c, eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, move.GetEventId())
	if refs, err := e.svc.ownedContacts(e.ctx, org, syncUser); err != nil || len(uniq(refs)) != 1 || refs[0].ID != c {
		t.Errorf("ownedContacts(sync user) = %v, %v; want the stakeholder", refs, err)
	}
}

// An open opportunity is at risk when a stakeholder is flagged, with the
// connection and role saying how; a contact linked both as the
// opportunity's contact and as a stakeholder has both links; removing the
// connection leaves the lookup's.
func TestAtRiskThroughStakeholder(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCRM(contactCreate(contactID, email))
	e.mustCRM(accountCreate("Contoso Ltd", ""))
	e.mustCRM(opportunity(oppID, otherUser, 3, map[string]*eventsv1.Value{"parentaccountid": refV("account", accountID)}))
	e.mustCRM(opportunity(otherOppID, otherUser, 3, map[string]*eventsv1.Value{"parentcontactid": refV("contact", contactID)}))
	e.mustProfile(leftProfile("feed-1", 10))
	risk := evaluations.AtRiskKey(org, oppID, contactID)
	if e.hasKey(risk) {
		t.Fatal("at risk before any connection")
	}

	e.mustCRM(connection(connID, oppID, contactID, false, 0, 20))
	e.mustCRM(connection(reverseID, otherOppID, contactID, true, 0, 20))
	rec, _ := e.kept(contactID)
	opps := rec.GetOpenOpportunities()
	if len(opps) != 2 || opps[0].GetOpportunityId() != oppID || opps[1].GetOpportunityId() != otherOppID {
		t.Fatalf("open opportunities %v, want %s and %s", opps, oppID, otherOppID)
	}
	if l := opps[0].GetLinks(); len(l) != 1 || l[0].GetVia() != "connection" || l[0].GetConnectionId() != connID || l[0].GetRoleId() != roleID {
		t.Errorf("links of the stakeholder's opportunity %v, want the connection with its role", l)
	}
	if l := opps[1].GetLinks(); len(l) != 2 || l[0].GetVia() != "parentcontactid" || l[1].GetVia() != "connection" || l[1].GetConnectionId() != reverseID {
		t.Errorf("links of the contact's own opportunity %v, want parentcontactid then the connection", l)
	}
	if !e.hasKey(risk) || !e.hasKey(evaluations.AtRiskKey(org, otherOppID, contactID)) {
		t.Errorf("at-risk keys %v %v, want both", e.hasKey(risk), e.hasKey(evaluations.AtRiskKey(org, otherOppID, contactID)))
	}

	e.mustCRM(deleteOf("connection", connID, 30))
	e.mustCRM(connection(reverseID, otherOppID, contactID, true, 1, 30))
	rec, _ = e.kept(contactID)
	if opps := rec.GetOpenOpportunities(); len(opps) != 1 || opps[0].GetOpportunityId() != otherOppID || len(opps[0].GetLinks()) != 1 {
		t.Errorf("open opportunities after the connections went %v, want %s by parentcontactid only", opps, otherOppID)
	}
	if e.hasKey(risk) {
		t.Error("the stakeholder's opportunity is still at risk after its connection was deleted")
	}
	e.wantIndex(true, false)
}
