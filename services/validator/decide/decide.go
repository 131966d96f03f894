// Package decide is the validator's judgement, as pure functions: given a
// contact, its account and what profile sources say, is the person still at
// the company, and on what evidence. No I/O; table-tested beside the code.
package decide

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Flag values of the contact's "Not at Company" column.
const (
	NoFeedback   = 0
	NotAtCompany = 1
	Ignore       = 2
)

// Reasons: the rule that fired.
const (
	ReasonLeft         = "left_company"
	ReasonStillThere   = "still_at_company"
	ReasonNoAccount    = "no_account"
	ReasonUnmatched    = "unmatched"
	ReasonAmbiguous    = "ambiguous_match"
	ReasonNoPosition   = "no_position_at_company"
	ReasonTooLittle    = "insufficient_evidence"
	ReasonStale        = "stale_profile"
	ReasonBelowThresh  = "below_threshold"
	ReasonUserOverride = "user_override"
	ReasonContactGone  = "contact_inactive"
	ReasonOutOfScope   = "out_of_scope"
)

// Contact is what the decision needs of a CRM contact.
type Contact struct {
	ID          string
	FirstName   string
	LastName    string
	Title       string
	Country     string
	EmailHashes []string
	// MemberID and ProfileURL name the member explicitly, when the
	// organization keeps a LinkedIn column on contact.
	MemberID   string
	ProfileURL string
	AccountID  string
	// Flag is the column's value as users last set it in Dynamics.
	Flag   int
	Active bool
}

// Account is what the decision needs of a CRM account.
type Account struct {
	ID        string
	Name      string
	Website   string
	CompanyID string // explicit company id, when the organization keeps one
}

// YearMonth is a month-precision date; Month 0 means unknown.
type YearMonth struct {
	Year  int `json:"y"`
	Month int `json:"m,omitempty"`
}

func (a YearMonth) before(b YearMonth) bool {
	return a.Year < b.Year || a.Year == b.Year && a.Month < b.Month
}

func (a YearMonth) String() string { return fmt.Sprintf("%04d-%02d", a.Year, a.Month) }

// Position is one job on a member's profile.
type Position struct {
	CompanyID   string     `json:"cid,omitempty"`
	CompanyName string     `json:"cn,omitempty"`
	Title       string     `json:"t,omitempty"`
	Start       *YearMonth `json:"s,omitempty"`
	End         *YearMonth `json:"e,omitempty"`
	Current     bool       `json:"c,omitempty"`
}

// Member is a person as profile sources describe them.
type Member struct {
	ID          string
	Source      string
	ObservedAt  time.Time
	FirstName   string
	LastName    string
	ProfileURL  string
	Country     string
	EmailHashes []string
	Positions   []Position
}

// Company is a company page.
type Company struct {
	ID        string
	Name      string
	Domains   []string
	Parent    string
	Successor string // the company that acquired this one
}

// Input is everything one evaluation looks at.
type Input struct {
	Contact Contact
	Account *Account // nil when the contact has no account
	// InScope: the contact or its account is owned by a sync user, or it is
	// linked to an opportunity owned by one.
	InScope bool
	// Members are the candidates: found by explicit id, email or name.
	Members []Member
	// Companies by id: those the positions and the account point at, and
	// their parents and successors.
	Companies map[string]Company
	// Threshold is the least confidence that may flag.
	Threshold float64
	// Now and MaxProfileAge: a profile observed longer ago says too little.
	Now           time.Time
	MaxProfileAge time.Duration
	// ReflagAfterIgnore lets new evidence flag a contact a user set to
	// Ignore; IgnoredDigest is the evidence the user overrode.
	ReflagAfterIgnore bool
	IgnoredDigest     string
}

// Evidence is why a decision was made.
type Evidence struct {
	MemberID          string
	MemberMatch       string // explicit, email, name+company[+title][+country]
	MemberConfidence  float64
	CompanyID         string
	CompanyName       string
	CompanyMatch      string // explicit, domain, name, family
	CompanyConfidence float64
	Ended             *Position
	Current           *Position // elsewhere: the suggested new company
	Contradicts       map[string]string
	ProfileSource     string
	ProfileObservedAt time.Time
}

