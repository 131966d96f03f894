package ingest

import (
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/evaluations"
)

// The admin API's explain, list and review shapes (api/openapi.yaml), and
// their rendering from the evaluation, decision and audit records.

// EvaluationView is the contact's latest evaluation.
type EvaluationView struct {
	Value      int     `json:"value"`
	ValueName  string  `json:"valueName"`
	Reason     string  `json:"reason"`
	Confidence float64 `json:"confidence"`
	Threshold  float64 `json:"threshold"`
	// MaxProfileAge is how old a profile may be, e.g. "13152h0m0s".
	MaxProfileAge  string       `json:"maxProfileAge"`
	EvaluatedAt    *time.Time   `json:"evaluatedAt,omitempty"`
	CauseEventID   string       `json:"causeEventId,omitempty"`
	Candidate      bool         `json:"candidate"`
	EvidenceDigest string       `json:"evidenceDigest"`
	Reviewer       string       `json:"reviewer,omitempty"`
	Review         *ReviewView  `json:"review,omitempty"`
	Evidence       EvidenceView `json:"evidence"`
	// EvidenceErased: the member's part of the evidence is erased.
	EvidenceErased    bool              `json:"evidenceErased"`
	Scope             ScopeView         `json:"scope"`
	AccountID         string            `json:"accountId,omitempty"`
	OpenOpportunities []OpportunityView `json:"openOpportunities"`
	LastDecisionID    string            `json:"lastDecisionId,omitempty"`
	CRMFlag           FlagView          `json:"crmFlag"`
}

// EvidenceView is what an outcome rests on.
type EvidenceView struct {
	MemberID          string            `json:"memberId,omitempty"`
	MemberMatch       string            `json:"memberMatch,omitempty"`
	MemberConfidence  float64           `json:"memberConfidence"`
	CompanyID         string            `json:"companyId,omitempty"`
	CompanyName       string            `json:"companyName,omitempty"`
	CompanyMatch      string            `json:"companyMatch,omitempty"`
	CompanyConfidence float64           `json:"companyConfidence"`
	EndedPosition     *PositionView     `json:"endedPosition,omitempty"`
	CurrentPosition   *PositionView     `json:"currentPosition,omitempty"`
	Contradicts       map[string]string `json:"contradicts,omitempty"`
	ProfileSource     string            `json:"profileSource,omitempty"`
	ProfileObservedAt *time.Time        `json:"profileObservedAt,omitempty"`
	Features          []FeatureView     `json:"features"`
	MatchWeight       float64           `json:"matchWeight"`
	Candidates        []CandidateView   `json:"candidates"`
}

// PositionView is a position on the member's profile.
type PositionView struct {
	CompanyID   string         `json:"companyId,omitempty"`
	CompanyName string         `json:"companyName,omitempty"`
	Title       string         `json:"title,omitempty"`
	Start       *YearMonthView `json:"start,omitempty"`
	End         *YearMonthView `json:"end,omitempty"`
	Current     bool           `json:"current"`
}

// YearMonthView is a month; month 0: only the year is known.
type YearMonthView struct {
	Year  int `json:"year"`
	Month int `json:"month"`
}

// FeatureView is one feature's weight in a match, in bits.
type FeatureView struct {
	Name   string  `json:"name"`
	Level  string  `json:"level"`
	Weight float64 `json:"weight"`
}

// CandidateView is another member weighed, and the value it leads to.
type CandidateView struct {
	MemberID string  `json:"memberId"`
	Match    string  `json:"match"`
	Weight   float64 `json:"weight"`
	Value    int     `json:"value"`
}

// ScopeView is how the contact is in scope, or why not.
type ScopeView struct {
	InScope       bool   `json:"inScope"`
	Via           string `json:"via,omitempty"`
	UserID        string `json:"userId,omitempty"`
	OpportunityID string `json:"opportunityId,omitempty"`
	// With via opportunity_connection: the connection and the contact's role in it.
	ConnectionID string           `json:"connectionId,omitempty"`
	RoleID       string           `json:"roleId,omitempty"`
	Checks       []ScopeCheckView `json:"checks"`
}

// ScopeCheckView is one scope rule tried.
type ScopeCheckView struct {
	Via      string `json:"via"`
	UserID   string `json:"userId,omitempty"`
	RowID    string `json:"rowId,omitempty"`
	SyncUser bool   `json:"syncUser"`
	// With via opportunity_connection: the connection and the contact's role in it.
	ConnectionID string `json:"connectionId,omitempty"`
	RoleID       string `json:"roleId,omitempty"`
}

