package validator

import (
	"slices"
	"testing"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/validator/decide"
)

const (
	oppID      = "0bb0b0b0-0000-4000-8000-000000000001"
	otherOppID = "0bb0b0b0-0000-4000-8000-000000000002"
)

func opportunity(id, ownerID string, version int, cols map[string]*eventsv1.Value) *eventsv1.CrmChange {
	all := map[string]*eventsv1.Value{"ownerid": owner(ownerID), "statecode": choiceV(0)}
	for k, v := range cols {
		all[k] = v
	}
	return crmRow("opportunity", id, version, all)
}

// The three scope rules, each alone, and what does not bring a contact
// into scope. An in-scope contact whose member left is flagged; an
// out-of-scope one gets no flag.
func TestScopeRules(t *testing.T) {
	t.Parallel()
	const c = "7d8c4a0e-0000-4000-8000-0000000000cc"
	for _, tc := range []struct {
		name                       string
		contactOwner, accountOwner string
		// changes applied, in order, after the contact: opportunities
		later   []*eventsv1.CrmChange
		inScope bool
	}{
		{name: "rule 1: contact owned by a sync user", contactOwner: syncUser, accountOwner: otherUser, inScope: true},
		{name: "rule 2: account owned by a sync user", contactOwner: otherUser, accountOwner: syncUser, inScope: true},
		{name: "rule 3: opportunity's contact (parentcontactid)", contactOwner: otherUser, accountOwner: otherUser, inScope: true,
			later: []*eventsv1.CrmChange{opportunity(oppID, syncUser, 5, map[string]*eventsv1.Value{"parentcontactid": refV("contact", c)})}},
		{name: "rule 3: opportunity's customer is the contact (customerid)", contactOwner: otherUser, accountOwner: otherUser, inScope: true,
			later: []*eventsv1.CrmChange{opportunity(oppID, syncUser, 5, map[string]*eventsv1.Value{"customerid": refV("contact", c)})}},
		{name: "none: everything owned by another user", contactOwner: otherUser, accountOwner: otherUser},
		{name: "none: no owner known", accountOwner: otherUser},
		{name: "none: owned by a team with a sync user's id", contactOwner: "", accountOwner: otherUser,
			later: []*eventsv1.CrmChange{crmRow("contact", c, 4, map[string]*eventsv1.Value{"ownerid": refV("team", syncUser)})}},
		{name: "none: opportunity owned by another user", contactOwner: otherUser, accountOwner: otherUser,
			later: []*eventsv1.CrmChange{opportunity(oppID, otherUser, 5, map[string]*eventsv1.Value{"parentcontactid": refV("contact", c)})}},
		{name: "none: sync user's opportunity whose customer is an account", contactOwner: otherUser, accountOwner: otherUser,
			later: []*eventsv1.CrmChange{opportunity(oppID, syncUser, 5, map[string]*eventsv1.Value{"customerid": refV("account", accountID)})}},
		{name: "none: sync user's opportunity deleted", contactOwner: otherUser, accountOwner: otherUser,
			later: []*eventsv1.CrmChange{
				opportunity(oppID, syncUser, 5, map[string]*eventsv1.Value{"parentcontactid": refV("contact", c)}),
				func() *eventsv1.CrmChange {
					ch := crmRow("opportunity", oppID, 6, nil)
					ch.Operation = eventsv1.Operation_OPERATION_DELETE
					return ch
				}(),
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.mustCRM(company(accountID, tc.accountOwner, 2))
			e.mustCRM(person(c, accountID, tc.contactOwner, 3))
			for _, ch := range tc.later {
				e.mustCRM(ch)
			}
			e.mustProfile(profileFor(c, 10))

			res, inScope := e.verdict(c)
			if inScope != tc.inScope {
				t.Errorf("in scope = %v, want %v", inScope, tc.inScope)
			}
			if tc.inScope {
				e.wantDecision(c, eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, "feed-"+c+"-10")
				return
			}
			if res.Value != decide.NoFeedback || res.Reason != decide.ReasonOutOfScope {
				t.Errorf("verdict = %d %q, want no feedback, out_of_scope", res.Value, res.Reason)
			}
			e.wantNoDecision(c)
			if n := e.published(bus.StreamDecisions); n != 0 {
				t.Errorf("%d decisions published for an out-of-scope contact", n)
			}
		})
	}
}

