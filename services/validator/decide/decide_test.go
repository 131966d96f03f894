package decide

import (
	"reflect"
	"testing"
	"time"
)

var observed = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)

func ym(y, m int) *YearMonth { return &YearMonth{Year: y, Month: m} }

func contact() Contact {
	return Contact{ID: "c1", FirstName: "Ada", LastName: "Lovelace", EmailHashes: []string{"h1"}, AccountID: "a1", Active: true}
}

func account() *Account {
	return &Account{ID: "a1", Name: "Contoso Ltd", Website: "https://www.contoso.com"}
}

func member(positions ...Position) Member {
	return Member{ID: "m1", Source: "feed", ObservedAt: observed, EmailHashes: []string{"h1"}, Positions: positions}
}

var (
	contosoOld     = Position{CompanyName: "Contoso", Title: "Intern", Start: ym(2012, 1), End: ym(2014, 6)}
	contosoEnded   = Position{CompanyName: "Contoso Limited", Title: "Engineer", Start: ym(2018, 3), End: ym(2024, 9)}
	contosoNow     = Position{CompanyName: "CONTOSO", Title: "Engineer", Start: ym(2018, 3), Current: true}
	contosoNoEnd   = Position{CompanyName: "Contoso", Title: "Engineer", Start: ym(2018, 3)}
	fabrikamNow    = Position{CompanyName: "Fabrikam", Title: "Lead", Start: ym(2024, 10), Current: true}
	fabrikamBefore = Position{CompanyName: "Fabrikam", Title: "Junior", Start: ym(2015, 1), End: ym(2017, 12)}
	tailspinSide   = Position{CompanyName: "Tailspin", Title: "Advisor", Start: ym(2020, 1), Current: true}
)

