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
	contosoNoEnd   = Position{CompanyName: "Contoso", Title: "Engineer", Start: ym(2018, 3), Past: true}
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
			name: "ambiguous: two members of one email who disagree",
			in: func() Input {
				other := member(contosoNow)
				other.ID = "m2"
				return input(member(contosoEnded, fabrikamNow), other)
			},
			value: NoFeedback, reason: ReasonAmbiguous,
		},
		{
			name: "two members of one email who agree decide",
			in: func() Input {
				other := member(contosoEnded, tailspinSide)
				other.ID = "m2"
				return input(member(contosoEnded, fabrikamNow), other)
			},
			value: NotAtCompany, reason: ReasonLeft, confidence: 0.855,
		},
		{
			name: "a second member of the email who says nothing of the company contradicts nothing",
			in: func() Input {
				other := member(fabrikamNow)
				other.ID = "m2"
				return input(member(contosoEnded, fabrikamNow), other)
			},
			value: NotAtCompany, reason: ReasonLeft, confidence: 0.855,
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

// namesake is a member found by name only: Ada Lovelace without an email.
func namesake(id string, positions ...Position) Member {
	return Member{ID: id, Source: "feed", ObservedAt: observed, FirstName: "Ada", LastName: "Lovelace", Positions: positions}
}

func TestEvaluateMemberMatch(t *testing.T) {
	contosoPage := map[string]Company{"co-1": {ID: "co-1", Name: "Contoso", Domains: []string{"contoso.com"}}}
	onPage := func(p Position) Position { p.CompanyID = "co-1"; return p }
	titled := func(p Position, title string) Position { p.Title = title; return p }
	tests := []struct {
		name       string
		contact    func(*Contact)
		members    []Member
		companies  map[string]Company
		value      int
		reason     string
		how        string
		memberConf float64
		confidence float64
		memberID   string
	}{
		{
			name:    "explicit member id",
			contact: func(c *Contact) { c.EmailHashes, c.MemberID = nil, "li-7" },
			members: []Member{func() Member { m := namesake("li-7", contosoEnded, fabrikamNow); m.FirstName = "A."; return m }()},
			value:   NotAtCompany, reason: ReasonLeft, how: "explicit", memberConf: 1, confidence: 0.9, memberID: "li-7",
		},
		{
			name:    "explicit profile URL, written differently",
			contact: func(c *Contact) { c.EmailHashes, c.ProfileURL = nil, "linkedin.com/in/ada-lovelace" },
			members: []Member{func() Member {
				m := namesake("m1", contosoEnded, fabrikamNow)
				m.ProfileURL = "https://www.linkedin.com/in/Ada-Lovelace/?trk=x"
				return m
			}()},
			value: NotAtCompany, reason: ReasonLeft, how: "explicit", memberConf: 1, confidence: 0.9, memberID: "m1",
		},
		{
			name:    "explicit id beats an email match of another member",
			contact: func(c *Contact) { c.MemberID = "li-7" },
			members: []Member{member(contosoNow), namesake("li-7", contosoEnded, fabrikamNow)},
			value:   NotAtCompany, reason: ReasonLeft, how: "explicit", memberConf: 1, confidence: 0.9, memberID: "li-7",
		},
		{
			name:    "email",
			members: []Member{member(contosoEnded, fabrikamNow)},
			value:   NotAtCompany, reason: ReasonLeft, how: "email", memberConf: 0.95, confidence: 0.855, memberID: "m1",
		},
		{
			name:    "name and a position at the company: below the threshold",
			contact: func(c *Contact) { c.EmailHashes, c.Title, c.Country = nil, "Director", "UK" },
			members: []Member{namesake("m1", contosoEnded, fabrikamNow)},
			value:   NoFeedback, reason: ReasonBelowThresh, how: "name+company", memberConf: 0.248, confidence: 0.223, memberID: "m1",
		},
		{
			name:    "name and title, company by name: below the threshold",
			contact: func(c *Contact) { c.EmailHashes, c.Title = nil, "engineer" },
			members: []Member{namesake("m1", contosoEnded, fabrikamNow)},
			value:   NoFeedback, reason: ReasonBelowThresh, how: "name+company+title", memberConf: 0.863, confidence: 0.777, memberID: "m1",
		},
		{
			name:      "name and title, company by domain: flags",
			contact:   func(c *Contact) { c.EmailHashes, c.Title = nil, "Engineer" },
			members:   []Member{namesake("m1", onPage(contosoEnded), fabrikamNow)},
			companies: contosoPage,
			value:     NotAtCompany, reason: ReasonLeft, how: "name+company+title", memberConf: 0.863, confidence: 0.846, memberID: "m1",
		},
		{
			name:    "name and country",
			contact: func(c *Contact) { c.EmailHashes, c.Country = nil, "united kingdom" },
			members: []Member{func() Member {
				m := namesake("m1", onPage(contosoEnded), fabrikamNow)
				m.Country = "United Kingdom"
				return m
			}()},
			companies: contosoPage,
			value:     NoFeedback, reason: ReasonBelowThresh, how: "name+company+country", memberConf: 0.765, confidence: 0.75, memberID: "m1",
		},
		{
			name:    "name, title and country, company by name: flags",
			contact: func(c *Contact) { c.EmailHashes, c.Title, c.Country = nil, "Engineer", "UK" },
			members: []Member{func() Member { m := namesake("m1", contosoEnded, fabrikamNow); m.Country = "uk"; return m }()},
			value:   NotAtCompany, reason: ReasonLeft, how: "name+company+title+country", memberConf: 0.942, confidence: 0.848, memberID: "m1",
		},
		{
			name:    "the same title on a position elsewhere is no boost",
			contact: func(c *Contact) { c.EmailHashes, c.Title = nil, "Lead" },
			members: []Member{namesake("m1", contosoEnded, fabrikamNow)},
			value:   NoFeedback, reason: ReasonBelowThresh, how: "name+company", memberConf: 0.248, confidence: 0.223, memberID: "m1",
		},
		{
			name:    "a name alone never matches",
			contact: func(c *Contact) { c.EmailHashes, c.Title, c.Country = nil, "Lead", "UK" },
			members: []Member{func() Member { m := namesake("m1", fabrikamBefore, fabrikamNow); m.Country = "UK"; return m }()},
			value:   NoFeedback, reason: ReasonUnmatched,
		},
		{
			name:    "a one-word name never matches",
			contact: func(c *Contact) { c.EmailHashes, c.LastName = nil, "" },
			members: []Member{func() Member { m := namesake("m1", contosoEnded, fabrikamNow); m.LastName = ""; return m }()},
			value:   NoFeedback, reason: ReasonUnmatched,
		},
		{
			name:    "accents fold, nicknames do not",
			contact: func(c *Contact) { c.EmailHashes, c.FirstName = nil, "Addie" },
			members: []Member{namesake("m1", contosoEnded, fabrikamNow)},
			value:   NoFeedback, reason: ReasonUnmatched,
		},
		{
			name:    "same name, both at the company: ambiguous",
			contact: func(c *Contact) { c.EmailHashes = nil },
			members: []Member{namesake("m1", contosoEnded, fabrikamNow), namesake("m2", contosoNow)},
			value:   NoFeedback, reason: ReasonAmbiguous, how: "name+company", memberID: "m1",
		},
		{
			name:    "same name, both at the company, a title does not tell them apart",
			contact: func(c *Contact) { c.EmailHashes, c.Title, c.Country = nil, "Engineer", "UK" },
			members: []Member{
				func() Member { m := namesake("m1", onPage(contosoEnded), fabrikamNow); m.Country = "UK"; return m }(),
				func() Member {
					m := namesake("m2", titled(onPage(contosoNow), "Staff Engineer"))
					m.Country = "UK"
					return m
				}(),
			},
			companies: contosoPage,
			value:     NoFeedback, reason: ReasonAmbiguous, how: "name+company+title+country", memberID: "m1",
		},
		{
			name:    "same name, only one ever at the company",
			contact: func(c *Contact) { c.EmailHashes, c.Title, c.Country = nil, "Engineer", "UK" },
			members: []Member{
				func() Member { m := namesake("m1", contosoEnded, fabrikamNow); m.Country = "UK"; return m }(),
				namesake("m2", fabrikamNow),
			},
			value: NotAtCompany, reason: ReasonLeft, how: "name+company+title+country", memberConf: 0.942, confidence: 0.848, memberID: "m1",
		},
		{
			name:    "an email match is not ambiguous with a namesake at the company",
			contact: func(c *Contact) { c.FirstName, c.Title = "Ada", "Engineer" },
			members: []Member{
				func() Member {
					m := member(contosoEnded, fabrikamNow)
					m.FirstName, m.LastName = "Ada", "Lovelace"
					return m
				}(),
				namesake("m2", contosoNow), namesake("m3", contosoNow),
			},
			value: NotAtCompany, reason: ReasonLeft, how: "email", memberConf: 0.95, confidence: 0.855, memberID: "m1",
		},
		{
			name:    "the same member twice is not ambiguous",
			contact: func(c *Contact) { c.EmailHashes = nil },
			members: []Member{namesake("m1", contosoEnded, fabrikamNow), namesake("m1", contosoEnded, fabrikamNow)},
			value:   NoFeedback, reason: ReasonBelowThresh, how: "name+company", memberConf: 0.559, confidence: 0.503, memberID: "m1",
		},
		{
			name: "the contact's profile URL names another profile: a namesake",
			contact: func(c *Contact) {
				c.EmailHashes, c.Title, c.Country, c.ProfileURL = nil, "Engineer", "UK", "https://www.linkedin.com/in/ada-lovelace-2"
			},
			members: []Member{func() Member {
				m := namesake("m1", contosoEnded, fabrikamNow)
				m.Country, m.ProfileURL = "UK", "https://www.linkedin.com/in/ada-lovelace"
				return m
			}()},
			value: NoFeedback, reason: ReasonUnmatched,
		},
		{
			name: "a country subdomain is the same profile, not a contradiction",
			contact: func(c *Contact) {
				c.EmailHashes, c.Title, c.Country, c.ProfileURL = nil, "Engineer", "UK", "https://uk.linkedin.com/in/ada-lovelace"
			},
			members: []Member{func() Member {
				m := namesake("m1", contosoEnded, fabrikamNow)
				m.Country, m.ProfileURL = "UK", "https://www.linkedin.com/in/ada-lovelace/"
				return m
			}()},
			value: NotAtCompany, reason: ReasonLeft, how: "name+company+title+country", memberConf: 0.942, confidence: 0.848, memberID: "m1",
		},
		{
			name:    "a junk profile URL on the contact contradicts nothing",
			contact: func(c *Contact) { c.EmailHashes, c.Title, c.Country, c.ProfileURL = nil, "Engineer", "UK", "N/A" },
			members: []Member{func() Member {
				m := namesake("m1", contosoEnded, fabrikamNow)
				m.Country, m.ProfileURL = "UK", "https://www.linkedin.com/in/ada-lovelace"
				return m
			}()},
			value: NotAtCompany, reason: ReasonLeft, how: "name+company+title+country", memberConf: 0.942, confidence: 0.848, memberID: "m1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := input(tt.members...)
			in.Companies = tt.companies
			if tt.contact != nil {
				tt.contact(&in.Contact)
			}
			r := Evaluate(in)
			if r.Value != tt.value || r.Reason != tt.reason {
				t.Fatalf("Evaluate = %d %q, want %d %q (result %+v)", r.Value, r.Reason, tt.value, tt.reason, r)
			}
			e := r.Evidence
			if e.MemberMatch != tt.how || e.MemberConfidence != tt.memberConf || e.MemberID != tt.memberID {
				t.Errorf("member match = %q %v %q, want %q %v %q", e.MemberMatch, e.MemberConfidence, e.MemberID, tt.how, tt.memberConf, tt.memberID)
			}
			if r.Confidence != tt.confidence {
				t.Errorf("confidence = %v, want %v", r.Confidence, tt.confidence)
			}
		})
	}
}

