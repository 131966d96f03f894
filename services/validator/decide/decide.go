// Package decide is the validator's judgement, as pure functions: given a
// contact, its account and what profile sources say, is the person still at
// the company, and on what evidence. No I/O; table-tested beside the code.
package decide

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
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
	// ReasonLinkedInIgnore: LinkedIn's own column on the contact says
	// Ignore (2), a person's word that is respected as our column's is.
	ReasonLinkedInIgnore = "linkedin_ignore"
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
	// CreatedOn is when the contact was created in the CRM (zero: unknown).
	CreatedOn time.Time
	// EmailDomains are the registrable domains of the contact's email
	// addresses ("contoso.com"), for the email domain comparison.
	EmailDomains []string
	// LinkedInStatus is LinkedIn's msdyn_orgchangestatus on the contact
	// when the organization has it beside our column: 1 corroborates a
	// leave, 2 is a person's Ignore; 0 says nothing.
	LinkedInStatus int
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
	// Past: the source said the position is not current (current: false).
	// Without it a position with no end is current: profile APIs mark
	// current positions by the absence of an end date.
	Past bool `json:"p,omitempty"`
}

// IsCurrent reports whether the member holds p now: marked current, or
// without an end date and not marked past.
func (p Position) IsCurrent() bool { return p.Current || p.End == nil && !p.Past }

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
	// IgnoredAt is when the contact's column was set to Ignore, for an
	// Ignore no decision of ours has seen (IgnoredDigest empty).
	IgnoredAt time.Time
	// Names are the counts of the contact's full name the evaluate path
	// learned (nil: unknown, a name is taken as common).
	Names *NameStats
}

// Evidence is why a decision was made.
type Evidence struct {
	MemberID         string
	MemberMatch      string // explicit, email, name+company[+title|+role|+function][+country]...
	MemberConfidence float64
	// Features are the weights a name match added up (and corroboration
	// for any match), MatchWeight their sum in bits.
	Features    []Feature
	MatchWeight float64
	// Candidates are the other members considered at the same strength,
	// with the outcome each leads to.
	Candidates        []Candidate
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

// Candidate is another member a decision weighed.
type Candidate struct {
	MemberID string
	Match    string
	Weight   float64 // bits, for a name match
	Value    int     // the flag it leads to
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
	// An Ignore no decision of ours saw covers every job change the user
	// could have known of: only one dated after the month it was set in.
	if in.ReflagAfterIgnore && r.Value == NotAtCompany && in.IgnoredDigest == "" && changedAfter(r.Evidence, in.IgnoredAt) {
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
	case c.LinkedInStatus == Ignore:
		return Result{Value: NoFeedback, Reason: ReasonLinkedInIgnore}
	}
	employer := newEmployer(*in.Account, in.Companies)
	cands := findCandidates(in, employer)
	if len(cands) == 0 {
		return Result{Value: NoFeedback, Reason: ReasonUnmatched}
	}
	for i := range cands {
		cands[i].judge(in, employer)
	}
	return decideAmong(in, cands)
}

// changedAfter reports whether the job change in ev is dated after the
// month of at: the end of the ended position, else the start of the new one.
func changedAfter(ev Evidence, at time.Time) bool {
	if at.IsZero() {
		return false
	}
	var when *YearMonth
	switch {
	case ev.Ended != nil && ev.Ended.End != nil:
		when = ev.Ended.End
	case ev.Current != nil && ev.Current.Start != nil:
		when = ev.Current.Start
	default:
		return false
	}
	if when.Month == 0 {
		return when.Year > at.Year()
	}
	return (YearMonth{Year: at.Year(), Month: int(at.Month())}).before(*when)
}
