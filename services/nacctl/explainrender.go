package nacctl

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// What nacctl prints of the admin API's explain and list answers
// (api/openapi.yaml); fields it does not print are left out.

type month struct{ Year, Month int }

type position struct {
	CompanyName string `json:"companyName"`
	Title       string `json:"title"`
	Start, End  *month
	Current     bool
}

type evidence struct {
	MemberID          string  `json:"memberId"`
	MemberMatch       string  `json:"memberMatch"`
	MemberConfidence  float64 `json:"memberConfidence"`
	CompanyName       string  `json:"companyName"`
	CompanyMatch      string  `json:"companyMatch"`
	CompanyConfidence float64 `json:"companyConfidence"`
	EndedPosition     *position
	CurrentPosition   *position
	ProfileSource     string     `json:"profileSource"`
	ProfileObservedAt *time.Time `json:"profileObservedAt"`
	Features          []struct {
		Name, Level string
		Weight      float64
	}
	MatchWeight float64 `json:"matchWeight"`
	Candidates  []struct {
		MemberID string `json:"memberId"`
		Match    string
		Weight   float64
		Value    int
	}
}

type evaluation struct {
	Value          int
	ValueName      string `json:"valueName"`
	Reason         string
	Confidence     float64
	Threshold      float64
	EvaluatedAt    *time.Time `json:"evaluatedAt"`
	CauseEventID   string     `json:"causeEventId"`
	Candidate      bool
	Reviewer       string
	Evidence       evidence
	EvidenceErased bool `json:"evidenceErased"`
	Scope          struct {
		InScope       bool   `json:"inScope"`
		Via           string `json:"via"`
		UserID        string `json:"userId"`
		OpportunityID string `json:"opportunityId"`
		ConnectionID  string `json:"connectionId"`
		RoleID        string `json:"roleId"`
		Checks        []struct {
			Via          string
			UserID       string `json:"userId"`
			RowID        string `json:"rowId"`
			SyncUser     bool   `json:"syncUser"`
			ConnectionID string `json:"connectionId"`
			RoleID       string `json:"roleId"`
		}
	}
	OpenOpportunities []struct {
		OpportunityID string `json:"opportunityId"`
		OwnerID       string `json:"ownerId"`
		Links         []opportunityLink
	} `json:"openOpportunities"`
	CRMFlag struct {
		Value   int
		Version *time.Time
	} `json:"crmFlag"`
}

type decisionRecord struct {
	DecisionID string `json:"decisionId"`
	Value      int
	Previous   int
	Reason     string
	Confidence float64
	DecidedAt  *time.Time `json:"decidedAt"`
	Reviewer   string
}

type writeRecord struct {
	DecisionID string `json:"decisionId"`
	Value      int
	Outcome    string
	HTTPStatus int `json:"httpStatus"`
	Attempts   int
	Error      string
	RecordedAt *time.Time `json:"recordedAt"`
}

type explanation struct {
	OrganizationID string `json:"organizationId"`
	ContactID      string `json:"contactId"`
	Summary        string
	Evaluation     *evaluation
	LastDecision   *decisionRecord `json:"lastDecision"`
	LastWrite      *writeRecord    `json:"lastWrite"`
	Dynamics       struct {
		Value  *int
		Source string
		At     *time.Time
	}
	History struct {
		Entries []struct {
			Kind     string
			At       time.Time
			Decision *decisionRecord
			Write    *writeRecord
			Override *struct {
				Value, Decided  int
				UserID          string `json:"userId"`
				Action, FoundBy string
			}
			Review *struct {
				Action, Reviewer, Outcome string
			}
		}
		Complete bool
		Scanned  int
		From     *time.Time
	}
}

type listPage struct {
	Items []struct {
		ContactID      string `json:"contactId"`
		Value          int
		Reason         string
		Confidence     float64
		Threshold      float64
		EvaluatedAt    *time.Time `json:"evaluatedAt"`
		AccountID      string     `json:"accountId"`
		Reviewer       string
		OpportunityID  string `json:"opportunityId"`
		OwnerID        string `json:"ownerId"`
		Evidence       *evidence
		EvidenceErased bool `json:"evidenceErased"`
	}
	Next string
}

var flagName = map[int]string{0: "No Feedback", 1: "Not at Company", 2: "Ignore"}

