package validator

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/evaluations"
	"github.com/notatcompany/notatcompany/services/validator/decide"
)

// kept is the contact's kept evaluation and its revision; it fails the
// test when there is none.
func (e *env) kept(contact string) (*eventsv1.Evaluation, uint64) {
	e.t.Helper()
	rec, rev, err := e.svc.evals.get(e.ctx, evaluations.Key(org, contact))
	if err != nil || rec == nil {
		e.t.Fatalf("evaluation of %s: %v, %v", contact, rec, err)
	}
	return rec, rev
}

// keptEvidence is the kept evaluation's evidence, the member's part opened.
func (e *env) keptEvidence(rec *eventsv1.Evaluation) *eventsv1.Evidence {
	e.t.Helper()
	ev, err := e.svc.OpenEvidence(e.ctx, rec.GetResult())
	if err != nil {
		e.t.Fatalf("open the kept evidence: %v", err)
	}
	return ev
}

func (e *env) hasKey(key string) bool {
	e.t.Helper()
	_, err := e.svc.evals.kv.Get(e.ctx, key)
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		e.t.Fatal(err)
	}
	return err == nil
}

func (e *env) wantIndex(flagged, candidate bool) {
	e.t.Helper()
	if got := e.hasKey(evaluations.FlaggedKey(org, contactID)); got != flagged {
		e.t.Errorf("flagged index key: %v, want %v", got, flagged)
	}
	if got := e.hasKey(evaluations.CandidateKey(org, contactID)); got != candidate {
		e.t.Errorf("candidate index key: %v, want %v", got, candidate)
	}
}

