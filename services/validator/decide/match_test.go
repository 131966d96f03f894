package decide

import (
	"math"
	"testing"
	"time"
)

func TestCompareTitles(t *testing.T) {
	tests := []struct{ a, b, want string }{
		{"Senior Procurement Manager", "Sr. Procurement Mgr", TitleExact},
		{"Manager, Procurement", "procurement manager", TitleExact},
		{"VP Sales", "Vice President, Sales", TitleExact},
		{"CTO", "Chief Technology Officer", TitleExact},
		{"CTO", "Technical Director", TitleSameRole},
		{"Directeur technique", "CTO", TitleSameRole},
		{"Einkaufsleiter", "Head of Procurement", TitleSameRole},
		{"Leiter Finanzen", "Head of Finance", TitleSameRole},
		{"Directrice financière", "Finance Director", TitleSameRole},
		{"Vertriebsleiter", "Head of Sales", TitleSameRole},
		{"Acheteur", "Buyer", TitleSameRole},
		{"Ingénieur logiciel", "Software Engineer", TitleSameRole},
		{"Responsable des achats", "Procurement Manager", TitleFunction},
		{"Software Engineer", "Senior Software Engineer", TitleFunction},
		{"Responsable RH", "HR Manager", TitleFunction},
		{"Einkaufsleiter", "Head of Sales", TitleDiffers},
		{"Directeur financier", "Directeur technique", TitleDiffers},
		{"Director", "Manager", TitleDiffers},
		{"", "Manager", TitleMissing},
		{"Buyer", "  ", TitleMissing},
	}
	for _, tt := range tests {
		if got := CompareTitles(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareTitles(%q, %q) = %q, want %q", tt.a, tt.b, got, tt.want)
		}
		if got := CompareTitles(tt.b, tt.a); got != tt.want {
			t.Errorf("CompareTitles(%q, %q) = %q, want %q (symmetric)", tt.b, tt.a, got, tt.want)
		}
	}
}

// A name-based flag carries every weight it added up: the features sum to
// MatchWeight, and the member confidence is its probability.
func TestNameMatchEvidenceShowsEachWeight(t *testing.T) {
	in := input(func() Member {
		m := namesake("m1", Position{CompanyID: "co-1", CompanyName: "Contoso", Title: "Head of Procurement", Start: ym(2018, 1), End: ym(2024, 9)}, fabrikamNow)
		m.Country = "GB"
		return m
	}())
	in.Companies = map[string]Company{"co-1": {ID: "co-1", Name: "Contoso", Domains: []string{"contoso.com"}}}
	in.Contact.EmailHashes, in.Contact.Title, in.Contact.Country = nil, "Einkaufsleiter", "United Kingdom"
	in.Contact.EmailDomains = []string{"contoso.com"}
	in.Contact.CreatedOn = time.Date(2020, 3, 1, 0, 0, 0, 0, time.UTC)
	in.Names = &NameStats{Contacts: 1, ContactsOnAccount: 1, Members: 1, Population: 30000}
	r := Evaluate(in)
	if r.Value != NotAtCompany {
		t.Fatalf("Evaluate = %d %q, want a flag", r.Value, r.Reason)
	}
	e := r.Evidence
	want := map[string]string{
		FeaturePrior: "1 in 1500", FeatureName: "0 others in 30000", FeatureTitle: TitleSameRole, FeatureCountry: "same",
		FeatureTenure: "inside", FeatureEmailDomain: "employer", FeatureUniqueness: "one contact and one member of the name",
	}
	sum := 0.0
	for _, f := range e.Features {
		if want[f.Name] != f.Level {
			t.Errorf("feature %s level %q, want %q", f.Name, f.Level, want[f.Name])
		}
		if f.Weight == 0 {
			t.Errorf("feature %s has no weight", f.Name)
		}
		delete(want, f.Name)
		sum += f.Weight
	}
	if len(want) > 0 {
		t.Errorf("features missing: %v (have %+v)", want, e.Features)
	}
	if math.Abs(sum-e.MatchWeight) > 0.011 {
		t.Errorf("MatchWeight %v, want the features' sum %v", e.MatchWeight, sum)
	}
	if p := round3(probability(e.MatchWeight)); math.Abs(p-e.MemberConfidence) > 0.002 {
		t.Errorf("MemberConfidence %v, want the probability of %v bits (%v)", e.MemberConfidence, e.MatchWeight, p)
	}
	if e.MemberMatch != "name+company+rare_name+role+country+tenure+email_domain+uniqueness" {
		t.Errorf("MemberMatch = %q", e.MemberMatch)
	}
}