// OpportunityView is an open opportunity of a flagged contact.
type OpportunityView struct {
	OpportunityID string `json:"opportunityId"`
	OwnerID       string `json:"ownerId,omitempty"`
	AccountID     string `json:"accountId,omitempty"`
	// Links are how the opportunity links the contact.
	Links []OpportunityLinkView `json:"links"`
}

// OpportunityLinkView is one way an opportunity links a contact: via
// parentcontactid, customerid or connection (a stakeholder, with the
// connection and the contact's role in it).
type OpportunityLinkView struct {
	Via          string `json:"via"`
	ConnectionID string `json:"connectionId,omitempty"`
	RoleID       string `json:"roleId,omitempty"`
}

func linkViews(o *eventsv1.OpportunityRef) []OpportunityLinkView {
	out := []OpportunityLinkView{}
	for _, l := range o.GetLinks() {
		out = append(out, OpportunityLinkView{Via: l.GetVia(), ConnectionID: l.GetConnectionId(), RoleID: l.GetRoleId()})
	}
	return out
}

// FlagView is the flag column as the validator's state holds it.
type FlagView struct {
	Value   int        `json:"value"`
	Version *time.Time `json:"version,omitempty"`
}

// ReviewView is a review and, in the audit trail, its outcome.
type ReviewView struct {
	EventID        string     `json:"eventId"`
	Action         string     `json:"action"`
	Reviewer       string     `json:"reviewer"`
	EvidenceDigest string     `json:"evidenceDigest"`
	RequestedAt    *time.Time `json:"requestedAt,omitempty"`
	Outcome        string     `json:"outcome,omitempty"`
	RecordedAt     *time.Time `json:"recordedAt,omitempty"`
}

// DecisionView is a decision as published and audited.
type DecisionView struct {
	DecisionID   string     `json:"decisionId"`
	Value        int        `json:"value"`
	Previous     int        `json:"previous"`
	Reason       string     `json:"reason"`
	Confidence   float64    `json:"confidence"`
	DecidedAt    *time.Time `json:"decidedAt,omitempty"`
	CauseEventID string     `json:"causeEventId,omitempty"`
	Reviewer     string     `json:"reviewer,omitempty"`
}

// WriteView is what became of a decision at Dataverse.
type WriteView struct {
	DecisionID string     `json:"decisionId"`
	Value      int        `json:"value"`
	Outcome    string     `json:"outcome"`
	HTTPStatus int        `json:"httpStatus"`
	Attempts   int        `json:"attempts"`
	Error      string     `json:"error,omitempty"`
	RecordedAt *time.Time `json:"recordedAt,omitempty"`
}

// OverrideView is a person's value over our decision.
type OverrideView struct {
	Value      int        `json:"value"`
	Decided    int        `json:"decided"`
	DecisionID string     `json:"decisionId,omitempty"`
	UserID     string     `json:"userId,omitempty"`
	ChangedAt  *time.Time `json:"changedAt,omitempty"`
	Action     string     `json:"action"`
	FoundBy    string     `json:"foundBy"`
}

// HistoryEntryView is one audit record of the contact.
type HistoryEntryView struct {
	Kind     string        `json:"kind"`
	At       time.Time     `json:"at"`
	Sequence uint64        `json:"sequence"`
	Decision *DecisionView `json:"decision,omitempty"`
	Write    *WriteView    `json:"write,omitempty"`
	Override *OverrideView `json:"override,omitempty"`
	Review   *ReviewView   `json:"review,omitempty"`
}

// HistoryView is the contact's newest audit records, oldest first.
type HistoryView struct {
	Entries []HistoryEntryView `json:"entries"`
	// Complete: the trail holds nothing older of the contact's.
	Complete bool       `json:"complete"`
	Scanned  int        `json:"scanned"`
	From     *time.Time `json:"from,omitempty"`
}

// DynamicsValue is the flag's value in Dynamics as far as notatcompany
// knows it, and where that knowledge comes from.
type DynamicsValue struct {
	Value *int `json:"value,omitempty"`
	// Source: "write" (our last write, newer than the state's value),
	// "crm" (the newest CRM change the state holds) or "unknown".
	Source string     `json:"source"`
	At     *time.Time `json:"at,omitempty"`
}

