package ingest

import (
	"fmt"
	"strings"
)

// summary puts an evaluation in one sentence for a person: the value, the
// rule, and the numbers or rows behind it.
func summary(v *EvaluationView) string {
	if v == nil {
		return "Not evaluated since evaluations are kept: the contact's next change (or a back-fill that changes it) evaluates it."
	}
	e := v.Evidence
	conf := fmt.Sprintf("confidence %.2f", v.Confidence)
	var s string
	switch v.Reason {
	case "left_company":
		s = "Not at Company: " + left(e) + " (" + matched(e) + ", " + conf + fmt.Sprintf(", threshold %.2f).", v.Threshold)
	case "reviewed":
		s = fmt.Sprintf("Not at Company: approved by %s below the threshold: %s (%s, %s < %.2f).", v.Reviewer, left(e), matched(e), conf, v.Threshold)
	case "below_threshold":
		s = fmt.Sprintf("No Feedback: %s, but %s is below the threshold %.2f (member %.2f × company %.2f); a candidate for review.",
			left(e), conf, v.Threshold, e.MemberConfidence, e.CompanyConfidence)
	case "review_rejected":
		by := ""
		if v.Review != nil {
			by = " by " + v.Review.Reviewer
		}
		s = fmt.Sprintf("No Feedback: rejected%s on this evidence (%s < %.2f); it stands until the evidence changes.", by, conf, v.Threshold)
	case "still_at_company":
		s = "No Feedback: still at " + orDefault(e.CompanyName, "the account's company") + " (" + matched(e) + ")."
	case "unmatched":
		s = "No Feedback: no member matches the contact (no explicit member id or profile URL, no shared email, no namesake with a position at the account's company)."
	case "ambiguous_match":
		names := []string{e.MemberID}
		for _, c := range e.Candidates {
			names = append(names, fmt.Sprintf("%s (leads to %s)", c.MemberID, flagNames[c.Value]))
		}
		s = "No Feedback: ambiguous: " + strings.Join(names, ", ") + " match about equally well and disagree."
	case "out_of_scope":
		s = "No Feedback: out of scope: " + outOfScope(v.Scope) + "."
	case "stale_profile":
		observed := "at an unknown time"
		if e.ProfileObservedAt != nil {
			observed = "on " + e.ProfileObservedAt.Format("2006-01-02")
		}
		s = fmt.Sprintf("No Feedback: the profile was observed %s, longer ago than the %s a profile may be old.", observed, v.MaxProfileAge)
	case "no_account":
		s = "No Feedback: the contact has no account to be at."
	case "no_position_at_company":
		s = "No Feedback: the member's profile has no position at the account's company."
	case "insufficient_evidence":
		s = "No Feedback: the position at the company has no end date and there is no current position elsewhere."
	case "contact_inactive":
		s = "No Feedback: the contact is inactive or deleted."
	case "user_override":
		s = "Ignore: a person set Ignore; it is not overwritten for the same evidence."
	case "linkedin_ignore":
		s = "No Feedback: LinkedIn's status on the contact says Ignore."
	default:
		s = fmt.Sprintf("%s: %s (%s).", flagNames[v.Value], v.Reason, conf)
	}
	if v.EvidenceErased {
		s += " The member's evidence is erased."
	}
	return s
}

func left(e EvidenceView) string {
	from := e.CompanyName
	if p := e.EndedPosition; p != nil && p.CompanyName != "" {
		from = p.CompanyName
	}
	s := "left " + orDefault(from, "the company")
	if p := e.EndedPosition; p != nil && p.End != nil {
		s += " in " + yearMonth(*p.End)
	}
	if p := e.CurrentPosition; p != nil && p.CompanyName != "" {
		s += "; now "
		if p.Title != "" {
			s += p.Title + " at "
		}
		s += p.CompanyName
	}
	return s
}

func matched(e EvidenceView) string {
	if e.MemberMatch == "" {
		return "no match"
	}
	s := e.MemberMatch + " match"
	if e.MatchWeight != 0 {
		s += fmt.Sprintf(" of %.1f bits", e.MatchWeight)
	}
	return s
}

func yearMonth(y YearMonthView) string {
	if y.Month == 0 {
		return fmt.Sprintf("%04d", y.Year)
	}
	return fmt.Sprintf("%04d-%02d", y.Year, y.Month)
}

// outOfScope says which owners were tried and are not sync users.
func outOfScope(s ScopeView) string {
	var parts []string
	for _, c := range s.Checks {
		who := "no user"
		if c.UserID != "" {
			who = "user " + c.UserID
		}
		switch c.Via {
		case "contact_owner":
			parts = append(parts, "the contact's owner ("+who+") is not a sync user")
		case "account_owner":
			parts = append(parts, "the owner of account "+c.RowID+" ("+who+") is not")
		case "opportunity_owner":
			parts = append(parts, "the owner of opportunity "+c.RowID+" ("+who+") is not")
		case "opportunity_connection":
			parts = append(parts, "the owner of opportunity "+c.RowID+", linked through connection "+c.ConnectionID+
				" (role "+orDefault(c.RoleID, "none")+"), ("+who+") is not")
		}
	}
	if !hasVia(s, "opportunity_owner") && !hasVia(s, "opportunity_connection") {
		parts = append(parts, "no opportunity links the contact")
	}
	return strings.Join(parts, "; ")
}

func hasVia(s ScopeView, via string) bool {
	for _, c := range s.Checks {
		if c.Via == via {
			return true
		}
	}
	return false
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}
