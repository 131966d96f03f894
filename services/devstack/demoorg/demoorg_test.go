package demoorg

import (
	"strings"
	"testing"
	"time"
)

func TestMonthsBefore(t *testing.T) {
	for _, tt := range []struct {
		now  time.Time
		n    int
		want yearMonth
	}{
		{time.Date(2027, 1, 31, 23, 0, 0, 0, time.UTC), 2, yearMonth{2026, 11}},
		{time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC), 1, yearMonth{2026, 2}}, // not March 3rd
		{time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 72, yearMonth{2020, 12}},
	} {
		if got := monthsBefore(tt.now, tt.n); got != tt.want {
			t.Errorf("monthsBefore(%s, %d) = %v, want %v", tt.now, tt.n, got, tt.want)
		}
	}
}

// Each case's profile says what the case is about: a leaver's position at
// the account's company ended (and the new one is current), a stayer's
// is current, a namesake was never at the contact's company and shares no
// address, a contact without a profile has none.
func TestProfileEvents(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	events := profileEvents("r1", now)
	byMember := map[string]profileData{}
	ids := map[string]bool{}
	for _, e := range events {
		if ids[e.ID] || !strings.HasPrefix(e.ID, "demo-r1-") || e.ObservedAt != "2026-12-01T12:00:00Z" {
			t.Errorf("event id %q (seen %v) observed %s", e.ID, ids[e.ID], e.ObservedAt)
		}
		ids[e.ID] = true
		d := e.Data.(profileData)
		byMember[d.MemberID] = d
	}
	for _, p := range cast {
		d, ok := byMember[memberID("r1", p)]
		if p.kind == CaseNoProfile {
			if ok {
				t.Errorf("%s has a profile", p.name())
			}
			continue
		}
		home := companyByID(accountByKey(p.account).company).id
		var current, ended []string
		for _, pos := range d.Positions {
			if pos.Current {
				current = append(current, pos.CompanyID)
			} else if pos.End != nil {
				ended = append(ended, pos.CompanyID)
			}
		}
		switch p.kind {
		case CaseStayer:
			if len(current) != 1 || current[0] != home || len(ended) != 0 {
				t.Errorf("stayer %s: current %v, ended %v", p.name(), current, ended)
			}
		case CaseNamesake:
			if len(d.EmailSHA256) != 0 || len(ended) != 1 || ended[0] == home || ended[0] != p.from {
				t.Errorf("namesake %s: emails %v, ended %v", p.name(), d.EmailSHA256, ended)
			}
		default:
			if len(ended) != 1 || ended[0] != home || (p.to == "") != (len(current) == 0) || p.to != "" && current[0] != p.to {
				t.Errorf("%s (%s): current %v, ended %v", p.name(), p.kind, current, ended)
			}
			if len(d.EmailSHA256) != 1 || d.EmailSHA256[0] != emailHash(p.email("r1")) {
				t.Errorf("%s: email hashes %v", p.name(), d.EmailSHA256)
			}
		}
	}
	if p := profileEvents("r2", now); p[0].ID == events[0].ID || p[0].Data.(profileData).MemberID == events[0].Data.(profileData).MemberID {
		t.Error("a second run's events or members are the first run's")
	}
}

func TestUnexpected(t *testing.T) {
	for _, tt := range []struct {
		row  Row
		want string
	}{
		{Row{Contact: "a", Case: CaseLeaver, Flag: 1, Reason: "Left"}, ""},
		{Row{Contact: "a", Case: CaseLeaver, Flag: 1}, "a: flagged without a reason"},
		{Row{Contact: "a", Case: CaseLeaver, Flag: 0}, "a: flag 0, want 1 (leaver)"},
		{Row{Contact: "b", Case: CaseStayer, Flag: 0}, ""},
		{Row{Contact: "b", Case: CaseStayer, Flag: 0, Reason: "Left"}, "b: a reason without the flag"},
		{Row{Contact: "c", Case: CaseIgnore, Flag: 2}, ""},
		{Row{Contact: "c", Case: CaseIgnore, Flag: 1, Reason: "x"}, "c: flag 1, want 2 (Ignore, then left)"},
		{Row{Contact: "d", Case: CaseOutOfScope, Flag: 1, Reason: "x"}, "d: flag 1, want 0 (out of scope, left)"},
		{Row{Contact: "e", Case: CaseOpportunity, Flag: 1, Reason: "x"}, ""},
	} {
		got := strings.Join(unexpected(Table{tt.row}), "; ")
		if got != tt.want {
			t.Errorf("unexpected(%+v) = %q, want %q", tt.row, got, tt.want)
		}
	}
}
