package validator

import (
	"context"
	"fmt"
	"strings"
	"testing"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/validator/decide"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

// The name counts in the decisions: a contact without email matched by
// name to a member who left the account's company.

const namesakeID = "7d8c4a0e-0000-4000-8000-000000000003"

// nameOnly is a contact of the test account with a name, a title and a
// country, and no email.
func nameOnly(id, first, last string, version int) *eventsv1.CrmChange {
	return crmRow("contact", id, version, map[string]*eventsv1.Value{
		"firstname": strV(first), "lastname": strV(last), "jobtitle": strV("Procurement Manager"),
		"address1_country": strV("United Kingdom"), "parentcustomerid": refV("account", accountID), "statecode": choiceV(0),
	})
}

// leaver is a member of the name who left Contoso for Fabrikam; elsewhere
// one who never worked there.
func leaver(member, first, last string, observed int) *eventsv1.ProfileChange {
	return &eventsv1.ProfileChange{
		EventId: fmt.Sprintf("feed-%s-%d", member, observed), Source: "feed", MemberId: member, FirstName: first, LastName: last,
		Country: "GB", ObservedAt: at(observed),
		Positions: []*eventsv1.Position{
			{CompanyName: "Contoso", Title: "Manager, Procurement", Start: ymP(2019, 3), End: ymP(2024, 6)},
			{CompanyName: "Fabrikam", Title: "Head of Procurement", Start: ymP(2024, 7)},
		},
	}
}

func elsewhere(member, first, last string, observed int) *eventsv1.ProfileChange {
	return &eventsv1.ProfileChange{
		EventId: fmt.Sprintf("feed-%s-%d", member, observed), Source: "feed", MemberId: member, FirstName: first, LastName: last,
		Country: "US", ObservedAt: at(observed),
		Positions: []*eventsv1.Position{{CompanyName: fmt.Sprint("Tailspin ", member), Title: "Engineer", Start: ymP(2015, 1)}},
	}
}

// names is the counts the contact's evaluation reads.
func (e *env) names(contact string) *decide.NameStats {
	e.t.Helper()
	return namesOf(e.ctx, e.t, e.svc, contact)
}

func namesOf(ctx context.Context, t *testing.T, svc *Service, contact string) *decide.NameStats {
	t.Helper()
	ev, err := svc.evaluationOf(ctx, state.ContactRef{Org: org, ID: contact})
	if err != nil || ev == nil {
		t.Fatalf("contact %s: %v %v", contact, ev, err)
	}
	return ev.in.Names
}

func featureLevel(ev *eventsv1.Evidence, name string) string {
	for _, f := range ev.GetFeatures() {
		if f.GetName() == name {
			return f.GetLevel()
		}
	}
	return ""
}

// A rare name, the only one on the account and among the members, flags
// on name, title and country; the evidence shows the counts.
func TestRareNameLeaverWithoutEmailIsFlagged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCRM(company(accountID, syncUser, 1))
	e.mustCRM(nameOnly(contactID, "Zebulon", "Quattlebaum", 2))
	e.mustProfile(leaver("m-zq", "Zebulon", "Quattlebaum", 3))
	e.wantDecision(contactID, eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, "feed-m-zq-3")
	ev := e.opened(e.decisionOf(contactID))
	if got := featureLevel(ev, decide.FeatureName); got != "0 others in 2" {
		t.Errorf("name feature %q, want the counts' 0 others in 2", got)
	}
	if got := featureLevel(ev, decide.FeatureUniqueness); got != "one contact and one member of the name" {
		t.Errorf("uniqueness feature %q", got)
	}
	if st := e.names(contactID); st == nil || *st != (decide.NameStats{Contacts: 1, ContactsOnAccount: 1, Members: 1, Population: 2}) {
		t.Errorf("name stats %+v", st)
	}
}

// A second contact of the name on the account may be the member as well:
// the flag on the first goes back, and neither is flagged.
func TestSecondContactOfTheNameTakesTheFlagBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCRM(company(accountID, syncUser, 1))
	e.mustCRM(nameOnly(contactID, "John", "Smith", 2))
	e.mustProfile(leaver("m-js", "John", "Smith", 3))
	e.wantDecision(contactID, eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, "")

	second := nameOnly(namesakeID, "John", "Smith", 4)
	e.mustCRM(second)
	e.wantDecision(contactID, eventsv1.Flag_FLAG_NO_FEEDBACK, decide.ReasonBelowThresh, second.GetEventId())
	if d := e.decisionOf(namesakeID); d != nil && d.GetValue() == eventsv1.Flag_FLAG_NOT_AT_COMPANY {
		t.Errorf("the second John Smith flagged: %v", d)
	}
	if st := e.names(contactID); st == nil || st.ContactsOnAccount != 2 || st.Contacts != 2 {
		t.Errorf("name stats %+v, want two contacts of the name on the account", st)
	}
	// Redelivered, the change counts nothing twice.
	msg := msgOf(t, bus.CRMSubject(org, "contact", namesakeID), second)
	msg.Delivered = 2
	if err := e.svc.HandleCRM(e.ctx, msg); err != nil {
		t.Fatal(err)
	}
	if st := e.names(contactID); st == nil || st.ContactsOnAccount != 2 || st.Contacts != 2 {
		t.Errorf("after the redelivery: name stats %+v, want two contacts of the name on the account", st)
	}
	// Renamed, the second contact leaves the first unique again: flagged.
	renamed := nameOnly(namesakeID, "Joan", "Smith", 5)
	e.mustCRM(renamed)
	e.wantDecision(contactID, eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, renamed.GetEventId())
}

// Members of the name the feed sends from elsewhere make it a common name:
// the same evidence no longer reaches the threshold, and the flag it
// reached as a rare name goes back.
func TestCommonNameIsNotFlagged(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCRM(company(accountID, syncUser, 1))
	e.mustCRM(nameOnly(contactID, "John", "Smith", 2))
	e.mustProfile(leaver("m-js", "John", "Smith", 3))
	e.wantDecision(contactID, eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, "")
	for i := range 5 {
		e.mustProfile(elsewhere(fmt.Sprint("m-other-", i), "John", "Smith", 4))
	}
	e.wantDecision(contactID, eventsv1.Flag_FLAG_NO_FEEDBACK, decide.ReasonBelowThresh, "")
	// Taken back as soon as the name was common enough.
	if got := featureLevel(e.opened(e.decisionOf(contactID)), decide.FeatureName); got == "" || strings.HasPrefix(got, "0 others") {
		t.Errorf("name feature %q of the reversal, want others of the name counted", got)
	}
	if st := e.names(contactID); st == nil || st.Members != 6 || st.MembersAtCompany > 1 {
		t.Errorf("name stats %+v, want six members of the name, one at the company", st)
	}
}

// Two members of the name at the company, one still there: ambiguous.
func TestTwoMembersOfTheNameAtTheCompanyAreAmbiguous(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCRM(company(accountID, syncUser, 1))
	e.mustCRM(nameOnly(contactID, "John", "Smith", 2))
	e.mustProfile(leaver("m-js", "John", "Smith", 3))
	stays := leaver("m-js-2", "John", "Smith", 4)
	stays.Positions = stays.Positions[:1]
	stays.Positions[0].End = nil
	e.mustProfile(stays)
	e.wantDecision(contactID, eventsv1.Flag_FLAG_NO_FEEDBACK, decide.ReasonAmbiguous, "")
}
