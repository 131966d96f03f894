package validator

import (
	"testing"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/validator/decide"
)

func reviewOf(id, action, reviewer, digest string, requested int) *eventsv1.ReviewAction {
	return &eventsv1.ReviewAction{EventId: id, OrganizationId: org, ContactId: contactID, Action: action,
		Reviewer: reviewer, EvidenceDigest: digest, RequestedAt: at(requested)}
}

func (e *env) review(r *eventsv1.ReviewAction) {
	e.t.Helper()
	e.mustAdmin(bus.AdminReviewSubject(org, r.GetContactId()), r)
}

// reviewAudit is the audit record of the review with event id.
func (e *env) reviewAudit(id string) *eventsv1.ReviewAction {
	e.t.Helper()
	var r eventsv1.ReviewAction
	e.last(bus.StreamAudit, bus.AuditSubject("review", org), &r)
	if r.GetEventId() != id {
		e.t.Fatalf("last review audited %q, want %q", r.GetEventId(), id)
	}
	return &r
}

// candidateFixture: the contact's member left, at a confidence (0.855)
// below the organization's threshold (0.99): a candidate for review.
func candidateFixture(t *testing.T) (*env, string) {
	e := newEnv(t)
	e.mustCRM(contactCreate(contactID, email))
	e.mustCRM(accountCreate("Contoso Ltd", ""))
	e.mustAdmin(bus.AdminSettingsSubject(org), settingsChange("settings-1", 0.99, false, true, 5))
	e.mustProfile(leftProfile("feed-1", 10))
	rec, _ := e.kept(contactID)
	if !rec.GetCandidate() || rec.GetResult().GetReason() != decide.ReasonBelowThresh {
		t.Fatalf("kept %q, candidate %v: want a candidate below the threshold", rec.GetResult().GetReason(), rec.GetCandidate())
	}
	e.wantIndex(false, true)
	return e, rec.GetEvidenceDigest()
}

// Approved, a candidate is flagged with the reviewer on the decision;
// rejected, it is No Feedback, sticky until the evidence changes; each
// review is audited with who, when and whether it applied.
func TestReviewApproveThenReject(t *testing.T) {
	t.Parallel()
	e, digest := candidateFixture(t)

	e.review(reviewOf("review-1", reviewApprove, "admin@contoso.example", digest, 20))
	e.wantDecision(contactID, eventsv1.Flag_FLAG_NOT_AT_COMPANY, ReasonReviewed, "review-1")
	if d := e.decisionOf(contactID); d.GetReviewer() != "admin@contoso.example" || d.GetConfidence() != 0.855 {
		t.Errorf("decision reviewer %q, confidence %v", d.GetReviewer(), d.GetConfidence())
	}
	if a := e.reviewAudit("review-1"); a.GetOutcome() != reviewApplied || a.GetReviewer() != "admin@contoso.example" ||
		a.GetRecordedAt() == nil || !a.GetRequestedAt().AsTime().Equal(at(20).AsTime()) {
		t.Errorf("audit record %v, want applied, with who and when", a)
	}
	rec, _ := e.kept(contactID)
	if rec.GetReview().GetEventId() != "review-1" || !rec.GetCandidate() || rec.GetEvidenceDigest() != digest ||
		rec.GetResult().GetReviewer() != "admin@contoso.example" {
		t.Errorf("kept review %v, candidate %v, digest %q", rec.GetReview(), rec.GetCandidate(), rec.GetEvidenceDigest())
	}
	e.wantIndex(true, false)

	// The same evidence again changes nothing: still approved.
	decisions := e.published(bus.StreamDecisions)
	e.mustCRM(contactChange(contactID, 25, map[string]*eventsv1.Value{"jobtitle": strV("Engineer")}))
	if n := e.published(bus.StreamDecisions); n != decisions {
		t.Errorf("%d decisions on the evidence reviewed", n-decisions)
	}

	e.review(reviewOf("review-2", reviewReject, "lead@contoso.example", digest, 30))
	e.wantDecision(contactID, eventsv1.Flag_FLAG_NO_FEEDBACK, ReasonReviewRejected, "review-2")
	if a := e.reviewAudit("review-2"); a.GetOutcome() != reviewApplied || a.GetAction() != reviewReject {
		t.Errorf("audit record %v", a)
	}
	e.wantIndex(false, false)

	// New evidence (a later job change): the rejection applies to nothing.
	e.mustProfile(northwindProfile("feed-2", 40))
	rec, _ = e.kept(contactID)
	if rec.GetResult().GetReason() != decide.ReasonBelowThresh || rec.GetReview() != nil || rec.GetEvidenceDigest() == digest {
		t.Errorf("after new evidence: %q, review %v", rec.GetResult().GetReason(), rec.GetReview())
	}
	e.wantIndex(false, true)
}

// A review of evidence that has changed since applies to nothing, and says so.
func TestReviewOfOtherEvidenceIsStale(t *testing.T) {
	t.Parallel()
	e, _ := candidateFixture(t)
	decisions := e.published(bus.StreamDecisions)
	e.review(reviewOf("review-1", reviewApprove, "admin@contoso.example", "0123456789abcdef01234567", 20))
	if a := e.reviewAudit("review-1"); a.GetOutcome() != reviewStale {
		t.Errorf("outcome %q, want stale", a.GetOutcome())
	}
	if n := e.published(bus.StreamDecisions); n != decisions {
		t.Errorf("%d decisions from a stale review", n-decisions)
	}
	e.wantIndex(false, true)
	// An older review arriving late is not applied over the newer one.
	e.review(reviewOf("review-0", reviewApprove, "admin@contoso.example", "0123456789abcdef01234567", 10))
	if got := e.counter(e.svc.metrics.events.WithLabelValues("review", "unchanged")); got != 1 {
		t.Errorf("events{review,unchanged} = %v, want 1", got)
	}
}

func TestReviewRefusedWhenInvalid(t *testing.T) {
	t.Parallel()
	e, digest := candidateFixture(t)
	for name, r := range map[string]*eventsv1.ReviewAction{
		"no reviewer":        reviewOf("r-1", reviewApprove, " ", digest, 20),
		"control characters": reviewOf("r-2", reviewApprove, "a\nb", digest, 20),
		"unknown action":     reviewOf("r-3", "maybe", "admin", digest, 20),
		"no digest":          reviewOf("r-4", reviewApprove, "admin", "", 20),
		"contact not a GUID": func() *eventsv1.ReviewAction {
			r := reviewOf("r-5", reviewApprove, "admin", digest, 20)
			r.ContactId = "x"
			return r
		}(),
	} {
		err := e.svc.HandleAdmin(e.ctx, msgOf(t, bus.AdminReviewSubject(org, contactID), r))
		if err == nil || !bus.IsPermanent(err) {
			t.Errorf("%s: err %v, want a permanent error", name, err)
		}
	}
	e.wantNoDecision(contactID)
}