// Result is a decision about one contact.
type Result struct {
	Value      int
	Reason     string
	Confidence float64
	Evidence   Evidence
	// Underlying is, for an Ignore, the digest of what the evidence says.
	Underlying string
}

// Digest identifies the content of a result that matters to a seller: the
// value, the rule and the evidence behind it. Equal digests, equal decisions.
func (r Result) Digest() string {
	e := r.Evidence
	pos := func(p *Position) string {
		if p == nil {
			return "-"
		}
		return fmt.Sprintf("%s|%s|%s|%v|%v", p.CompanyID, p.CompanyName, p.Title, p.Start, p.End)
	}
	h := sha256.Sum256(fmt.Appendf(nil, "%d|%s|%s|%s|%s|%s|%.3f|%s",
		r.Value, r.Reason, e.MemberID, e.CompanyID+"/"+e.CompanyName, pos(e.Ended), pos(e.Current), r.Confidence, r.Underlying))
	return hex.EncodeToString(h[:12])
}

// Evaluate decides the flag for one contact.
func Evaluate(in Input) Result {
	r := evaluate(in)
	if in.Contact.Flag != Ignore {
		return r
	}
	// Ignore is the user's word for the evidence they saw. Only a different
	// job change, when the organization allows it, may flag again.
	if in.ReflagAfterIgnore && r.Value == NotAtCompany && in.IgnoredDigest != "" && r.Digest() != in.IgnoredDigest {
		return r
	}
	return Result{Value: Ignore, Reason: ReasonUserOverride, Evidence: r.Evidence, Underlying: r.Digest()}
}

func evaluate(in Input) Result {
	c := in.Contact
	switch {
	case !c.Active:
		return Result{Value: NoFeedback, Reason: ReasonContactGone}
	case !in.InScope:
		return Result{Value: NoFeedback, Reason: ReasonOutOfScope}
	case in.Account == nil:
		return Result{Value: NoFeedback, Reason: ReasonNoAccount}
	}
	employer := newEmployer(*in.Account, in.Companies)
	m, how, mconf, ambiguous := matchMember(c, employer, in.Members)
	if ambiguous {
		return Result{Value: NoFeedback, Reason: ReasonAmbiguous}
	}
	if m == nil {
		return Result{Value: NoFeedback, Reason: ReasonUnmatched}
	}
	ev := Evidence{
		MemberID: m.ID, MemberMatch: how, MemberConfidence: mconf,
		ProfileSource: m.Source, ProfileObservedAt: m.ObservedAt,
		CompanyName: in.Account.Name,
	}
	result := func(value int, reason string) Result {
		return Result{Value: value, Reason: reason, Confidence: round3(ev.MemberConfidence * ev.CompanyConfidence), Evidence: ev}
	}
	if in.MaxProfileAge > 0 && !in.Now.IsZero() && in.Now.Sub(m.ObservedAt) > in.MaxProfileAge {
		return result(NoFeedback, ReasonStale)
	}

	var atCompany, elsewhere []Position
	for _, p := range m.Positions {
		if how, conf, id := employer.match(p); how != "" {
			atCompany = append(atCompany, p)
			if conf > ev.CompanyConfidence {
				ev.CompanyMatch, ev.CompanyConfidence, ev.CompanyID = how, conf, id
			}
		} else {
			elsewhere = append(elsewhere, p)
		}
	}
	// A company page is one company whatever a position calls it: after a
	// rename a profile may end "Contoso" and start "Nimbus" on the same page.
	pages := map[string]bool{}
	for _, p := range atCompany {
		pages[p.CompanyID] = p.CompanyID != ""
	}
	elsewhere = slices.DeleteFunc(elsewhere, func(p Position) bool {
		if pages[p.CompanyID] {
			atCompany = append(atCompany, p)
		}
		return pages[p.CompanyID]
	})
	if len(atCompany) == 0 {
		return result(NoFeedback, ReasonNoPosition)
	}
	for _, p := range atCompany {
		if p.Current {
			return result(NoFeedback, ReasonStillThere)
		}
	}
	ended := latest(atCompany, func(p Position) *YearMonth { return cmpOr(p.End, p.Start) })
	var current *Position
	if cur := filter(elsewhere, func(p Position) bool { return p.Current }); len(cur) > 0 {
		current = latest(cur, func(p Position) *YearMonth { return p.Start })
	}
	ev.Ended, ev.Current = ended, current
	if ended.End == nil && current == nil {
		return result(NoFeedback, ReasonTooLittle)
	}
	ev.Contradicts = map[string]string{"parentcustomerid": in.Account.Name}
	if current != nil {
		ev.Contradicts["suggested_company"] = current.CompanyName
	}
	r := result(NotAtCompany, ReasonLeft)
	if r.Confidence < in.Threshold {
		r.Value, r.Reason = NoFeedback, ReasonBelowThresh
	}
	return r
}