func input(members ...Member) Input {
	return Input{Contact: contact(), Account: account(), Members: members, Threshold: 0.8, InScope: true}
}

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name       string
		in         func() Input
		value      int
		reason     string
		confidence float64
	}{
		{
			name: "ignore is kept whatever the evidence",
			in: func() Input {
				in := input(member(contosoEnded, fabrikamNow))
				in.Contact.Flag = Ignore
				in.Contact.Active = false
				return in
			},
			value: Ignore, reason: ReasonUserOverride,
		},
		{
			name: "inactive contact",
			in: func() Input {
				in := input(member(contosoEnded, fabrikamNow))
				in.Contact.Active = false
				return in
			},
			value: NoFeedback, reason: ReasonContactGone,
		},
		{
			name: "no account",
			in: func() Input {
				in := input(member(contosoEnded, fabrikamNow))
				in.Account = nil
				return in
			},
			value: NoFeedback, reason: ReasonNoAccount,
		},
		{
			name:  "unmatched: no member",
			in:    func() Input { return input() },
			value: NoFeedback, reason: ReasonUnmatched,
		},
		{
			name: "ambiguous: two members",
			in: func() Input {
				other := member(fabrikamNow)
				other.ID = "m2"
				return input(member(contosoEnded, fabrikamNow), other)
			},
			value: NoFeedback, reason: ReasonAmbiguous,
		},
		{
			name:  "no position at the company",
			in:    func() Input { return input(member(fabrikamBefore, fabrikamNow)) },
			value: NoFeedback, reason: ReasonNoPosition,
		},
		{
			name:  "member without positions",
			in:    func() Input { return input(member()) },
			value: NoFeedback, reason: ReasonNoPosition,
		},
		{
			name:  "still at the company",
			in:    func() Input { return input(member(fabrikamBefore, contosoNow)) },
			value: NoFeedback, reason: ReasonStillThere, confidence: 0.855,
		},
		{
			name:  "still at the company while already current elsewhere (notice period)",
			in:    func() Input { return input(member(contosoNow, fabrikamNow)) },
			value: NoFeedback, reason: ReasonStillThere, confidence: 0.855,
		},
		{
			name:  "still at the company in a second position there",
			in:    func() Input { return input(member(contosoEnded, contosoNow, fabrikamNow)) },
			value: NoFeedback, reason: ReasonStillThere, confidence: 0.855,
		},
		{
			name:  "left with an end date",
			in:    func() Input { return input(member(contosoEnded, fabrikamNow)) },
			value: NotAtCompany, reason: ReasonLeft, confidence: 0.855,
		},
		{
			name:  "left with an end date and nothing current",
			in:    func() Input { return input(member(contosoEnded)) },
			value: NotAtCompany, reason: ReasonLeft, confidence: 0.855,
		},
		{
			name:  "left without an end date but current elsewhere",
			in:    func() Input { return input(member(contosoNoEnd, fabrikamNow)) },
			value: NotAtCompany, reason: ReasonLeft, confidence: 0.855,
		},
		{
			name:  "ended without an end date and nothing current",
			in:    func() Input { return input(member(contosoNoEnd, fabrikamBefore)) },
			value: NoFeedback, reason: ReasonTooLittle, confidence: 0.855,
		},
		{
			name: "below the threshold",
			in: func() Input {
				in := input(member(contosoEnded, fabrikamNow))
				in.Threshold = 0.99
				return in
			},
			value: NoFeedback, reason: ReasonBelowThresh, confidence: 0.855,
		},
		{
			name: "threshold zero flags",
			in: func() Input {
				in := input(member(contosoEnded, fabrikamNow))
				in.Threshold = 0
				return in
			},
			value: NotAtCompany, reason: ReasonLeft, confidence: 0.855,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Evaluate(tt.in())
			if r.Value != tt.value || r.Reason != tt.reason {
				t.Fatalf("Evaluate = %d %q, want %d %q (result %+v)", r.Value, r.Reason, tt.value, tt.reason, r)
			}
			if r.Confidence != tt.confidence {
				t.Errorf("confidence = %v, want %v", r.Confidence, tt.confidence)
			}
			if r.Value != NotAtCompany && r.Reason != ReasonTooLittle && r.Reason != ReasonBelowThresh && r.Evidence.Contradicts != nil {
				t.Errorf("evidence contradicts %v on a %q result", r.Evidence.Contradicts, r.Reason)
			}
		})
	}
}

func TestEvaluateLeftEvidence(t *testing.T) {
	// Two positions at Contoso (the later one is the one that ended), one
	// earlier current position elsewhere and the newest current one.
	in := input(member(contosoOld, fabrikamBefore, contosoEnded, tailspinSide, fabrikamNow))
	r := Evaluate(in)
	if r.Value != NotAtCompany || r.Reason != ReasonLeft {
		t.Fatalf("Evaluate = %d %q, want NotAtCompany left_company", r.Value, r.Reason)
	}
	e := r.Evidence
	if e.Ended == nil || !reflect.DeepEqual(*e.Ended, contosoEnded) {
		t.Errorf("Ended = %+v, want the latest ended position at the company %+v", e.Ended, contosoEnded)
	}
	if e.Current == nil || !reflect.DeepEqual(*e.Current, fabrikamNow) {
		t.Errorf("Current = %+v, want the newest current position elsewhere %+v", e.Current, fabrikamNow)
	}
	if len(e.Contradicts) == 0 || e.Contradicts["parentcustomerid"] != "Contoso Ltd" {
		t.Errorf("Contradicts = %v, want parentcustomerid: Contoso Ltd", e.Contradicts)
	}
	if e.MemberID != "m1" || e.MemberMatch != "email" || e.MemberConfidence != 0.95 {
		t.Errorf("member evidence = %q %q %v", e.MemberID, e.MemberMatch, e.MemberConfidence)
	}
	if e.CompanyMatch != "name" || e.CompanyConfidence != 0.9 || e.CompanyName != "Contoso Ltd" {
		t.Errorf("company evidence = %q %v %q", e.CompanyMatch, e.CompanyConfidence, e.CompanyName)
	}
	if e.ProfileSource != "feed" || !e.ProfileObservedAt.Equal(observed) {
		t.Errorf("profile evidence = %q %v", e.ProfileSource, e.ProfileObservedAt)
	}
	if want := round3(e.MemberConfidence * e.CompanyConfidence); r.Confidence != want || want != 0.855 {
		t.Errorf("confidence = %v, want member*company rounded = %v", r.Confidence, want)
	}
}