// Every outcome is kept, with what explains it: the evidence, the numbers a
// threshold was compared with, the scope path, the members of an ambiguous
// match, the profile a stale one rested on.
func TestEvaluationKeptWhateverTheOutcome(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		setup   func(e *env)
		value   eventsv1.Flag
		reason  string
		check   func(t *testing.T, rec *eventsv1.Evaluation, ev *eventsv1.Evidence)
		flagged bool
		cand    bool
	}{
		{
			name: "flagged", setup: func(e *env) { e.mustProfile(leftProfile("feed-1", 10)) },
			value: eventsv1.Flag_FLAG_NOT_AT_COMPANY, reason: decide.ReasonLeft, flagged: true,
			check: func(t *testing.T, rec *eventsv1.Evaluation, ev *eventsv1.Evidence) {
				if ev.GetMemberId() != "m-1" || ev.GetMemberMatch() != "email" || ev.GetCurrentPosition().GetCompanyName() != "Fabrikam" ||
					ev.GetEndedPosition().GetEnd().GetYear() != 2024 || rec.GetResult().GetConfidence() != 0.855 {
					t.Errorf("evidence %v, confidence %v", ev, rec.GetResult().GetConfidence())
				}
				if rec.GetLastDecisionId() == "" || rec.GetResult().GetCauseEventId() != "feed-1" {
					t.Errorf("last decision %q, cause %q", rec.GetLastDecisionId(), rec.GetResult().GetCauseEventId())
				}
			},
		},
		{
			name: "unmatched", setup: func(*env) {},
			value: eventsv1.Flag_FLAG_NO_FEEDBACK, reason: decide.ReasonUnmatched,
			check: func(t *testing.T, rec *eventsv1.Evaluation, ev *eventsv1.Evidence) {
				if ev.GetMemberId() != "" || rec.GetLastDecisionId() != "" {
					t.Errorf("an unmatched contact with member %q, last decision %q", ev.GetMemberId(), rec.GetLastDecisionId())
				}
			},
		},
		{
			name: "ambiguous, with whom",
			setup: func(e *env) {
				e.mustProfile(leftProfile("feed-1", 10))
				still := backProfile("feed-2", 11)
				still.MemberId = "m-2"
				e.mustProfile(still)
			},
			value: eventsv1.Flag_FLAG_NO_FEEDBACK, reason: decide.ReasonAmbiguous,
			check: func(t *testing.T, rec *eventsv1.Evaluation, ev *eventsv1.Evidence) {
				members := map[string]bool{ev.GetMemberId(): true}
				for _, c := range ev.GetCandidates() {
					members[c.GetMemberId()] = true
				}
				if !members["m-1"] || !members["m-2"] || len(ev.GetCandidates()) != 1 {
					t.Errorf("ambiguous between %v (candidates %v), want m-1 and m-2", members, ev.GetCandidates())
				}
				if rec.GetResult().GetEvidence().GetSealed() == nil || rec.GetResult().GetEvidence().GetCandidates() != nil {
					t.Error("the members of an ambiguous match are kept unsealed")
				}
			},
		},
		{
			name: "below the threshold, with the numbers",
			setup: func(e *env) {
				e.mustAdmin(bus.AdminSettingsSubject(org), settingsChange("settings-1", 0.99, false, true, 5))
				e.mustProfile(leftProfile("feed-1", 10))
			},
			value: eventsv1.Flag_FLAG_NO_FEEDBACK, reason: decide.ReasonBelowThresh, cand: true,
			check: func(t *testing.T, rec *eventsv1.Evaluation, ev *eventsv1.Evidence) {
				if rec.GetThreshold() != 0.99 || rec.GetResult().GetConfidence() != 0.855 || !rec.GetCandidate() ||
					ev.GetMemberConfidence() != 0.95 || ev.GetCompanyConfidence() != 0.9 {
					t.Errorf("threshold %v, confidence %v (member %v, company %v), candidate %v", rec.GetThreshold(),
						rec.GetResult().GetConfidence(), ev.GetMemberConfidence(), ev.GetCompanyConfidence(), rec.GetCandidate())
				}
				if len(rec.GetEvidenceDigest()) != 24 {
					t.Errorf("evidence digest %q", rec.GetEvidenceDigest())
				}
			},
		},
		{
			name: "out of scope, and why",
			setup: func(e *env) {
				e.mustCRM(company(accountID, otherUser, 3))
				e.mustProfile(leftProfile("feed-1", 10))
			},
			value: eventsv1.Flag_FLAG_NO_FEEDBACK, reason: decide.ReasonOutOfScope,
			check: func(t *testing.T, rec *eventsv1.Evaluation, _ *eventsv1.Evidence) {
				s := rec.GetScope()
				if s.GetInScope() || s.GetVia() != "" || len(s.GetChecks()) != 2 ||
					s.GetChecks()[0].GetVia() != scopeContactOwner || s.GetChecks()[0].GetUserId() != "" ||
					s.GetChecks()[1].GetVia() != scopeAccountOwner || s.GetChecks()[1].GetUserId() != otherUser ||
					s.GetChecks()[1].GetRowId() != accountID || s.GetChecks()[1].GetSyncUser() {
					t.Errorf("scope %v, want the contact's owner (none) and the account's (not a sync user) tried", s)
				}
			},
		},
		{
			name: "stale profile",
			setup: func(e *env) {
				e.svc.cfg.MaxProfileAge = 24 * time.Hour
				e.mustProfile(leftProfile("feed-1", 10))
			},
			value: eventsv1.Flag_FLAG_NO_FEEDBACK, reason: decide.ReasonStale,
			check: func(t *testing.T, rec *eventsv1.Evaluation, ev *eventsv1.Evidence) {
				if rec.GetMaxProfileAge().AsDuration() != 24*time.Hour || !ev.GetProfileObservedAt().AsTime().Equal(at(10).AsTime()) ||
					ev.GetMemberId() != "m-1" {
					t.Errorf("max age %v, profile observed %v, member %q", rec.GetMaxProfileAge().AsDuration(), ev.GetProfileObservedAt(), ev.GetMemberId())
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.mustCRM(contactCreate(contactID, email))
			e.mustCRM(accountCreate("Contoso Ltd", ""))
			tc.setup(e)
			rec, _ := e.kept(contactID)
			if r := rec.GetResult(); r.GetValue() != tc.value || r.GetReason() != tc.reason {
				t.Fatalf("kept %v %q, want %v %q", r.GetValue(), r.GetReason(), tc.value, tc.reason)
			}
			if rec.GetResult().GetDecidedAt() == nil || len(rec.GetDigest()) != 24 || rec.GetAccountId() != accountID {
				t.Errorf("evaluated at %v, digest %q, account %q", rec.GetResult().GetDecidedAt(), rec.GetDigest(), rec.GetAccountId())
			}
			if tc.reason != decide.ReasonOutOfScope {
				if s := rec.GetScope(); !s.GetInScope() || s.GetVia() != scopeAccountOwner || s.GetUserId() != syncUser || len(s.GetChecks()) != 2 {
					t.Errorf("scope %v, want in scope through the account's owner", s)
				}
			}
			if ev := rec.GetResult().GetEvidence(); ev.GetMemberId() != "" || ev.GetCurrentPosition() != nil || ev.GetFeatures() != nil {
				t.Errorf("member evidence kept unsealed: %v", ev)
			}
			tc.check(t, rec, e.keptEvidence(rec))
			e.wantIndex(tc.flagged, tc.cand)
		})
	}
}

