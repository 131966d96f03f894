// Package decide is the validator's judgement, as pure functions: given a
// contact, its account and what profile sources say, is the person still at
// the company, and on what evidence. No I/O; table-tested beside the code.
package decide

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
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
	ReasonBelowThresh  = "below_threshold"
	ReasonUserOverride = "user_override"
	ReasonContactGone  = "contact_inactive"
)

// Contact is what the decision needs of a CRM contact.
type Contact struct {
	ID          string
	FirstName   string
	LastName    string
	EmailHashes []string
	AccountID   string
	// Flag is the column's value as users last set it in Dynamics.
	Flag   int
	Active bool
}

// Account is what the decision needs of a CRM account.
type Account struct {
	ID      string
	Name    string
	Website string
}

// YearMonth is a month-precision date; Month 0 means unknown.
type YearMonth struct {
	Year  int `json:"y"`
	Month int `json:"m,omitempty"`
}

func (a YearMonth) before(b YearMonth) bool {
	return a.Year < b.Year || a.Year == b.Year && a.Month < b.Month
}

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
	EmailHashes []string
	Positions   []Position
}

// Company is a company page.
type Company struct {
	ID      string
	Name    string
	Domains []string
}

// Input is everything one evaluation looks at.
type Input struct {
	Contact Contact
	Account *Account // nil when the contact has no account
	// Members whose email hashes match the contact's.
	Members []Member
	// Companies by id, for the positions that name one.
	Companies map[string]Company
	// Threshold is the least confidence that may flag.
	Threshold float64
}

// Evidence is why a decision was made.
type Evidence struct {
	MemberID          string
	MemberMatch       string
	MemberConfidence  float64
	CompanyID         string
	CompanyName       string
	CompanyMatch      string
	CompanyConfidence float64
	Ended             *Position
	Current           *Position
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
	h := sha256.Sum256(fmt.Appendf(nil, "%d|%s|%s|%s|%s|%s|%.3f",
		r.Value, r.Reason, e.MemberID, e.CompanyID+"/"+e.CompanyName, pos(e.Ended), pos(e.Current), r.Confidence))
	return hex.EncodeToString(h[:12])
}

// Evaluate decides the flag for one contact.
func Evaluate(in Input) Result {
	c := in.Contact
	if c.Flag == Ignore {
		return Result{Value: Ignore, Reason: ReasonUserOverride}
	}
	if !c.Active {
		return Result{Value: NoFeedback, Reason: ReasonContactGone}
	}
	if in.Account == nil {
		return Result{Value: NoFeedback, Reason: ReasonNoAccount}
	}
	switch len(in.Members) {
	case 0:
		return Result{Value: NoFeedback, Reason: ReasonUnmatched}
	case 1:
	default:
		return Result{Value: NoFeedback, Reason: ReasonAmbiguous}
	}
	m := in.Members[0]
	ev := Evidence{
		MemberID: m.ID, MemberMatch: "email", MemberConfidence: 0.95,
		ProfileSource: m.Source, ProfileObservedAt: m.ObservedAt,
		CompanyName: in.Account.Name,
	}

	var atCompany, elsewhere []Position
	for _, p := range m.Positions {
		if how, conf := matchCompany(*in.Account, p, in.Companies); how != "" {
			atCompany = append(atCompany, p)
			if conf > ev.CompanyConfidence {
				ev.CompanyMatch, ev.CompanyConfidence, ev.CompanyID = how, conf, p.CompanyID
			}
		} else {
			elsewhere = append(elsewhere, p)
		}
	}
	result := func(value int, reason string) Result {
		return Result{Value: value, Reason: reason, Confidence: round3(ev.MemberConfidence * ev.CompanyConfidence), Evidence: ev}
	}
	if len(atCompany) == 0 {
		return result(NoFeedback, ReasonNoPosition)
	}
	for _, p := range atCompany {
		if p.Current {
			return result(NoFeedback, ReasonStillThere)
		}
	}
	ended := latest(atCompany, func(p Position) *YearMonth { return cmp.Or(p.End, p.Start) })
	var current *Position
	if cur := filter(elsewhere, func(p Position) bool { return p.Current }); len(cur) > 0 {
		current = latest(cur, func(p Position) *YearMonth { return p.Start })
	}
	ev.Ended, ev.Current = ended, current
	if ended.End == nil && current == nil {
		return result(NoFeedback, ReasonTooLittle)
	}
	ev.Contradicts = map[string]string{"parentcustomerid": in.Account.Name}
	r := result(NotAtCompany, ReasonLeft)
	if r.Confidence < in.Threshold {
		r.Value, r.Reason = NoFeedback, ReasonBelowThresh
	}
	return r
}

// matchCompany tells whether position p is at account a, how and how sure.
func matchCompany(a Account, p Position, companies map[string]Company) (string, float64) {
	domain := Domain(a.Website)
	if co, ok := companies[p.CompanyID]; ok && p.CompanyID != "" {
		if domain != "" && slices.Contains(co.Domains, domain) {
			return "domain", 0.98
		}
		if key := CompanyKey(co.Name); key != "" && key == CompanyKey(a.Name) {
			return "name", 0.9
		}
	}
	if key := CompanyKey(p.CompanyName); key != "" && key == CompanyKey(a.Name) {
		return "name", 0.9
	}
	return "", 0
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
