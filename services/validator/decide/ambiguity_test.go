package decide

import "testing"

// An ambiguous match says with whom: the strongest member and each other
// one with the outcome it leads to.
func TestAmbiguousSaysWithWhom(t *testing.T) {
	for _, tc := range []struct {
		name      string
		in        Input
		member    string
		others    map[string]int
		nameMatch bool
	}{
		{
			name: "two members of one email who disagree",
			in: func() Input {
				other := member(contosoNow)
				other.ID = "m2"
				return input(member(contosoEnded, fabrikamNow), other)
			}(),
			member: "m1", others: map[string]int{"m2": NoFeedback},
		},
		{
			name: "namesakes at the company",
			in: func() Input {
				in := input(namesake("m1", contosoEnded, fabrikamNow), namesake("m2", contosoNow))
				in.Contact.EmailHashes = nil
				return in
			}(),
			others: map[string]int{}, nameMatch: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := Evaluate(tc.in)
			if r.Reason != ReasonAmbiguous {
				t.Fatalf("reason %q, want %q", r.Reason, ReasonAmbiguous)
			}
			ev := r.Evidence
			if tc.member != "" && ev.MemberID != tc.member {
				t.Errorf("member %q, want %q", ev.MemberID, tc.member)
			}
			if ev.MemberID == "" || len(ev.Candidates) != 1 || ev.Candidates[0].MemberID == ev.MemberID {
				t.Fatalf("evidence %+v: want the strongest member and the one it is ambiguous with", ev)
			}
			if want, ok := tc.others[ev.Candidates[0].MemberID]; ok && ev.Candidates[0].Value != want {
				t.Errorf("candidate %s leads to %d, want %d", ev.Candidates[0].MemberID, ev.Candidates[0].Value, want)
			}
			if tc.nameMatch && (ev.MatchWeight == 0 || len(ev.Features) == 0 || ev.Candidates[0].Weight == 0) {
				t.Errorf("a name match without its weights: %+v", ev)
			}
			if ev.MemberMatch == "" || ev.ProfileSource != "feed" {
				t.Errorf("match %q, source %q", ev.MemberMatch, ev.ProfileSource)
			}
		})
	}
}