// employer is the account's company and its family: parent, subsidiaries,
// and the companies it absorbed or was absorbed by.
type employer struct {
	nameKey string
	// ids of the companies that are the account's, with how each matched.
	ids map[string]companyMatch
}

type companyMatch struct {
	how  string
	conf float64
}

func newEmployer(a Account, companies map[string]Company) employer {
	e := employer{nameKey: CompanyKey(a.Name), ids: map[string]companyMatch{}}
	domain := Domain(a.Website)
	for id, co := range companies {
		switch {
		case a.CompanyID != "" && id == a.CompanyID:
			e.ids[id] = companyMatch{"explicit", 1}
		case domain != "" && slices.ContainsFunc(co.Domains, func(d string) bool { return strings.TrimPrefix(d, "www.") == domain }):
			e.ids[id] = companyMatch{"domain", 0.98}
		case e.nameKey != "" && CompanyKey(co.Name) == e.nameKey:
			e.ids[id] = companyMatch{"name", 0.9}
		}
	}
	if a.CompanyID != "" {
		e.ids[a.CompanyID] = companyMatch{"explicit", 1}
	}
	// Family: the parents up the chain and the subsidiaries down it (a group
	// and its subsidiaries' subsidiaries), and one step of acquisition either
	// way: the successor, or the company absorbed. Not sideways: a sister
	// company under the same parent is another employer.
	direct := maps.Clone(e.ids)
	family := func(id string, m companyMatch) {
		if _, ok := e.ids[id]; !ok && id != "" {
			e.ids[id] = companyMatch{"family", min(m.conf, 0.9)}
		}
	}
	for id, m := range direct {
		family(companies[id].Successor, m)
		for up, n := companies[id].Parent, 0; up != "" && n < maxFamilyDepth; up, n = companies[up].Parent, n+1 {
			family(up, m)
		}
		down := map[string]bool{id: true}
		for n := 0; n < maxFamilyDepth; n++ {
			for otherID, co := range companies {
				if down[co.Parent] || n == 0 && co.Successor == id {
					family(otherID, m)
					down[otherID] = true
				}
			}
		}
	}
	return e
}

// maxFamilyDepth bounds the walk up and down a company tree (and cycles).
const maxFamilyDepth = 4

// match tells whether position p is at the employer, how, how sure, and
// which company id it matched.
func (e employer) match(p Position) (string, float64, string) {
	if m, ok := e.ids[p.CompanyID]; ok && p.CompanyID != "" {
		return m.how, m.conf, p.CompanyID
	}
	if key := CompanyKey(p.CompanyName); key != "" && key == e.nameKey {
		return "name", 0.9, p.CompanyID
	}
	return "", 0, ""
}

// atEmployer reports whether any position of m is at the employer.
func (e employer) hasPosition(m Member, title string) (at, sameTitle bool) {
	tk := fold(title)
	for _, p := range m.Positions {
		if how, _, _ := e.match(p); how != "" {
			at = true
			if tk != "" && fold(p.Title) == tk {
				sameTitle = true
			}
		}
	}
	return at, sameTitle
}

