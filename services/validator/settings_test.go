package validator

import (
	"testing"
	"time"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/validator/decide"
)

func settingsChange(id string, threshold float64, reflag, dataValidation bool, changed int) *eventsv1.OrgSettingsChange {
	return &eventsv1.OrgSettingsChange{EventId: id, OrganizationId: org, DataValidation: dataValidation,
		ConfidenceThreshold: threshold, ReflagAfterIgnore: reflag, ChangedAt: at(changed)}
}

func TestSettingsThresholdReevaluatesOrganization(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustCRM(contactCreate(contactID, email))
	e.mustCRM(contactCreate(otherID, "grace@contoso.com"))
	e.mustCRM(accountCreate("Contoso Ltd", ""))
	// A contact of another organization is not the settings' business.
	elsewhere := contactCreate(contactID, email)
	elsewhere.OrganizationId = "5f0c7f10-0000-4000-8000-00000000000b"
	e.mustCRM(elsewhere)
	e.mustProfile(leftProfile("feed-1", 10))
	var flagged eventsv1.Decision
	e.last(bus.StreamDecisions, bus.DecisionSubject(org, contactID), &flagged)
	if flagged.GetValue() != eventsv1.Flag_FLAG_NOT_AT_COMPANY || flagged.GetConfidence() != 0.855 {
		t.Fatalf("decision = %v confidence %v, want NOT_AT_COMPANY at 0.855", flagged.GetValue(), flagged.GetConfidence())
	}

	e.mustAdmin(bus.AdminSettingsSubject(org), settingsChange("settings-1", 0.99, false, true, 20))
	if got := e.evaluations("settings"); got != 2 {
		t.Errorf("evaluations{settings} = %v, want 2 (the organization's contacts)", got)
	}
	var d eventsv1.Decision
	e.last(bus.StreamDecisions, bus.DecisionSubject(org, contactID), &d)
	if d.GetValue() != eventsv1.Flag_FLAG_NO_FEEDBACK || d.GetReason() != decide.ReasonBelowThresh ||
		d.GetPrevious() != eventsv1.Flag_FLAG_NOT_AT_COMPANY || d.GetConfidence() != 0.855 || d.GetCauseEventId() != "settings-1" {
		t.Errorf("decision = %v %q (previous %v, confidence %v, cause %q), want NO_FEEDBACK below_threshold at 0.855 caused by settings-1",
			d.GetValue(), d.GetReason(), d.GetPrevious(), d.GetConfidence(), d.GetCauseEventId())
	}
	e.wantNoDecision(otherID)
	decisions := e.published(bus.StreamDecisions)

	// Data validation alone switched: the writer's business, no evaluation.
	e.mustAdmin(bus.AdminSettingsSubject(org), settingsChange("settings-2", 0.99, false, false, 25))
	if got := e.counter(e.svc.metrics.events.WithLabelValues("settings", "applied")); got != 2 {
		t.Errorf("events{settings,applied} = %v, want 2", got)
	}
	// Older settings arriving late: ignored.
	e.mustAdmin(bus.AdminSettingsSubject(org), settingsChange("settings-old", 0.5, true, true, 15))
	if got := e.counter(e.svc.metrics.events.WithLabelValues("settings", "unchanged")); got != 1 {
		t.Errorf("events{settings,unchanged} = %v, want 1", got)
	}
	if got := e.evaluations("settings"); got != 2 {
		t.Errorf("evaluations{settings} = %v after changes that leave the threshold alone, want 2", got)
	}
	if n := e.published(bus.StreamDecisions); n != decisions {
		t.Errorf("%d decisions from settings that change no decision", n-decisions)
	}
	if s, err := e.svc.store.Settings(e.ctx, org); err != nil || s.Threshold != 0.99 || s.DataValidation || s.ReflagAfterIgnore {
		t.Errorf("settings = %+v, %v; want settings-2's", s, err)
	}

	// Threshold 0: the service default (0.8) again, flagged again.
	e.mustAdmin(bus.AdminSettingsSubject(org), settingsChange("settings-3", 0, false, true, 30))
	e.wantDecision(contactID, eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, "settings-3")
	if got := e.evaluations("settings"); got != 4 {
		t.Errorf("evaluations{settings} = %v, want 4", got)
	}
}

// northwindProfile: Contoso ended, then Fabrikam ended too, now at
// Northwind: another job change than leftProfile's.
func northwindProfile(eventID string, observed int) *eventsv1.ProfileChange {
	p := leftProfile(eventID, observed)
	p.Positions[1].End, p.Positions[1].Current = ymP(2025, 1), false
	p.Positions = append(p.Positions, &eventsv1.Position{CompanyName: "Northwind", Title: "Director", Start: ymP(2025, 2), Current: true})
	return p
}