func TestEvaluateLeftWithoutEndDate(t *testing.T) {
	r := Evaluate(input(member(contosoNoEnd, fabrikamNow)))
	if r.Value != NotAtCompany {
		t.Fatalf("Evaluate = %d %q", r.Value, r.Reason)
	}
	if r.Evidence.Ended == nil || r.Evidence.Ended.End != nil || r.Evidence.Ended.CompanyName != "Contoso" {
		t.Errorf("Ended = %+v, want the undated Contoso position", r.Evidence.Ended)
	}
	if r.Evidence.Current == nil || r.Evidence.Current.CompanyName != "Fabrikam" {
		t.Errorf("Current = %+v, want Fabrikam", r.Evidence.Current)
	}
}

func TestEvaluateInsufficientEvidenceHasNoCurrent(t *testing.T) {
	r := Evaluate(input(member(contosoNoEnd)))
	if r.Value != NoFeedback || r.Reason != ReasonTooLittle {
		t.Fatalf("Evaluate = %d %q", r.Value, r.Reason)
	}
	if r.Evidence.Current != nil || r.Evidence.Contradicts != nil {
		t.Errorf("evidence = %+v, want no current position and nothing contradicted", r.Evidence)
	}
}

func TestEvaluateCompanyMatch(t *testing.T) {
	ended := Position{CompanyID: "co-1", CompanyName: "CTSO Worldwide", Start: ym(2019, 1), End: ym(2024, 1)}
	tests := []struct {
		name       string
		companies  map[string]Company
		website    string
		match      string
		companyCo  float64
		confidence float64
		value      int
	}{
		{
			name:      "by domain through the company page",
			companies: map[string]Company{"co-1": {ID: "co-1", Name: "Something Else", Domains: []string{"contoso.com"}}},
			website:   "https://www.contoso.com/en", match: "domain", companyCo: 0.98, confidence: 0.931, value: NotAtCompany,
		},
		{
			name:      "by the company page's name",
			companies: map[string]Company{"co-1": {ID: "co-1", Name: "Contoso, Ltd.", Domains: []string{"contoso.net"}}},
			website:   "https://www.contoso.com", match: "name", companyCo: 0.9, confidence: 0.855, value: NotAtCompany,
		},
		{
			name:      "domain needs the account's website",
			companies: map[string]Company{"co-1": {ID: "co-1", Name: "Something Else", Domains: []string{"contoso.com"}}},
			website:   "", value: NoFeedback,
		},
		{
			name:    "unknown company page and a different name",
			website: "https://www.contoso.com", value: NoFeedback,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := input(member(ended, fabrikamNow))
			in.Account.Website = tt.website
			in.Companies = tt.companies
			r := Evaluate(in)
			if r.Value != tt.value {
				t.Fatalf("Evaluate = %d %q, want %d", r.Value, r.Reason, tt.value)
			}
			if tt.value == NoFeedback {
				if r.Reason != ReasonNoPosition {
					t.Errorf("reason = %q, want %q", r.Reason, ReasonNoPosition)
				}
				return
			}
			e := r.Evidence
			if e.CompanyMatch != tt.match || e.CompanyConfidence != tt.companyCo || e.CompanyID != "co-1" {
				t.Errorf("company match = %q %v %q, want %q %v co-1", e.CompanyMatch, e.CompanyConfidence, e.CompanyID, tt.match, tt.companyCo)
			}
			if r.Confidence != tt.confidence {
				t.Errorf("confidence = %v, want %v", r.Confidence, tt.confidence)
			}
		})
	}
}