// An evaluation that finds what is kept writes nothing; one that finds
// something else replaces it and moves the index keys.
func TestEvaluationStoredOnlyWhenItChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCRM(contactCreate(contactID, email))
	e.mustCRM(accountCreate("Contoso Ltd", ""))
	e.mustProfile(leftProfile("feed-1", 10))
	rec, rev := e.kept(contactID)
	stored := e.counter(e.svc.evals.stored.WithLabelValues("stored"))

	// A change of the contact that changes no outcome: evaluated, not stored.
	e.mustCRM(contactChange(contactID, 20, map[string]*eventsv1.Value{"jobtitle": strV("Engineer")}))
	e.mustCRM(accountCreate("Contoso Ltd", ""))
	again, rev2 := e.kept(contactID)
	if rev2 != rev || !proto.Equal(again, rec) {
		t.Errorf("revision %d -> %d: an evaluation that found the same was stored", rev, rev2)
	}
	if got := e.counter(e.svc.evals.stored.WithLabelValues("unchanged")); got < 1 {
		t.Errorf("evaluations kept unchanged = %v, want at least 1", got)
	}
	if got := e.counter(e.svc.evals.stored.WithLabelValues("stored")); got != stored {
		t.Errorf("evaluations stored = %v, want still %v", got, stored)
	}
	e.wantIndex(true, false)

	e.mustProfile(backProfile("feed-2", 30))
	back, rev3 := e.kept(contactID)
	if rev3 == rev || back.GetResult().GetReason() != decide.ReasonStillThere || back.GetResult().GetCauseEventId() != "feed-2" {
		t.Errorf("after the profile came back: revision %d, %q caused by %q", rev3, back.GetResult().GetReason(), back.GetResult().GetCauseEventId())
	}
	e.wantIndex(false, false)
}

// The open opportunities of a flagged contact are at risk, each with an
// index key, for as long as they are open and the contact flagged.
func TestAtRiskOpportunities(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCRM(contactCreate(contactID, email))
	e.mustCRM(accountCreate("Contoso Ltd", ""))
	e.mustCRM(opportunity(oppID, otherUser, 3, map[string]*eventsv1.Value{"parentcontactid": refV("contact", contactID),
		"parentaccountid": refV("account", accountID)}))
	e.mustCRM(opportunity(otherOppID, otherUser, 3, map[string]*eventsv1.Value{"customerid": refV("contact", contactID),
		"statecode": choiceV(1)})) // won: not at risk
	e.mustProfile(leftProfile("feed-1", 10))
	rec, _ := e.kept(contactID)
	opps := rec.GetOpenOpportunities()
	if len(opps) != 1 || opps[0].GetOpportunityId() != oppID || opps[0].GetOwnerId() != otherUser || opps[0].GetAccountId() != accountID {
		t.Fatalf("open opportunities %v, want %s only", opps, oppID)
	}
	risk := evaluations.AtRiskKey(org, oppID, contactID)
	if !e.hasKey(risk) || e.hasKey(evaluations.AtRiskKey(org, otherOppID, contactID)) {
		t.Errorf("at-risk keys: %s %v, the won one %v", oppID, e.hasKey(risk), e.hasKey(evaluations.AtRiskKey(org, otherOppID, contactID)))
	}

	// Won: no longer at risk, though the contact is still flagged.
	e.mustCRM(opportunity(oppID, otherUser, 40, map[string]*eventsv1.Value{"parentcontactid": refV("contact", contactID),
		"statecode": choiceV(1)}))
	if rec, _ := e.kept(contactID); len(rec.GetOpenOpportunities()) != 0 || e.hasKey(risk) {
		t.Errorf("a won opportunity is still at risk: %v, key %v", rec.GetOpenOpportunities(), e.hasKey(risk))
	}
	e.wantIndex(true, false)
}