func TestNameFrequency(t *testing.T) {
	unknown := nameFeature(nil).Weight
	tests := []struct {
		name  string
		stats *NameStats
		rarer bool
	}{
		{"unknown is the default", nil, false},
		{"small sample stays near the default", &NameStats{Contacts: 1, Members: 1, Population: 100}, false},
		{"seen once among many is rare", &NameStats{Contacts: 1, Members: 1, Population: 100000}, true},
		{"seen often among many is common", &NameStats{Contacts: 30, Members: 30, Population: 100000}, false},
	}
	for _, tt := range tests {
		w := nameFeature(tt.stats).Weight
		if rarer := w > unknown+1; rarer != tt.rarer {
			t.Errorf("%s: weight %v (default %v), rarer = %v, want %v", tt.name, w, unknown, rarer, tt.rarer)
		}
		if max := math.Log2(nameM / minNameFrequency); w > max+0.01 {
			t.Errorf("%s: weight %v beyond the bound %v", tt.name, w, max)
		}
	}
}

func TestSharesFullName(t *testing.T) {
	ada := Contact{FirstName: "Ada", LastName: "Byron"}
	tests := []struct {
		name    string
		c       Contact
		members []Member
		want    bool
	}{
		{"no members", ada, nil, false},
		{"the name however written", ada, []Member{{FirstName: "Grace", LastName: "Hopper"}, {FirstName: "ÁDA", LastName: "byron"}}, true},
		{"other names", ada, []Member{{FirstName: "Ada", LastName: "King"}}, false},
		{"a single name is no full name", Contact{FirstName: "Cher"}, []Member{{FirstName: "Cher"}}, false},
		{"members without names", ada, []Member{{ID: "m1"}}, false},
	}
	for _, tt := range tests {
		if got := SharesFullName(tt.c, tt.members); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestUniqueness(t *testing.T) {
	tests := []struct {
		name      string
		stats     *NameStats
		namesakes int // candidates of the name at the company
		level     string
		weight    float64 // compared when ok
		ok        bool
	}{
		{name: "counts unknown, one candidate", namesakes: 1},
		{name: "counts unknown, two candidates", namesakes: 2, level: "2 members of the name at the company", ok: true},
		{name: "one contact, one member", stats: &NameStats{ContactsOnAccount: 1, MembersAtCompany: 1}, namesakes: 1,
			level: "one contact and one member of the name", weight: round2(uniqueWeight.bits()), ok: true},
		{name: "the counts know a second member at the company", stats: &NameStats{ContactsOnAccount: 1, MembersAtCompany: 2}, namesakes: 1,
			level: "2 members of the name at the company", ok: true},
		{name: "two candidates, the counts one", stats: &NameStats{ContactsOnAccount: 1, MembersAtCompany: 1}, namesakes: 2,
			level: "2 members of the name at the company", ok: true},
		{name: "two contacts on the account", stats: &NameStats{ContactsOnAccount: 2, MembersAtCompany: 1}, namesakes: 1,
			level: "2 contacts of the name on the account", weight: -1 - otherContactBits, ok: true},
	}
	for _, tt := range tests {
		f, ok := uniqueness(tt.stats, tt.namesakes)
		if ok != tt.ok || f.Level != tt.level || ok && f.Weight != tt.weight {
			t.Errorf("%s: %+v %v, want %q %v %v", tt.name, f, ok, tt.level, tt.weight, tt.ok)
		}
	}
}

func TestPositionIsCurrent(t *testing.T) {
	tests := []struct {
		name string
		p    Position
		want bool
	}{
		{"marked current", Position{Current: true}, true},
		{"no end and no current field", Position{Start: ym(2020, 1)}, true},
		{"no end, marked not current", Position{Start: ym(2020, 1), Past: true}, false},
		{"an end date", Position{Start: ym(2020, 1), End: ym(2024, 1)}, false},
	}
	for _, tt := range tests {
		if got := tt.p.IsCurrent(); got != tt.want {
			t.Errorf("%s: IsCurrent = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestChangedAfter(t *testing.T) {
	at := time.Date(2025, 3, 10, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		ev   Evidence
		want bool
	}{
		{"ended the month after", Evidence{Ended: &Position{End: ym(2025, 4)}}, true},
		{"ended the same month", Evidence{Ended: &Position{End: ym(2025, 3)}}, false},
		{"ended before", Evidence{Ended: &Position{End: ym(2024, 12)}}, false},
		{"year only, the same year", Evidence{Ended: &Position{End: &YearMonth{Year: 2025}}}, false},
		{"year only, a later year", Evidence{Ended: &Position{End: &YearMonth{Year: 2026}}}, true},
		{"no end: the new job's start", Evidence{Ended: &Position{}, Current: &Position{Start: ym(2025, 5)}}, true},
		{"nothing dated", Evidence{Ended: &Position{}}, false},
	}
	for _, tt := range tests {
		if got := changedAfter(tt.ev, at); got != tt.want {
			t.Errorf("%s: changedAfter = %v, want %v", tt.name, got, tt.want)
		}
	}
	if changedAfter(Evidence{Ended: &Position{End: ym(2030, 1)}}, time.Time{}) {
		t.Error("changedAfter with no Ignore time = true, want false")
	}
}

// An Ignore no decision of ours saw covers the job changes dated up to the
// month it was set in; with re-flagging on, only a later one flags again.
func TestEvaluateIgnoreBeforeAnyDecision(t *testing.T) {
	tests := []struct {
		name      string
		ignoredAt time.Time
		reflag    bool
		value     int
	}{
		{"set after the move", time.Date(2024, 11, 2, 0, 0, 0, 0, time.UTC), true, Ignore},
		{"set in the month of the move", time.Date(2024, 9, 30, 0, 0, 0, 0, time.UTC), true, Ignore},
		{"set before the move", time.Date(2024, 8, 1, 0, 0, 0, 0, time.UTC), true, NotAtCompany},
		{"set before the move, re-flag off", time.Date(2024, 8, 1, 0, 0, 0, 0, time.UTC), false, Ignore},
		{"when unknown", time.Time{}, true, Ignore},
	}
	for _, tt := range tests {
		in := input(member(contosoEnded, fabrikamNow)) // ended 2024-09
		in.Contact.Flag, in.ReflagAfterIgnore, in.IgnoredAt = Ignore, tt.reflag, tt.ignoredAt
		if r := Evaluate(in); r.Value != tt.value {
			t.Errorf("%s: Evaluate = %d %q, want %d", tt.name, r.Value, r.Reason, tt.value)
		}
	}
}

func TestLinkedInIgnore(t *testing.T) {
	in := input(member(contosoEnded, fabrikamNow))
	in.Contact.LinkedInStatus = Ignore
	if r := Evaluate(in); r.Value != NoFeedback || r.Reason != ReasonLinkedInIgnore {
		t.Errorf("Evaluate = %d %q, want %d %q", r.Value, r.Reason, NoFeedback, ReasonLinkedInIgnore)
	}
	in.Contact.LinkedInStatus = NotAtCompany
	r := Evaluate(in)
	if r.Value != NotAtCompany || r.Evidence.MemberConfidence <= confEmail || len(r.Evidence.Features) != 1 || r.Evidence.Features[0].Level != "agrees" {
		t.Errorf("corroborated email match = %d confidence %v features %+v, want a flag above %v with the agreement", r.Value, r.Evidence.MemberConfidence, r.Evidence.Features, confEmail)
	}
}