// scopeFixture: c1 owned by the sync user, c2 on the sync user's account,
// c3 linked to the sync user's opportunity, c4 in none of these; every
// one's member left Contoso.
func scopeFixture(t *testing.T) *env {
	t.Helper()
	e := newEnv(t)
	e.mustCRM(company(accountID, syncUser, 1))
	e.mustCRM(company(otherAccount, otherUser, 1))
	e.mustCRM(person("7d8c4a0e-0000-4000-8000-0000000000c1", otherAccount, syncUser, 2))
	e.mustCRM(person("7d8c4a0e-0000-4000-8000-0000000000c2", accountID, otherUser, 2))
	e.mustCRM(person("7d8c4a0e-0000-4000-8000-0000000000c3", otherAccount, otherUser, 2))
	e.mustCRM(person("7d8c4a0e-0000-4000-8000-0000000000c4", otherAccount, otherUser, 2))
	e.mustCRM(opportunity(oppID, syncUser, 3, map[string]*eventsv1.Value{"customerid": refV("contact", "7d8c4a0e-0000-4000-8000-0000000000c3")}))
	for _, c := range []string{"7d8c4a0e-0000-4000-8000-0000000000c1", "7d8c4a0e-0000-4000-8000-0000000000c2", "7d8c4a0e-0000-4000-8000-0000000000c3", "7d8c4a0e-0000-4000-8000-0000000000c4"} {
		e.mustProfile(profileFor(c, 10))
	}
	for _, c := range []string{"7d8c4a0e-0000-4000-8000-0000000000c1", "7d8c4a0e-0000-4000-8000-0000000000c2", "7d8c4a0e-0000-4000-8000-0000000000c3"} {
		e.wantDecision(c, eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, "")
	}
	e.wantNoDecision("7d8c4a0e-0000-4000-8000-0000000000c4")
	if t.Failed() {
		t.FailNow()
	}
	return e
}

func TestScopeSyncUserDisabledInDynamics(t *testing.T) {
	t.Parallel()
	e := scopeFixture(t)
	disable := crmRow("systemuser", syncUser, 20, map[string]*eventsv1.Value{"isdisabled": boolV(true)})
	e.mustCRM(disable)
	if got := e.evaluations("crm_systemuser"); got != 3 {
		t.Errorf("evaluations{crm_systemuser} = %v, want 3 (c1, c2, c3)", got)
	}
	for _, c := range []string{"7d8c4a0e-0000-4000-8000-0000000000c1", "7d8c4a0e-0000-4000-8000-0000000000c2", "7d8c4a0e-0000-4000-8000-0000000000c3"} {
		e.wantDecision(c, eventsv1.Flag_FLAG_NO_FEEDBACK, decide.ReasonOutOfScope, disable.GetEventId())
		if d := e.decisionOf(c); d.GetPrevious() != eventsv1.Flag_FLAG_NOT_AT_COMPANY {
			t.Errorf("%s: previous = %v, want NOT_AT_COMPANY", c, d.GetPrevious())
		}
	}
	e.wantNoDecision("7d8c4a0e-0000-4000-8000-0000000000c4")
	if n := e.published(bus.StreamDecisions); n != 6 {
		t.Errorf("%d decisions in all, want 6", n)
	}

	// An older change (enabled) arriving late changes nothing.
	e.mustCRM(crmRow("systemuser", syncUser, 15, map[string]*eventsv1.Value{"isdisabled": boolV(false)}))
	if got := e.evaluations("crm_systemuser"); got != 3 {
		t.Errorf("a late, older systemuser change evaluated %v contacts", got-3)
	}
	if n := e.published(bus.StreamDecisions); n != 6 {
		t.Errorf("a late, older systemuser change published %d decisions", n-6)
	}

	// Enabled again: back in scope, flagged again.
	enable := crmRow("systemuser", syncUser, 30, map[string]*eventsv1.Value{"isdisabled": boolV(false)})
	e.mustCRM(enable)
	for _, c := range []string{"7d8c4a0e-0000-4000-8000-0000000000c1", "7d8c4a0e-0000-4000-8000-0000000000c2", "7d8c4a0e-0000-4000-8000-0000000000c3"} {
		e.wantDecision(c, eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, enable.GetEventId())
	}
	e.wantNoDecision("7d8c4a0e-0000-4000-8000-0000000000c4")
}

