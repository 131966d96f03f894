package console

import (
	"context"
	"errors"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/orgs"
	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
)

// What the console reads, as interfaces: the status page's readers are
// the admin API's (orgs, syncjobs); the lists, the review queue, the
// explain page and the dead letters are read through the admin API's
// readers for them where ingest has them. A reader left nil makes its
// page say it is not available, never show made-up rows.

// OrgReader reads the organizations' administration (orgs.Reader).
type OrgReader interface {
	Organizations(ctx context.Context) ([]string, error)
	Settings(ctx context.Context, org string) (orgs.Settings, bool, error)
	SyncUsers(ctx context.Context, org string) ([]string, error)
}

// SyncStatusReader reads an organization's last sync job (syncjobs.Reader).
type SyncStatusReader interface {
	Status(ctx context.Context, org string) (syncjobs.Status, bool, error)
}

// ContactRow is a contact in a list: flagged, a candidate for review, or
// the contact of an opportunity at risk.
type ContactRow struct {
	Contact     string
	Account     string
	Opportunity string // in the list of opportunities at risk
	Owner       string
	Reason      string
	Confidence  float64
	// SuggestedCompany is where the contact works now, "" when unknown.
	SuggestedCompany string
	Threshold        float64
	EvaluatedAt      time.Time
}

// ContactPage is one page of a list; Next is the cursor of the following
// page, "" after the last.
type ContactPage struct {
	Rows []ContactRow
	Next string
}

// Lists are which list a page shows.
const (
	ListFlagged   = "flagged"
	ListAtRisk    = "at-risk"
	ListCandidate = "review"
)

// ListReader pages through an organization's flagged contacts, its
// opportunities at risk, and its candidates below the threshold.
type ListReader interface {
	List(ctx context.Context, org, list, cursor string, limit int) (ContactPage, error)
}

// Reviewer approves or rejects a candidate below the threshold, as the
// admin API's review does; who is the reviewer for the audit trail.
type Reviewer interface {
	Review(ctx context.Context, org, contact string, approve bool, who Actor) error
}

// Explainer tells why a contact is where it is; nil, nil when the contact
// has no evaluation.
type Explainer interface {
	Explain(ctx context.Context, org, contact string) (*Explanation, error)
}

// Explanation is why a contact is where it is: its latest evaluation
// (when one is kept), what Dynamics holds, and its history.
type Explanation struct {
	Contact, Account string
	// Summary is the admin API's sentence of the outcome.
	Summary string
	// Evaluated: an evaluation is kept; without one only the history and
	// the last decision speak.
	Evaluated   bool
	Value       int
	Reason      string
	Confidence  float64
	Threshold   float64
	EvaluatedAt time.Time
	// Candidate: below the threshold and not yet reviewed; Review is the
	// review applied ("approve by Sam: applied"), Reviewer who approved a
	// flag.
	Candidate bool
	Review    string
	Reviewer  string
	// Scope: in scope through Via ("contact_owner", "account_owner",
	// "opportunity_owner") and the sync user; Checks are the rules tried.
	InScope   bool
	ScopeVia  string
	ScopeUser string
	Checks    []ScopeCheck
	// The match, when there was one.
	MemberMatch       string
	MemberConfidence  float64
	CompanyName       string
	CompanyMatch      string
	CompanyConfidence float64
	Ended, Current    *Position
	ProfileSource     string
	ProfileObservedAt time.Time
	// Erased: the member was erased; what the evidence said of them is gone.
	Erased bool
	// Features are the weights of a name match, MatchWeight their sum.
	Features    []Feature
	MatchWeight float64
	// CRMFlag is the flag column as the validator's state holds it.
	CRMFlag int
	// Dynamics is the flag in Dynamics as far as notatcompany knows it, and
	// where that comes from ("write": our last write, "crm": the newest CRM
	// change, "unknown").
	Dynamics       *int
	DynamicsSource string
	DynamicsAt     time.Time
	Opportunities  []string
	History        []HistoryEntry
	// HistoryComplete: nothing older of the contact's is in the audit trail.
	HistoryComplete bool
}

// ScopeCheck is one scope rule tried on one row.
type ScopeCheck struct {
	Via, User, Row string
	SyncUser       bool
}

// Position is a job on the member's profile.
type Position struct {
	Company, Title string
	Start, End     string // "2026-06", "" unknown
}

// Feature is one feature of a name match and the weight it added.
type Feature struct {
	Name, Level string
	Weight      float64
}

// HistoryEntry is one audit record of the contact: a decision, a write,
// a person's override or a review, in words.
type HistoryEntry struct {
	At     time.Time
	Kind   string
	Detail string
}

// Refused is an action the admin API refused for a reason the admin
// should read (a contact that is not a candidate, say): its status and
// detail.
type Refused struct {
	Status int
	Detail string
}

func (r *Refused) Error() string { return r.Detail }

// DeadLetter is a message a consumer set aside.
type DeadLetter struct {
	Sequence      uint64
	Consumer      string
	Kind          string
	Reason        string
	OriginSubject string
	Deliveries    uint64
	At            time.Time
}

// DeadLetterPage is one page of dead letters; Next is the sequence the
// next page starts after, 0 after the last.
type DeadLetterPage struct {
	Letters []DeadLetter
	Next    uint64
}

// DeadLetters lists an organization's dead letters ("" for every one)
// and redrives one, as the admin API does.
type DeadLetters interface {
	List(ctx context.Context, org string, after uint64, limit int) (DeadLetterPage, error)
	Redrive(ctx context.Context, seq uint64, who Actor) (outcome string, err error)
}

// Actor is who acts in the console, for the audit trail: the name given
// at login (not verified: the admin token is shared) and the fingerprint
// of the token that logged in, as the admin API records them.
type Actor struct {
	Name             string
	TokenFingerprint string
}

// Budget is an organization's Dataverse request budget: Used of Limit
// requests in the current Window.
type Budget struct {
	Used, Limit int
	Window      time.Duration
}

// BudgetReader reads an organization's request budget.
type BudgetReader interface {
	Budget(ctx context.Context, org string) (Budget, bool, error)
}

// ErrNotFound is something a reader does not hold (a dead letter redriven
// since, a contact never evaluated).
var ErrNotFound = errors.New("not found")