// A contact a user set to Ignore after a flag stays Ignore for the same
// evidence; a later, different job change flags it again only when the
// organization allows it, and then it stays flagged.
func TestReflagAfterIgnore(t *testing.T) {
	t.Parallel()
	for _, reflag := range []bool{false, true} {
		name := map[bool]string{false: "setting off", true: "setting on"}[reflag]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.mustAdmin(bus.AdminSettingsSubject(org), settingsChange("settings-1", 0, reflag, true, 1))
			e.mustCRM(contactCreate(contactID, email))
			e.mustCRM(accountCreate("Contoso Ltd", ""))
			e.mustProfile(leftProfile("feed-1", 10))
			var flagged eventsv1.Decision
			e.last(bus.StreamDecisions, bus.DecisionSubject(org, contactID), &flagged)
			if flagged.GetValue() != eventsv1.Flag_FLAG_NOT_AT_COMPANY {
				t.Fatalf("decision = %v, want NOT_AT_COMPANY", flagged.GetValue())
			}

			// The user overrides the flag.
			e.mustCRM(contactChange(contactID, 30, map[string]*eventsv1.Value{DefaultFlagColumn: choiceV(decide.Ignore)}))
			e.wantDecision(contactID, eventsv1.Flag_FLAG_IGNORE, decide.ReasonUserOverride, "")
			decisions := e.published(bus.StreamDecisions)

			// The same evidence, observed again later: still Ignore, nothing new.
			e.mustProfile(leftProfile("feed-2", 40))
			if n := e.published(bus.StreamDecisions); n != decisions {
				t.Errorf("the same evidence again published %d decisions", n-decisions)
			}
			e.wantDecision(contactID, eventsv1.Flag_FLAG_IGNORE, decide.ReasonUserOverride, "")

			// Another job change.
			e.mustProfile(northwindProfile("feed-3", 50))
			if !reflag {
				if n := e.published(bus.StreamDecisions); n != decisions {
					t.Errorf("a new job change published %d decisions with re-flagging off", n-decisions)
				}
				e.wantDecision(contactID, eventsv1.Flag_FLAG_IGNORE, decide.ReasonUserOverride, "")
				return
			}
			e.wantDecision(contactID, eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, "feed-3")
			if d := e.decisionOf(contactID); e.opened(d).GetCurrentPosition().GetCompanyName() != "Northwind" || d.GetPrevious() != eventsv1.Flag_FLAG_IGNORE {
				t.Errorf("re-flag evidence %v, previous %v; want Northwind, previous IGNORE", e.opened(d).GetCurrentPosition(), d.GetPrevious())
			}
			decisions = e.published(bus.StreamDecisions)

			// Evaluated again on the same evidence (the writer's write of
			// the flag never comes back: ingest drops it as our echo), it
			// stays flagged.
			e.mustProfile(northwindProfile("feed-4", 60))
			e.mustAdmin(bus.AdminSettingsSubject(org), settingsChange("settings-2", 0.5, true, true, 65))
			if got := e.evaluations("settings"); got != 1 {
				t.Errorf("evaluations{settings} = %v, want 1 (the contact)", got)
			}
			e.wantDecision(contactID, eventsv1.Flag_FLAG_NOT_AT_COMPANY, decide.ReasonLeft, "feed-3")
			if n := e.published(bus.StreamDecisions); n != decisions {
				t.Errorf("%d decisions after the re-flag on the same evidence, want none", n-decisions)
			}

			// The user sets Ignore again: once evaluated, Ignore again.
			e.mustCRM(contactChange(contactID, 70, map[string]*eventsv1.Value{DefaultFlagColumn: choiceV(decide.Ignore)}))
			e.mustCRM(crmRow("account", accountID, 75, map[string]*eventsv1.Value{"name": strV("Contoso Corporation")}))
			e.wantDecision(contactID, eventsv1.Flag_FLAG_IGNORE, decide.ReasonUserOverride, "")
		})
	}
}

func TestKeepPersonOverrideUntilTheEvidenceChanges(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.svc.now = func() time.Time { return at(10).AsTime() }
	keep := settingsChange("settings-keep", 0, false, true, 5)
	keep.KeepPersonOverride = true
	e.mustAdmin(bus.AdminSettingsSubject(org), keep)
	e.mustCRM(contactCreate(contactID, email))
	e.mustCRM(accountCreate("Contoso Ltd", ""))
	e.mustProfile(leftProfile("feed-1", 10))
	if n := e.published(bus.StreamDecisions); n != 1 {
		t.Fatalf("%d decisions, want 1", n)
	}
	// A seller sets No Feedback over our flag: the organization keeps theirs.
	e.mustCRM(contactChange(contactID, 30, map[string]*eventsv1.Value{DefaultFlagColumn: choiceV(0)}))
	if n := e.published(bus.StreamDecisions); n != 1 {
		t.Fatalf("%d decisions after a person's override the organization keeps, want 1", n)
	}
	// New evidence (a later profile with another position) flags again.
	later := leftProfile("feed-2", 40)
	later.Positions[1].Title = "Chief Procurement Officer"
	e.mustProfile(later)
	if n := e.published(bus.StreamDecisions); n != 2 {
		t.Fatalf("%d decisions after new evidence, want 2", n)
	}
}