func TestProfileURLKey(t *testing.T) {
	const want = "linkedin.com/in/avery-quinn"
	for _, u := range []string{
		"https://www.linkedin.com/in/Avery-Quinn/?x=1",
		"https://www.linkedin.com/in/avery-quinn",
		"http://www.linkedin.com/in/avery-quinn/",
		"https://linkedin.com/in/avery-quinn",
		"www.linkedin.com/in/avery-quinn",
		"linkedin.com/in/avery-quinn",
		"  HTTPS://WWW.LINKEDIN.COM/IN/AVERY-QUINN  ",
		"https://www.linkedin.com/in/avery-quinn?trk=public_profile",
		"https://www.linkedin.com/in/avery-quinn#experience",
		"https://www.linkedin.com/in/avery-quinn//",
	} {
		if got := ProfileURLKey(u); got != want {
			t.Errorf("ProfileURLKey(%q) = %q, want %q", u, got, want)
		}
	}
	for u, want := range map[string]string{
		"":                                    "",
		"   ":                                 "",
		"https://uk.linkedin.com/in/avery":    "uk.linkedin.com/in/avery",
		"https://www.linkedin.com/in/avery-2": "linkedin.com/in/avery-2",
		"https://www.linkedin.com/":           "linkedin.com",
	} {
		if got := ProfileURLKey(u); got != want {
			t.Errorf("ProfileURLKey(%q) = %q, want %q", u, got, want)
		}
	}
	if ProfileURLKey("https://www.linkedin.com/in/avery-quinn") == ProfileURLKey("https://www.linkedin.com/in/avery-quinn-2") {
		t.Error("a namesake's numbered profile shares the key")
	}
}