// Explanation answers GET /admin/orgs/{org}/contacts/{id}.
type Explanation struct {
	OrganizationID string          `json:"organizationId"`
	ContactID      string          `json:"contactId"`
	Summary        string          `json:"summary"`
	Evaluation     *EvaluationView `json:"evaluation,omitempty"`
	LastDecision   *DecisionView   `json:"lastDecision,omitempty"`
	LastWrite      *WriteView      `json:"lastWrite,omitempty"`
	Dynamics       DynamicsValue   `json:"dynamics"`
	History        HistoryView     `json:"history"`
}

var flagNames = map[int]string{0: "no_feedback", 1: "not_at_company", 2: "ignore"}

func timeOf(ts *timestamppb.Timestamp) *time.Time {
	if ts == nil {
		return nil
	}
	t := ts.AsTime().UTC()
	return &t
}

func evaluationView(rec *eventsv1.Evaluation, ev *eventsv1.Evidence, erased bool) *EvaluationView {
	r := rec.GetResult()
	v := &EvaluationView{
		Value: int(r.GetValue()), ValueName: flagNames[int(r.GetValue())], Reason: r.GetReason(), Confidence: r.GetConfidence(),
		Threshold: rec.GetThreshold(), MaxProfileAge: rec.GetMaxProfileAge().AsDuration().String(),
		EvaluatedAt: timeOf(r.GetDecidedAt()), CauseEventID: r.GetCauseEventId(), Candidate: rec.GetCandidate(),
		EvidenceDigest: rec.GetEvidenceDigest(), Reviewer: r.GetReviewer(), Review: reviewView(rec.GetReview()),
		Evidence: evidenceView(ev), EvidenceErased: erased, Scope: scopeView(rec.GetScope()), AccountID: rec.GetAccountId(),
		OpenOpportunities: []OpportunityView{}, LastDecisionID: rec.GetLastDecisionId(),
		CRMFlag: FlagView{Value: int(rec.GetCrmFlag()), Version: timeOf(rec.GetCrmFlagVersion())},
	}
	for _, o := range rec.GetOpenOpportunities() {
		v.OpenOpportunities = append(v.OpenOpportunities, OpportunityView{OpportunityID: o.GetOpportunityId(), OwnerID: o.GetOwnerId(),
			AccountID: o.GetAccountId(), Links: linkViews(o)})
	}
	return v
}

func evidenceView(e *eventsv1.Evidence) EvidenceView {
	v := EvidenceView{
		MemberID: e.GetMemberId(), MemberMatch: e.GetMemberMatch(), MemberConfidence: e.GetMemberConfidence(),
		CompanyID: e.GetCompanyId(), CompanyName: e.GetCompanyName(), CompanyMatch: e.GetCompanyMatch(),
		CompanyConfidence: e.GetCompanyConfidence(), EndedPosition: positionView(e.GetEndedPosition()),
		CurrentPosition: positionView(e.GetCurrentPosition()), Contradicts: e.GetContradicts(),
		ProfileSource: e.GetProfileSource(), ProfileObservedAt: timeOf(e.GetProfileObservedAt()),
		Features: []FeatureView{}, MatchWeight: e.GetMatchWeight(), Candidates: []CandidateView{},
	}
	for _, f := range e.GetFeatures() {
		v.Features = append(v.Features, FeatureView{Name: f.GetName(), Level: f.GetLevel(), Weight: f.GetWeight()})
	}
	for _, c := range e.GetCandidates() {
		v.Candidates = append(v.Candidates, CandidateView{MemberID: c.GetMemberId(), Match: c.GetMatch(), Weight: c.GetWeight(), Value: int(c.GetValue())})
	}
	return v
}

func positionView(p *eventsv1.Position) *PositionView {
	if p == nil {
		return nil
	}
	ym := func(y *eventsv1.YearMonth) *YearMonthView {
		if y == nil {
			return nil
		}
		return &YearMonthView{Year: int(y.GetYear()), Month: int(y.GetMonth())}
	}
	return &PositionView{CompanyID: p.GetCompanyId(), CompanyName: p.GetCompanyName(), Title: p.GetTitle(),
		Start: ym(p.GetStart()), End: ym(p.GetEnd()), Current: p.GetCurrent()}
}