// Member match confidences.
const (
	confExplicit = 1.0
	confEmail    = 0.95
	confName     = 0.75 // same name and a position at the account's company
	confTitle    = 0.10 // ... and the same title there
	confCountry  = 0.04 // ... and the same country (never enough without the title)
)

// matchMember picks the member the contact describes: an explicit id or
// profile URL, else an email both have, else the same name with a position
// at the account's company (more sure with the same title and country).
// Two different members equally likely is ambiguous: no match; so is a
// best match by name when another member of that name was at the company
// too, since a title or a country cannot tell namesakes apart.
func matchMember(c Contact, e employer, members []Member) (best *Member, how string, conf float64, ambiguous bool) {
	nameKey := NameKey(c.FirstName, c.LastName)
	urlKey := ProfileURLKey(c.ProfileURL)
	named := map[string]bool{} // members matched by name at the company
	for i := range members {
		m := &members[i]
		var mhow string
		var mconf float64
		switch {
		case c.MemberID != "" && c.MemberID == m.ID, urlKey != "" && urlKey == ProfileURLKey(m.ProfileURL):
			mhow, mconf = "explicit", confExplicit
		case intersects(c.EmailHashes, m.EmailHashes):
			mhow, mconf = "email", confEmail
		case nameKey != "" && strings.Contains(nameKey, " ") && nameKey == NameKey(m.FirstName, m.LastName):
			if slug, other := profileSlug(urlKey), profileSlug(ProfileURLKey(m.ProfileURL)); slug != "" && other != "" && slug != other {
				continue // the contact names another profile: a namesake
			}
			at, sameTitle := e.hasPosition(*m, c.Title)
			if !at {
				continue // a name alone is never enough
			}
			named[m.ID] = true
			mhow, mconf = "name+company", confName
			if sameTitle {
				mhow, mconf = mhow+"+title", mconf+confTitle
			}
			if c.Country != "" && strings.EqualFold(c.Country, m.Country) {
				mhow, mconf = mhow+"+country", mconf+confCountry
			}
		default:
			continue
		}
		switch {
		case best == nil || mconf > conf:
			best, how, conf, ambiguous = m, mhow, round3(mconf), false
		case mconf == conf && m.ID != best.ID:
			ambiguous = true
		}
	}
	if ambiguous || strings.HasPrefix(how, "name+company") && len(named) > 1 {
		return nil, "", 0, true
	}
	return best, how, conf, false
}

// ProfileURLKey is the comparable form of a profile URL:
// "https://www.linkedin.com/in/Avery-Quinn/?x=1" → "linkedin.com/in/avery-quinn".
func ProfileURLKey(u string) string {
	u = strings.ToLower(strings.TrimSpace(u))
	u = strings.TrimPrefix(strings.TrimPrefix(u, "https://"), "http://")
	u = strings.TrimPrefix(u, "www.")
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	return strings.TrimRight(u, "/")
}

// profileSlug is the "/in/name" of a profile URL key, whatever the host
// ("uk.linkedin.com/in/x" names the same profile as "linkedin.com/in/x"),
// or "" when the key has none (an empty or junk value).
func profileSlug(key string) string {
	_, rest, ok := strings.Cut(key, "/in/")
	slug, _, _ := strings.Cut(rest, "/")
	if !ok || slug == "" {
		return ""
	}
	return "/in/" + slug
}

func intersects(a, b []string) bool {
	for _, x := range a {
		if slices.Contains(b, x) {
			return true
		}
	}
	return false
}

func cmpOr(a, b *YearMonth) *YearMonth {
	if a != nil {
		return a
	}
	return b
}

func filter(ps []Position, keep func(Position) bool) []Position {
	var out []Position
	for _, p := range ps {
		if keep(p) {
			out = append(out, p)
		}
	}
	return out
}

// latest returns the position whose date (by) is latest; undated sort first.
func latest(ps []Position, by func(Position) *YearMonth) *Position {
	best := ps[0]
	for _, p := range ps[1:] {
		b, c := by(best), by(p)
		if b == nil || (c != nil && b.before(*c)) {
			best = p
		}
	}
	return &best
}

func round3(f float64) float64 { return float64(int(f*1000+0.5)) / 1000 }