func TestProfileSlug(t *testing.T) {
	for key, want := range map[string]string{
		"linkedin.com/in/ada":                    "/in/ada",
		"uk.linkedin.com/in/ada":                 "/in/ada",
		"linkedin.com/in/ada/details/experience": "/in/ada",
		"linkedin.com/in/":                       "",
		"linkedin.com":                           "",
		"n/a":                                    "",
		"":                                       "",
	} {
		if got := profileSlug(key); got != want {
			t.Errorf("profileSlug(%q) = %q, want %q", key, got, want)
		}
	}
}

func TestEvaluateCompanyFamily(t *testing.T) {
	// The account is Contoso (by domain); its page sits in a group with a
	// parent, a grandparent, subsidiaries, a sister and an acquirer.
	companies := map[string]Company{
		"co-contoso":  {ID: "co-contoso", Name: "CTSO", Domains: []string{"contoso.com"}, Parent: "co-group", Successor: "co-acquirer"},
		"co-group":    {ID: "co-group", Name: "CTSO Group", Parent: "co-holding"}, // not "Contoso Group": that is the account's name
		"co-holding":  {ID: "co-holding", Name: "Wide World Holding"},
		"co-sub":      {ID: "co-sub", Name: "Contoso Labs", Parent: "co-contoso"},
		"co-subsub":   {ID: "co-subsub", Name: "Contoso Labs Nordics", Parent: "co-sub"},
		"co-sister":   {ID: "co-sister", Name: "Contoso Bank", Parent: "co-group"},
		"co-acquirer": {ID: "co-acquirer", Name: "Fabrikam Corp"},
		"co-absorbed": {ID: "co-absorbed", Name: "Tailspin", Successor: "co-contoso"},
		"co-next":     {ID: "co-next", Name: "Northwind", Successor: "co-acquirer"},
		"co-other":    {ID: "co-other", Name: "Litware"},
	}
	ended := Position{CompanyID: "co-contoso", CompanyName: "CTSO", Start: ym(2018, 1), End: ym(2024, 1)}
	tests := []struct {
		name    string
		current string
		family  bool
	}{
		{"parent", "co-group", true},
		{"parent's parent", "co-holding", true},
		{"subsidiary", "co-sub", true},
		{"subsidiary's subsidiary", "co-subsub", true},
		{"successor after an acquisition", "co-acquirer", true},
		{"company it absorbed", "co-absorbed", true},
		{"sister company under the same parent", "co-sister", false},
		{"another company the acquirer absorbed", "co-next", false},
		{"unrelated", "co-other", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := Position{CompanyID: tt.current, CompanyName: companies[tt.current].Name, Start: ym(2024, 1), Current: true}
			in := input(member(ended, now))
			in.Companies = companies
			r := Evaluate(in)
			if tt.family {
				if r.Value != NoFeedback || r.Reason != ReasonStillThere {
					t.Fatalf("Evaluate = %d %q, want still at the company", r.Value, r.Reason)
				}
				return
			}
			if r.Value != NotAtCompany || r.Reason != ReasonLeft || r.Evidence.Current == nil || r.Evidence.Current.CompanyID != tt.current {
				t.Fatalf("Evaluate = %d %q current %+v, want left for %s", r.Value, r.Reason, r.Evidence.Current, tt.current)
			}
		})
	}

	// Only a family position ended: the evidence says how it matched.
	// ("Fabrikam" typed without its page would be the acquirer's name.)
	litwareNow := Position{CompanyName: "Litware", Title: "Lead", Start: ym(2024, 10), Current: true}
	in := input(member(Position{CompanyID: "co-sub", CompanyName: "Contoso Labs", Start: ym(2018, 1), End: ym(2024, 1)}, litwareNow))
	in.Companies = companies
	r := Evaluate(in)
	if r.Value != NotAtCompany || r.Evidence.CompanyMatch != "family" || r.Evidence.CompanyConfidence != 0.9 || r.Evidence.CompanyID != "co-sub" || r.Confidence != 0.855 {
		t.Errorf("Evaluate = %d %q, evidence %q %v %q, confidence %v; want left, family 0.9 co-sub, 0.855",
			r.Value, r.Reason, r.Evidence.CompanyMatch, r.Evidence.CompanyConfidence, r.Evidence.CompanyID, r.Confidence)
	}

	// A cycle in the company tree ends.
	cyclic := map[string]Company{
		"co-a": {ID: "co-a", Name: "A", Domains: []string{"contoso.com"}, Parent: "co-b"},
		"co-b": {ID: "co-b", Name: "B", Parent: "co-a"},
	}
	in = input(member(Position{CompanyID: "co-a", CompanyName: "A", Start: ym(2018, 1), End: ym(2024, 1)},
		Position{CompanyID: "co-b", CompanyName: "B", Start: ym(2024, 1), Current: true}))
	in.Companies = cyclic
	if r := Evaluate(in); r.Reason != ReasonStillThere {
		t.Errorf("cyclic tree: Evaluate = %d %q, want still at the company", r.Value, r.Reason)
	}
}