func scopeView(s *eventsv1.ScopePath) ScopeView {
	v := ScopeView{InScope: s.GetInScope(), Via: s.GetVia(), UserID: s.GetUserId(), OpportunityID: s.GetOpportunityId(),
		ConnectionID: s.GetConnectionId(), RoleID: s.GetRoleId(), Checks: []ScopeCheckView{}}
	for _, c := range s.GetChecks() {
		v.Checks = append(v.Checks, ScopeCheckView{Via: c.GetVia(), UserID: c.GetUserId(), RowID: c.GetRowId(), SyncUser: c.GetSyncUser(),
			ConnectionID: c.GetConnectionId(), RoleID: c.GetRoleId()})
	}
	return v
}

func reviewView(r *eventsv1.ReviewAction) *ReviewView {
	if r == nil {
		return nil
	}
	return &ReviewView{EventID: r.GetEventId(), Action: r.GetAction(), Reviewer: r.GetReviewer(), EvidenceDigest: r.GetEvidenceDigest(),
		RequestedAt: timeOf(r.GetRequestedAt()), Outcome: r.GetOutcome(), RecordedAt: timeOf(r.GetRecordedAt())}
}

func decisionView(d *eventsv1.Decision) *DecisionView {
	if d == nil {
		return nil
	}
	return &DecisionView{DecisionID: d.GetDecisionId(), Value: int(d.GetValue()), Previous: int(d.GetPrevious()), Reason: d.GetReason(),
		Confidence: d.GetConfidence(), DecidedAt: timeOf(d.GetDecidedAt()), CauseEventID: d.GetCauseEventId(), Reviewer: d.GetReviewer()}
}

func writeView(w *eventsv1.WriteOutcome) *WriteView {
	if w == nil {
		return nil
	}
	return &WriteView{DecisionID: w.GetDecisionId(), Value: int(w.GetValue()), Outcome: w.GetOutcome(), HTTPStatus: int(w.GetHttpStatus()),
		Attempts: int(w.GetAttempts()), Error: w.GetError(), RecordedAt: timeOf(w.GetRecordedAt())}
}

func overrideView(o *eventsv1.FlagOverride) *OverrideView {
	if o == nil {
		return nil
	}
	return &OverrideView{Value: int(o.GetValue()), Decided: int(o.GetDecided()), DecisionID: o.GetDecisionId(), UserID: o.GetUserId(),
		ChangedAt: timeOf(o.GetChangedAt()), Action: o.GetAction(), FoundBy: o.GetFoundBy()}
}

func historyView(h evaluations.History) HistoryView {
	v := HistoryView{Entries: []HistoryEntryView{}, Complete: h.Complete, Scanned: h.Scanned}
	if !h.From.IsZero() {
		from := h.From.UTC()
		v.From = &from
	}
	for _, e := range h.Entries {
		v.Entries = append(v.Entries, HistoryEntryView{Kind: e.Kind, At: e.At.UTC(), Sequence: e.Sequence,
			Decision: decisionView(e.Decision), Write: writeView(e.Write), Override: overrideView(e.Override), Review: reviewView(e.Review)})
	}
	return v
}

// lastWrite is the newest write record of the history.
func lastWrite(h evaluations.History) *eventsv1.WriteOutcome {
	for i := len(h.Entries) - 1; i >= 0; i-- {
		if w := h.Entries[i].Write; w != nil {
			return w
		}
	}
	return nil
}

// dynamicsValue is what Dynamics holds as far as we know: our last write
// when it is newer than the CRM change the state last took the column
// from (the state never sees our own writes: ingest drops their webhooks
// as our echo), else the state's value.
func dynamicsValue(rec *eventsv1.Evaluation, w *eventsv1.WriteOutcome) DynamicsValue {
	var crmAt time.Time
	if rec != nil && rec.GetCrmFlagVersion() != nil {
		crmAt = rec.GetCrmFlagVersion().AsTime()
	}
	if w != nil && w.GetOutcome() == "written" && (rec == nil || w.GetRecordedAt().AsTime().After(crmAt)) {
		v := int(w.GetValue())
		return DynamicsValue{Value: &v, Source: "write", At: timeOf(w.GetRecordedAt())}
	}
	if rec == nil {
		return DynamicsValue{Source: "unknown"}
	}
	v := int(rec.GetCrmFlag())
	return DynamicsValue{Value: &v, Source: "crm", At: timeOf(rec.GetCrmFlagVersion())}
}