func TestScopeSyncUserRemovedByAdmin(t *testing.T) {
	t.Parallel()
	e := scopeFixture(t)
	e.syncUserChange(syncUser, false, 20)
	if got := e.evaluations("sync_user"); got != 3 {
		t.Errorf("evaluations{sync_user} = %v, want 3 (c1, c2, c3)", got)
	}
	for _, c := range []string{"7d8c4a0e-0000-4000-8000-0000000000c1", "7d8c4a0e-0000-4000-8000-0000000000c2", "7d8c4a0e-0000-4000-8000-0000000000c3"} {
		e.wantDecision(c, eventsv1.Flag_FLAG_NO_FEEDBACK, decide.ReasonOutOfScope, "su-"+syncUser+"-false-20")
	}
	e.wantNoDecision("7d8c4a0e-0000-4000-8000-0000000000c4")
	decisions := e.published(bus.StreamDecisions)

	// An older admin change (enabling it) arriving after the newer one
	// changes nothing: not the state, not a decision, no evaluation.
	e.syncUserChange(syncUser, true, 15)
	if ok, err := e.svc.store.IsSyncUser(e.ctx, org, syncUser); ok || err != nil {
		t.Errorf("IsSyncUser after an older enable = %v, %v; want false", ok, err)
	}
	if got := e.evaluations("sync_user"); got != 3 {
		t.Errorf("an older sync user change evaluated %v contacts", got-3)
	}
	if got := e.counter(e.svc.metrics.events.WithLabelValues("sync_user", "unchanged")); got != 1 {
		t.Errorf("events{sync_user,unchanged} = %v, want 1", got)
	}
	if n := e.published(bus.StreamDecisions); n != decisions {
		t.Errorf("an older sync user change published %d decisions", n-decisions)
	}
	for _, c := range []string{"7d8c4a0e-0000-4000-8000-0000000000c1", "7d8c4a0e-0000-4000-8000-0000000000c2", "7d8c4a0e-0000-4000-8000-0000000000c3"} {
		e.wantDecision(c, eventsv1.Flag_FLAG_NO_FEEDBACK, decide.ReasonOutOfScope, "")
	}

	// A newer one enables it again.
	e.syncUserChange(syncUser, true, 30)
	for _, c := range []string{"7d8c4a0e-0000-4000-8000-0000000000c1", "7d8c4a0e-0000-4000-8000-0000000000c2", "7d8c4a0e-0000-4000-8000-0000000000c3"} {
		e.wantDecision(c, eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, "su-"+syncUser+"-true-30")
	}
	e.wantNoDecision("7d8c4a0e-0000-4000-8000-0000000000c4")
}

func TestScopeMovesWithOpportunity(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCRM(company(otherAccount, otherUser, 1))
	e.mustCRM(person("7d8c4a0e-0000-4000-8000-0000000000c1", otherAccount, otherUser, 2))
	e.mustCRM(person("7d8c4a0e-0000-4000-8000-0000000000c2", otherAccount, otherUser, 2))
	e.mustCRM(opportunity(oppID, syncUser, 3, map[string]*eventsv1.Value{"parentcontactid": refV("contact", "7d8c4a0e-0000-4000-8000-0000000000c1")}))
	e.mustProfile(profileFor("7d8c4a0e-0000-4000-8000-0000000000c1", 10))
	e.mustProfile(profileFor("7d8c4a0e-0000-4000-8000-0000000000c2", 10))
	e.wantDecision("7d8c4a0e-0000-4000-8000-0000000000c1", eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, "")
	e.wantNoDecision("7d8c4a0e-0000-4000-8000-0000000000c2")

	before := e.evaluations("crm_opportunity")
	move := opportunity(oppID, syncUser, 20, map[string]*eventsv1.Value{"parentcontactid": refV("contact", "7d8c4a0e-0000-4000-8000-0000000000c2")})
	e.mustCRM(move)
	if got := e.evaluations("crm_opportunity") - before; got != 2 {
		t.Errorf("moving the opportunity evaluated %v contacts, want 2 (the old and the new)", got)
	}
	e.wantDecision("7d8c4a0e-0000-4000-8000-0000000000c1", eventsv1.Flag_FLAG_NO_FEEDBACK, decide.ReasonOutOfScope, move.GetEventId())
	e.wantDecision("7d8c4a0e-0000-4000-8000-0000000000c2", eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, move.GetEventId())
	if opps, err := e.svc.store.OpportunitiesOfContact(e.ctx, org, "7d8c4a0e-0000-4000-8000-0000000000c1"); err != nil || len(opps) != 0 {
		t.Errorf("OpportunitiesOfContact(c1) = %v, %v; want none", opps, err)
	}

	// The opportunity's customer becomes c1 as well: both in scope.
	both := opportunity(oppID, syncUser, 30, map[string]*eventsv1.Value{"customerid": refV("contact", "7d8c4a0e-0000-4000-8000-0000000000c1")})
	e.mustCRM(both)
	e.wantDecision("7d8c4a0e-0000-4000-8000-0000000000c1", eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, both.GetEventId())
	e.wantDecision("7d8c4a0e-0000-4000-8000-0000000000c2", eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, move.GetEventId())
}