func TestEvaluateCompanyPage(t *testing.T) {
	t.Run("a position on the same page as one at the company is at the company", func(t *testing.T) {
		// Renamed: the page knows only the new name and domain; the profile
		// ended the old name and started the new one on the same page.
		in := input(member(
			Position{CompanyID: "co-1", CompanyName: "Contoso", Start: ym(2018, 1), End: ym(2024, 5)},
			Position{CompanyID: "co-1", CompanyName: "Nimbus Systems", Start: ym(2024, 5), Current: true},
		))
		in.Companies = map[string]Company{"co-1": {ID: "co-1", Name: "Nimbus Systems", Domains: []string{"nimbus.io"}}}
		if r := Evaluate(in); r.Value != NoFeedback || r.Reason != ReasonStillThere {
			t.Errorf("Evaluate = %d %q, want still at the company", r.Value, r.Reason)
		}
	})
	t.Run("positions without a page id are not tied together", func(t *testing.T) {
		in := input(member(
			Position{CompanyName: "Contoso", Start: ym(2018, 1), End: ym(2024, 5)},
			Position{CompanyName: "Nimbus Systems", Start: ym(2024, 5), Current: true},
		))
		if r := Evaluate(in); r.Value != NotAtCompany {
			t.Errorf("Evaluate = %d %q, want left", r.Value, r.Reason)
		}
	})
	t.Run("the page's domain may carry www", func(t *testing.T) {
		in := input(member(Position{CompanyID: "co-1", CompanyName: "CTSO", Start: ym(2018, 1), End: ym(2024, 5)}, fabrikamNow))
		in.Account.Website = "contoso.co.uk"
		in.Companies = map[string]Company{"co-1": {ID: "co-1", Name: "CTSO", Domains: []string{"www.contoso.co.uk"}}}
		r := Evaluate(in)
		if r.Value != NotAtCompany || r.Evidence.CompanyMatch != "domain" {
			t.Errorf("Evaluate = %d %q by %q, want left by domain", r.Value, r.Reason, r.Evidence.CompanyMatch)
		}
	})
}