func TestEvaluateBestCompanyMatchWins(t *testing.T) {
	// One position matches by name only, another by domain: the evidence
	// names the strongest match.
	byName := Position{CompanyName: "Contoso", Start: ym(2010, 1), End: ym(2012, 1)}
	byDomain := Position{CompanyID: "co-1", CompanyName: "CTSO", Start: ym(2019, 1), End: ym(2024, 1)}
	in := input(member(byName, byDomain, fabrikamNow))
	in.Companies = map[string]Company{"co-1": {ID: "co-1", Name: "CTSO", Domains: []string{"contoso.com"}}}
	r := Evaluate(in)
	if r.Evidence.CompanyMatch != "domain" || r.Evidence.CompanyID != "co-1" || r.Confidence != 0.931 {
		t.Errorf("evidence = %q %q confidence %v, want domain co-1 0.931", r.Evidence.CompanyMatch, r.Evidence.CompanyID, r.Confidence)
	}
	if r.Evidence.Ended == nil || r.Evidence.Ended.CompanyID != "co-1" {
		t.Errorf("Ended = %+v, want the 2024 position", r.Evidence.Ended)
	}
}

func TestDigest(t *testing.T) {
	base := func() Result { return Evaluate(input(member(contosoEnded, fabrikamNow))) }
	a, b := base(), base()
	if a.Digest() != b.Digest() {
		t.Fatalf("equal results, different digests %s %s", a.Digest(), b.Digest())
	}
	if len(a.Digest()) != 24 {
		t.Errorf("digest %q: want 24 hex characters", a.Digest())
	}
	// When the profile was observed is not part of what a seller sees.
	later := member(contosoEnded, fabrikamNow)
	later.ObservedAt = observed.Add(time.Hour)
	if got := Evaluate(input(later)).Digest(); got != a.Digest() {
		t.Errorf("re-observing the same profile changed the digest")
	}

	value := base()
	value.Value = NoFeedback
	if value.Digest() == a.Digest() {
		t.Error("digest did not change with the value")
	}
	reason := base()
	reason.Reason = ReasonBelowThresh
	if reason.Digest() == a.Digest() {
		t.Error("digest did not change with the reason")
	}
	otherEnd := contosoEnded
	otherEnd.End = ym(2024, 10)
	ended := Evaluate(input(member(otherEnd, fabrikamNow)))
	if ended.Digest() == a.Digest() {
		t.Error("digest did not change with the ended position")
	}
	otherCurrent := fabrikamNow
	otherCurrent.Title = "Director"
	if Evaluate(input(member(contosoEnded, otherCurrent))).Digest() == a.Digest() {
		t.Error("digest did not change with the current position")
	}
	conf := base()
	conf.Confidence = 0.9
	if conf.Digest() == a.Digest() {
		t.Error("digest did not change with the confidence")
	}
	var zero Result
	if zero.Digest() == (Result{Value: NotAtCompany}).Digest() {
		t.Error("empty results with different values share a digest")
	}
}

func TestLatest(t *testing.T) {
	undated := Position{Title: "undated"}
	old := Position{Title: "old", End: ym(2010, 5)}
	yearOnly := Position{Title: "year only", End: ym(2020, 0)}
	newer := Position{Title: "newer", End: ym(2020, 3)}
	end := func(p Position) *YearMonth { return p.End }
	if got := latest([]Position{undated, newer, old, yearOnly}, end); got.Title != "newer" {
		t.Errorf("latest = %q, want newer", got.Title)
	}
	if got := latest([]Position{newer, undated}, end); got.Title != "newer" {
		t.Errorf("latest = %q, want newer (undated sorts first)", got.Title)
	}
	if got := latest([]Position{undated}, end); got.Title != "undated" {
		t.Errorf("latest = %q, want the only position", got.Title)
	}
}