// A sync user change evaluates exactly the contacts whose scope depends on
// the user, each once; a systemuser change that leaves isdisabled alone
// evaluates none.
func TestSyncUserFanout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const user = "5e5e5e5e-0000-4000-8000-000000000002" // not a sync user yet
	e.mustCRM(company(accountID, user, 1))
	e.mustCRM(company(otherAccount, otherUser, 1))
	e.mustCRM(person("7d8c4a0e-0000-4000-8000-0000000000c1", otherAccount, user, 2))      // owned directly
	e.mustCRM(person("7d8c4a0e-0000-4000-8000-0000000000c2", accountID, user, 2))         // owned directly and through its account
	e.mustCRM(person("7d8c4a0e-0000-4000-8000-0000000000c3", accountID, otherUser, 2))    // through its account
	e.mustCRM(person("7d8c4a0e-0000-4000-8000-0000000000c4", otherAccount, otherUser, 2)) // through two opportunities
	e.mustCRM(person("7d8c4a0e-0000-4000-8000-0000000000c5", otherAccount, otherUser, 2)) // through an opportunity's customer
	e.mustCRM(person("7d8c4a0e-0000-4000-8000-0000000000c6", otherAccount, otherUser, 2)) // another user's opportunity
	e.mustCRM(person("7d8c4a0e-0000-4000-8000-0000000000c7", otherAccount, otherUser, 2)) // nothing
	e.mustCRM(opportunity(oppID, user, 3, map[string]*eventsv1.Value{"parentcontactid": refV("contact", "7d8c4a0e-0000-4000-8000-0000000000c4")}))
	e.mustCRM(opportunity(otherOppID, user, 3, map[string]*eventsv1.Value{
		"parentcontactid": refV("contact", "7d8c4a0e-0000-4000-8000-0000000000c4"), "customerid": refV("contact", "7d8c4a0e-0000-4000-8000-0000000000c5")}))
	e.mustCRM(opportunity("0bb0b0b0-0000-4000-8000-000000000003", otherUser, 3, map[string]*eventsv1.Value{"parentcontactid": refV("contact", "7d8c4a0e-0000-4000-8000-0000000000c6")}))
	all := []string{"7d8c4a0e-0000-4000-8000-0000000000c1", "7d8c4a0e-0000-4000-8000-0000000000c2", "7d8c4a0e-0000-4000-8000-0000000000c3", "7d8c4a0e-0000-4000-8000-0000000000c4", "7d8c4a0e-0000-4000-8000-0000000000c5", "7d8c4a0e-0000-4000-8000-0000000000c6", "7d8c4a0e-0000-4000-8000-0000000000c7"}
	for _, c := range all {
		e.mustProfile(profileFor(c, 10))
	}
	if n := e.published(bus.StreamDecisions); n != 0 {
		t.Fatalf("%d decisions before the user is a sync user", n)
	}

	e.syncUserChange(user, true, 5)
	if got := e.evaluations("sync_user"); got != 5 {
		t.Errorf("evaluations{sync_user} = %v, want 5 (c1-c5, once each)", got)
	}
	owned := all[:5]
	for _, c := range owned {
		e.wantDecision(c, eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, "su-"+user+"-true-5")
	}
	e.wantNoDecision("7d8c4a0e-0000-4000-8000-0000000000c6")
	e.wantNoDecision("7d8c4a0e-0000-4000-8000-0000000000c7")

	// The user's systemuser row appears, not disabled; then changes in a
	// column the validator does not keep. Neither evaluates anyone.
	e.mustCRM(crmRow("systemuser", user, 6, map[string]*eventsv1.Value{"isdisabled": boolV(false)}))
	e.mustCRM(crmRow("systemuser", user, 7, map[string]*eventsv1.Value{"isdisabled": boolV(false), "fullname": strV("Sam Sync")}))
	if got := e.counter(e.svc.metrics.events.WithLabelValues("crm_systemuser", "applied")); got != 1 {
		t.Errorf("events{crm_systemuser,applied} = %v, want 1", got)
	}
	if got := e.counter(e.svc.metrics.events.WithLabelValues("crm_systemuser", "unchanged")); got != 1 {
		t.Errorf("events{crm_systemuser,unchanged} = %v, want 1", got)
	}
	if got := e.evaluations("crm_systemuser"); got != 0 {
		t.Errorf("systemuser changes that leave isdisabled alone evaluated %v contacts", got)
	}

	// Disabled in Dynamics: the same five.
	e.mustCRM(crmRow("systemuser", user, 8, map[string]*eventsv1.Value{"isdisabled": boolV(true)}))
	if got := e.evaluations("crm_systemuser"); got != 5 {
		t.Errorf("evaluations{crm_systemuser} = %v, want 5", got)
	}
	for _, c := range owned {
		e.wantDecision(c, eventsv1.Flag_FLAG_NO_FEEDBACK, decide.ReasonOutOfScope, "")
	}

	// Removed as a sync user: the same five again, and no decision (they
	// are out of scope already).
	decisions := e.published(bus.StreamDecisions)
	e.syncUserChange(user, false, 9)
	if got := e.evaluations("sync_user"); got != 10 {
		t.Errorf("evaluations{sync_user} = %v, want 10", got)
	}
	if n := e.published(bus.StreamDecisions); n != decisions {
		t.Errorf("%d decisions for contacts already out of scope", n-decisions)
	}
	for _, c := range []string{"7d8c4a0e-0000-4000-8000-0000000000c6", "7d8c4a0e-0000-4000-8000-0000000000c7"} {
		e.wantNoDecision(c)
	}
	if refs, err := e.svc.ownedContacts(e.ctx, org, user); err != nil || len(refs) < 5 {
		t.Errorf("ownedContacts = %v, %v", refs, err)
	} else {
		var ids []string
		for _, r := range uniq(refs) {
			ids = append(ids, r.ID)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, owned) {
			t.Errorf("ownedContacts = %v, want %v", ids, owned)
		}
	}
}