func TestEvaluateStale(t *testing.T) {
	maxAge := 548 * 24 * time.Hour
	tests := []struct {
		name   string
		now    time.Time
		maxAge time.Duration
		value  int
		reason string
	}{
		{"observed two years ago", observed.AddDate(2, 0, 0), maxAge, NoFeedback, ReasonStale},
		{"observed just inside the maximum age", observed.Add(maxAge), maxAge, NotAtCompany, ReasonLeft},
		{"observed just past the maximum age", observed.Add(maxAge + time.Second), maxAge, NoFeedback, ReasonStale},
		{"no maximum age", observed.AddDate(5, 0, 0), 0, NotAtCompany, ReasonLeft},
		{"no clock", time.Time{}, maxAge, NotAtCompany, ReasonLeft},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := input(member(contosoEnded, fabrikamNow))
			in.Now, in.MaxProfileAge = tt.now, tt.maxAge
			r := Evaluate(in)
			if r.Value != tt.value || r.Reason != tt.reason {
				t.Fatalf("Evaluate = %d %q, want %d %q", r.Value, r.Reason, tt.value, tt.reason)
			}
			if r.Evidence.MemberID != "m1" || !r.Evidence.ProfileObservedAt.Equal(observed) {
				t.Errorf("evidence = %q %v, want the member and when it was observed", r.Evidence.MemberID, r.Evidence.ProfileObservedAt)
			}
		})
	}
	// A stale profile that says the person is still there is stale too.
	in := input(member(contosoNow))
	in.Now, in.MaxProfileAge = observed.AddDate(2, 0, 0), maxAge
	if r := Evaluate(in); r.Value != NoFeedback || r.Reason != ReasonStale {
		t.Errorf("Evaluate = %d %q, want stale", r.Value, r.Reason)
	}
}

