package writer

import (
	"strings"
	"testing"
	"unicode/utf8"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
)

func TestRenderEvidence(t *testing.T) {
	t.Parallel()
	d := func(company, match string, conf float64) *eventsv1.Decision {
		return &eventsv1.Decision{Confidence: conf, Evidence: &eventsv1.Evidence{CompanyName: company, MemberMatch: match}}
	}
	long := strings.Repeat("é", 500)
	for _, c := range []struct {
		name          string
		d             *eventsv1.Decision
		m             *eventsv1.MemberEvidence
		reason, newCo string
	}{
		{"no member part", d("Contoso", "email", 0.9), nil, "Left Contoso (email match, confidence 0.90)", ""},
		{"year only, no title", d("Contoso", "", 0.855),
			&eventsv1.MemberEvidence{EndedPosition: &eventsv1.Position{End: &eventsv1.YearMonth{Year: 2025}}, CurrentPosition: &eventsv1.Position{CompanyName: "Fabrikam"}},
			"Left Contoso in 2025; now Fabrikam (confidence 0.86)", "Fabrikam"},
		{"ended position names the company", d("Contoso Ltd", "profile_url", 1),
			&eventsv1.MemberEvidence{EndedPosition: &eventsv1.Position{CompanyName: "Contoso", End: &eventsv1.YearMonth{Year: 2026, Month: 3}}},
			"Left Contoso in 2026-03 (profile_url match, confidence 1.00)", ""},
		{"nothing known", d("", "", 0), nil, "Left the company (confidence 0.00)", ""},
		{"approved below the threshold", func() *eventsv1.Decision {
			r := d("Contoso", "email", 0.62)
			r.Reviewer = "ops@contoso.example"
			return r
		}(), nil,
			"Left Contoso (email match, confidence 0.62, reviewed by ops@contoso.example)", ""},
	} {
		reason, newCo := renderEvidence(c.d, c.m)
		if reason != c.reason || newCo != c.newCo {
			t.Errorf("%s: %q, %q; want %q, %q", c.name, reason, newCo, c.reason, c.newCo)
		}
	}
	reason, newCo := renderEvidence(d("Contoso", "email", 0.9), &eventsv1.MemberEvidence{CurrentPosition: &eventsv1.Position{CompanyName: long}})
	if utf8.RuneCountInString(reason) != maxReason || utf8.RuneCountInString(newCo) != maxCompany || !utf8.ValidString(reason) {
		t.Errorf("long names: %d and %d characters, want cut to %d and %d", utf8.RuneCountInString(reason), utf8.RuneCountInString(newCo), maxReason, maxCompany)
	}
}