func when(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func (m *month) String() string {
	if m == nil {
		return "?"
	}
	if m.Month == 0 {
		return fmt.Sprintf("%04d", m.Year)
	}
	return fmt.Sprintf("%04d-%02d", m.Year, m.Month)
}

func (p *position) String() string {
	s := p.CompanyName
	if p.Title != "" {
		s = p.Title + " at " + s
	}
	switch {
	case p.End != nil:
		s += ", " + p.Start.String() + " – " + p.End.String()
	case p.Start != nil:
		s += ", since " + p.Start.String()
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// writeExplanation prints an explanation for a person.
func writeExplanation(out io.Writer, x explanation) {
	fmt.Fprintf(out, "contact %s of organization %s\n  %s\n\n", x.ContactID, x.OrganizationID, x.Summary)
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	if e := x.Evaluation; e != nil {
		fmt.Fprintf(tw, "evaluation\t%s (%d), %s, confidence %.3f, threshold %.2f\n", flagName[e.Value], e.Value, e.Reason, e.Confidence, e.Threshold)
		fmt.Fprintf(tw, "\tevaluated %s, caused by %s\n", when(e.EvaluatedAt), e.CauseEventID)
		if e.Candidate {
			fmt.Fprintf(tw, "\ta candidate for review (nacctl review approve|reject %s --reviewer ...)\n", x.ContactID)
		}
		if e.Reviewer != "" {
			fmt.Fprintf(tw, "\treviewed by %s\n", e.Reviewer)
		}
		scope := "out of scope"
		if e.Scope.InScope {
			scope = "in scope through the " + strings.ReplaceAll(e.Scope.Via, "_", " ") + ", sync user " + e.Scope.UserID
			if e.Scope.Via == "opportunity_connection" {
				scope = "in scope through a connection (role " + orDash(e.Scope.RoleID) + ") to opportunity " + e.Scope.OpportunityID +
					", sync user " + e.Scope.UserID
			}
		}
		fmt.Fprintf(tw, "scope\t%s\n", scope)
		for _, c := range e.Scope.Checks {
			fmt.Fprintf(tw, "\t  %s %s\tuser %s\tsync user: %s\n", strings.ReplaceAll(c.Via, "_", " "), c.RowID, orDash(c.UserID), yesNo(c.SyncUser))
		}
		writeEvidence(tw, e.Evidence, e.EvidenceErased)
		for _, o := range e.OpenOpportunities {
			fmt.Fprintf(tw, "at risk\topportunity %s (owner %s, %s)\n", o.OpportunityID, orDash(o.OwnerID), linksText(o.Links))
		}
		fmt.Fprintf(tw, "flag column\t%d in the validator's state (the CRM change of %s)\n", e.CRMFlag.Value, when(e.CRMFlag.Version))
	}
	if v := x.Dynamics.Value; v != nil {
		from := map[string]string{"write": "our last write", "crm": "the newest CRM change the validator holds"}[x.Dynamics.Source]
		fmt.Fprintf(tw, "in Dynamics\t%s (%d), from %s, %s\n", flagName[*v], *v, from, when(x.Dynamics.At))
	} else {
		fmt.Fprintf(tw, "in Dynamics\tunknown\n")
	}
	if d := x.LastDecision; d != nil {
		fmt.Fprintf(tw, "last decision\t%s: %d → %d, %s, %.3f, %s\n", d.DecisionID, d.Previous, d.Value, d.Reason, d.Confidence, when(d.DecidedAt))
	}
	if w := x.LastWrite; w != nil {
		fmt.Fprintf(tw, "last write\t%s of %d (HTTP %d, deliveries %d) for %s, %s %s\n", w.Outcome, w.Value, w.HTTPStatus, w.Attempts, w.DecisionID, when(w.RecordedAt), w.Error)
	}
	_ = tw.Flush()
	h := x.History
	complete := "complete"
	if !h.Complete {
		complete = "the newest only"
	}
	fmt.Fprintf(out, "\nhistory (%s; %d of the organization's audit records read, back to %s)\n", complete, h.Scanned, when(h.From))
	tw = tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	for _, e := range h.Entries {
		at := e.At.UTC().Format(time.RFC3339)
		switch {
		case e.Decision != nil:
			d := e.Decision
			extra := ""
			if d.Reviewer != "" {
				extra = " by " + d.Reviewer
			}
			fmt.Fprintf(tw, "  %s\tdecision\t%d → %d\t%s%s\t%.3f\t%s\n", at, d.Previous, d.Value, d.Reason, extra, d.Confidence, d.DecisionID)
		case e.Write != nil:
			fmt.Fprintf(tw, "  %s\twrite\t%d\t%s\tHTTP %d\t%s\n", at, e.Write.Value, e.Write.Outcome, e.Write.HTTPStatus, e.Write.DecisionID)
		case e.Override != nil:
			o := e.Override
			fmt.Fprintf(tw, "  %s\toverride\t%d over %d\t%s (%s)\tuser %s\t\n", at, o.Value, o.Decided, o.Action, o.FoundBy, orDash(o.UserID))
		case e.Review != nil:
			fmt.Fprintf(tw, "  %s\treview\t%s\t%s\tby %s\t\n", at, e.Review.Action, e.Review.Outcome, e.Review.Reviewer)
		}
	}
	_ = tw.Flush()
}

func writeEvidence(tw io.Writer, e evidence, erased bool) {
	if erased {
		fmt.Fprintf(tw, "evidence\tthe member's part is erased\n")
	}
	if e.MemberID != "" {
		fmt.Fprintf(tw, "evidence\tmember %s (%s match, %.2f)", e.MemberID, e.MemberMatch, e.MemberConfidence)
		if e.MatchWeight != 0 {
			fmt.Fprintf(tw, ", %.2f bits", e.MatchWeight)
		}
		fmt.Fprintln(tw)
	}
	if e.CompanyName != "" {
		fmt.Fprintf(tw, "\tcompany %s (%s, %.2f)\n", e.CompanyName, orDash(e.CompanyMatch), e.CompanyConfidence)
	}
	if e.EndedPosition != nil {
		fmt.Fprintf(tw, "\tended: %s\n", e.EndedPosition)
	}
	if e.CurrentPosition != nil {
		fmt.Fprintf(tw, "\tnow: %s\n", e.CurrentPosition)
	}
	if e.ProfileSource != "" || e.ProfileObservedAt != nil {
		fmt.Fprintf(tw, "\tprofile from %s, observed %s\n", orDash(e.ProfileSource), when(e.ProfileObservedAt))
	}
	for _, f := range e.Features {
		fmt.Fprintf(tw, "\t  feature %s\t%s\t%+.2f bits\n", f.Name, f.Level, f.Weight)
	}
	for _, c := range e.Candidates {
		fmt.Fprintf(tw, "\t  also weighed %s\t%s\t%.2f bits → %s\n", c.MemberID, c.Match, c.Weight, flagName[c.Value])
	}
}

// writeList prints one page of a list as a table.
func writeList(out io.Writer, kind string, page listPage, header bool) {
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	if header {
		switch kind {
		case "at-risk":
			fmt.Fprintln(tw, "OPPORTUNITY\tOWNER\tCONTACT\tREASON\tCONFIDENCE\tNOW AT")
		case "candidates":
			fmt.Fprintln(tw, "CONTACT\tCONFIDENCE\tTHRESHOLD\tACCOUNT\tEVALUATED")
		default:
			fmt.Fprintln(tw, "CONTACT\tREASON\tCONFIDENCE\tACCOUNT\tEVALUATED")
		}
	}
	for _, it := range page.Items {
		switch kind {
		case "at-risk":
			now := "-"
			if e := it.Evidence; e != nil && e.CurrentPosition != nil {
				now = e.CurrentPosition.CompanyName
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.3f\t%s\n", it.OpportunityID, orDash(it.OwnerID), it.ContactID, it.Reason, it.Confidence, now)
		case "candidates":
			fmt.Fprintf(tw, "%s\t%.3f\t%.2f\t%s\t%s\n", it.ContactID, it.Confidence, it.Threshold, orDash(it.AccountID), when(it.EvaluatedAt))
		default:
			reason := it.Reason
			if it.Reviewer != "" {
				reason += " by " + it.Reviewer
			}
			fmt.Fprintf(tw, "%s\t%s\t%.3f\t%s\t%s\n", it.ContactID, reason, it.Confidence, orDash(it.AccountID), when(it.EvaluatedAt))
		}
	}
	_ = tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// opportunityLink is one way an opportunity links a contact.
type opportunityLink struct {
	Via          string
	ConnectionID string `json:"connectionId"`
	RoleID       string `json:"roleId"`
}

// linksText says how an opportunity links the contact: "as parentcontactid,
// through connection k (role r)".
func linksText(links []opportunityLink) string {
	var parts []string
	for _, l := range links {
		if l.Via == "connection" {
			parts = append(parts, "through connection "+l.ConnectionID+" (role "+orDash(l.RoleID)+")")
			continue
		}
		parts = append(parts, "as "+l.Via)
	}
	if len(parts) == 0 {
		return "linked"
	}
	return strings.Join(parts, ", ")
}