func TestEvaluateOutOfScope(t *testing.T) {
	in := input(member(contosoEnded, fabrikamNow))
	in.InScope = false
	r := Evaluate(in)
	if r.Value != NoFeedback || r.Reason != ReasonOutOfScope || r.Evidence.MemberID != "" {
		t.Errorf("Evaluate = %+v, want No Feedback out_of_scope and no evidence", r)
	}
	// An inactive contact says so first.
	in.Contact.Active = false
	if r := Evaluate(in); r.Reason != ReasonContactGone {
		t.Errorf("inactive and out of scope: reason %q, want %q", r.Reason, ReasonContactGone)
	}
}

func TestEvaluateIgnore(t *testing.T) {
	// The user ignored "left Contoso for Fabrikam".
	flagged := Evaluate(input(member(contosoEnded, fabrikamNow)))
	if flagged.Value != NotAtCompany {
		t.Fatalf("setup: %d %q", flagged.Value, flagged.Reason)
	}
	tailspinNow := Position{CompanyName: "Tailspin", Title: "Director", Start: ym(2025, 5), Current: true}
	fabrikamEnded := fabrikamNow
	fabrikamEnded.Current, fabrikamEnded.End = false, ym(2025, 4)
	tests := []struct {
		name    string
		members []Member
		reflag  bool
		digest  string
		value   int
	}{
		{"same evidence, re-flag off", []Member{member(contosoEnded, fabrikamNow)}, false, flagged.Digest(), Ignore},
		{"same evidence, re-flag on", []Member{member(contosoEnded, fabrikamNow)}, true, flagged.Digest(), Ignore},
		{"a later job change, re-flag off", []Member{member(contosoEnded, fabrikamEnded, tailspinNow)}, false, flagged.Digest(), Ignore},
		{"a later job change, re-flag on", []Member{member(contosoEnded, fabrikamEnded, tailspinNow)}, true, flagged.Digest(), NotAtCompany},
		{"re-flag on but what the user saw is unknown", []Member{member(contosoEnded, fabrikamEnded, tailspinNow)}, true, "", Ignore},
		{"re-flag on, evidence changed but no longer a flag", []Member{member(contosoNow)}, true, flagged.Digest(), Ignore},
		{"re-flag on, evidence gone", nil, true, flagged.Digest(), Ignore},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := input(tt.members...)
			in.Contact.Flag = Ignore
			in.ReflagAfterIgnore, in.IgnoredDigest = tt.reflag, tt.digest
			r := Evaluate(in)
			plain := in
			plain.Contact.Flag = NoFeedback
			underlying := Evaluate(plain)
			if r.Value != tt.value {
				t.Fatalf("Evaluate = %d %q, want %d", r.Value, r.Reason, tt.value)
			}
			if tt.value == NotAtCompany {
				if r.Reason != ReasonLeft || r.Digest() != underlying.Digest() || r.Underlying != "" {
					t.Errorf("re-flag = %+v, want the underlying flag itself", r)
				}
				return
			}
			if r.Reason != ReasonUserOverride {
				t.Errorf("reason = %q, want %q", r.Reason, ReasonUserOverride)
			}
			if r.Underlying == "" || r.Underlying != underlying.Digest() {
				t.Errorf("Underlying = %q, want the digest of what the evidence says %q", r.Underlying, underlying.Digest())
			}
			if !reflect.DeepEqual(r.Evidence, underlying.Evidence) {
				t.Errorf("evidence = %+v, want the underlying evidence %+v", r.Evidence, underlying.Evidence)
			}
		})
	}
}
