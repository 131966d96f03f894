package ingest

import (
	"strings"
	"testing"
	"time"
)

func TestSummary(t *testing.T) {
	t.Parallel()
	observed := time.Date(2024, 11, 2, 0, 0, 0, 0, time.UTC)
	left := EvidenceView{MemberID: "m-1", MemberMatch: "name+company+title", MatchWeight: 14.25, MemberConfidence: 0.7,
		CompanyName: "Contoso Ltd", CompanyConfidence: 0.9,
		EndedPosition:   &PositionView{CompanyName: "Contoso", End: &YearMonthView{Year: 2026, Month: 6}},
		CurrentPosition: &PositionView{CompanyName: "Tailspin Toys", Title: "Head of Buying"}}
	for _, tc := range []struct {
		name string
		v    *EvaluationView
		want string
	}{
		{"not evaluated", nil, "Not evaluated since"},
		{"left", &EvaluationView{Reason: "left_company", Confidence: 0.934, Threshold: 0.8, Evidence: left},
			"Not at Company: left Contoso in 2026-06; now Head of Buying at Tailspin Toys (name+company+title match of 14.2 bits, confidence 0.93, threshold 0.80)."},
		{"reviewed", &EvaluationView{Reason: "reviewed", Reviewer: "ops@contoso.example", Confidence: 0.63, Threshold: 0.8, Evidence: left},
			"Not at Company: approved by ops@contoso.example below the threshold: left Contoso in 2026-06; now Head of Buying at Tailspin Toys (name+company+title match of 14.2 bits, confidence 0.63 < 0.80)."},
		{"below the threshold", &EvaluationView{Reason: "below_threshold", Confidence: 0.63, Threshold: 0.8, Evidence: left},
			"No Feedback: left Contoso in 2026-06; now Head of Buying at Tailspin Toys, but confidence 0.63 is below the threshold 0.80 (member 0.70 × company 0.90); a candidate for review."},
		{"rejected", &EvaluationView{Reason: "review_rejected", Confidence: 0.63, Threshold: 0.8, Review: &ReviewView{Reviewer: "ops"}},
			"No Feedback: rejected by ops on this evidence (confidence 0.63 < 0.80); it stands until the evidence changes."},
		{"ambiguous", &EvaluationView{Reason: "ambiguous_match", Evidence: EvidenceView{MemberID: "m-1", Candidates: []CandidateView{{MemberID: "m-2", Value: 0}}}},
			"No Feedback: ambiguous: m-1, m-2 (leads to no_feedback) match about equally well and disagree."},
		{"out of scope", &EvaluationView{Reason: "out_of_scope", Scope: ScopeView{Checks: []ScopeCheckView{{Via: "contact_owner"},
			{Via: "account_owner", UserID: "u-2", RowID: "a-1"}, {Via: "opportunity_owner", UserID: "u-3", RowID: "o-1"}}}},
			"No Feedback: out of scope: the contact's owner (no user) is not a sync user; the owner of account a-1 (user u-2) is not; the owner of opportunity o-1 (user u-3) is not."},
		{"out of scope through a connection", &EvaluationView{Reason: "out_of_scope", Scope: ScopeView{Checks: []ScopeCheckView{{Via: "contact_owner", UserID: "u-1"},
			{Via: "opportunity_connection", UserID: "u-3", RowID: "o-1", ConnectionID: "k-1", RoleID: "r-1"}}}},
			"No Feedback: out of scope: the contact's owner (user u-1) is not a sync user; the owner of opportunity o-1, linked through connection k-1 (role r-1), (user u-3) is not."},
		{"out of scope, no opportunity", &EvaluationView{Reason: "out_of_scope", Scope: ScopeView{Checks: []ScopeCheckView{{Via: "contact_owner", UserID: "u-1"}}}},
			"No Feedback: out of scope: the contact's owner (user u-1) is not a sync user; no opportunity links the contact."},
		{"stale", &EvaluationView{Reason: "stale_profile", MaxProfileAge: "13152h0m0s", Evidence: EvidenceView{ProfileObservedAt: &observed}},
			"No Feedback: the profile was observed on 2024-11-02, longer ago than the 13152h0m0s a profile may be old."},
		{"unmatched", &EvaluationView{Reason: "unmatched"}, "No Feedback: no member matches the contact"},
		{"still there", &EvaluationView{Reason: "still_at_company", Evidence: EvidenceView{CompanyName: "Contoso Ltd", MemberMatch: "email"}},
			"No Feedback: still at Contoso Ltd (email match)."},
		{"erased", &EvaluationView{Reason: "left_company", EvidenceErased: true, Threshold: 0.8, Confidence: 0.9},
			"The member's evidence is erased."},
		{"unknown reason", &EvaluationView{Value: 0, Reason: "something_new", Confidence: 0.5}, "no_feedback: something_new (confidence 0.50)."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := summary(tc.v)
			if !strings.Contains(got, tc.want) {
				t.Errorf("summary\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}
