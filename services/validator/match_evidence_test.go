package validator

import (
	"math"
	"testing"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
)

// A flag on a name match carries each feature's weight: sealed in the
// published decision (it is about the member), there again when opened.
func TestNameMatchWeightsAreSealedEvidence(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCRM(company(accountID, syncUser, 1))
	e.mustCRM(crmRow("contact", contactID, 2, map[string]*eventsv1.Value{
		"firstname": strV("Ada"), "lastname": strV("Byron"), "jobtitle": strV("Procurement Manager"),
		"address1_country": strV("United Kingdom"), "parentcustomerid": refV("account", accountID), "statecode": choiceV(0),
	}))
	e.mustProfile(&eventsv1.ProfileChange{
		EventId: "feed-ada-byron", Source: "feed", MemberId: "m-ada-byron", FirstName: "Ada", LastName: "Byron",
		Country: "GB", ObservedAt: at(3),
		Positions: []*eventsv1.Position{
			{CompanyName: "Contoso", Title: "Manager, Procurement", Start: ymP(2019, 3), End: ymP(2024, 6)},
			{CompanyName: "Fabrikam", Title: "Head of Procurement", Start: ymP(2024, 7)}, // current: no end
		},
	})
	e.wantDecision(contactID, eventsv1.Flag_FLAG_NOT_AT_COMPANY, "left_company", "feed-ada-byron")
	d := e.decisionOf(contactID)
	if ev := d.GetEvidence(); len(ev.GetFeatures()) > 0 || ev.GetMatchWeight() != 0 || ev.GetSealed() == nil {
		t.Fatalf("published evidence shows the match's weights unsealed: %v", ev)
	}
	ev := e.opened(d)
	// The name counts are known: the only contact and member of the name.
	if ev.GetMemberMatch() != "name+company+title+country+uniqueness" {
		t.Errorf("member match %q", ev.GetMemberMatch())
	}
	want := map[string]bool{"prior": true, "name": true, "title": true, "country": true, "uniqueness": true}
	sum := 0.0
	for _, f := range ev.GetFeatures() {
		if !want[f.GetName()] || f.GetWeight() == 0 {
			t.Errorf("feature %v: want one of %v with a weight", f, want)
		}
		if f.GetName() == "name" && f.GetLevel() != "0 others in 2" {
			t.Errorf("name feature level %q, want the counts' 0 others in 2 (one contact, one member)", f.GetLevel())
		}
		delete(want, f.GetName())
		sum += f.GetWeight()
	}
	if len(want) > 0 {
		t.Errorf("features missing from the opened evidence: %v", want)
	}
	if math.Abs(sum-ev.GetMatchWeight()) > 0.011 || ev.GetMatchWeight() <= 0 {
		t.Errorf("match weight %v, want the features' sum %v", ev.GetMatchWeight(), sum)
	}
}