// A systemuser change whose first attempt applied isdisabled but failed
// before publishing is evaluated again when redelivered, though the row
// no longer changes.
func TestRedeliveredSystemUserChangeIsEvaluated(t *testing.T) {
	t.Parallel()
	e := scopeFixture(t)
	good := e.svc.decisions
	e.svc.decisions = failingDecisions{good}
	msg := msgOf(t, bus.CRMSubject(org, "systemuser", syncUser),
		crmRow("systemuser", syncUser, 20, map[string]*eventsv1.Value{"isdisabled": boolV(true)}))
	if err := e.svc.HandleCRM(e.ctx, msg); err == nil || bus.IsPermanent(err) {
		t.Fatalf("err = %v, want a transient error", err)
	}
	e.svc.decisions = good
	msg.Delivered = 2
	if err := e.svc.HandleCRM(e.ctx, msg); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"7d8c4a0e-0000-4000-8000-0000000000c1", "7d8c4a0e-0000-4000-8000-0000000000c2", "7d8c4a0e-0000-4000-8000-0000000000c3"} {
		e.wantDecision(c, eventsv1.Flag_FLAG_NO_FEEDBACK, decide.ReasonOutOfScope, "")
	}
	e.wantNoDecision("7d8c4a0e-0000-4000-8000-0000000000c4")
}
