package profilefeed

import "testing"

// A position's current field has three states: true, false, and absent.
// Absent with no end date is current by the profile APIs' convention, so
// the event keeps "false" apart from "absent".
func TestDecodeCurrentField(t *testing.T) {
	ev := profileEvent()
	ev["data"].(map[string]any)["positions"] = []any{
		map[string]any{"companyName": "Contoso", "start": map[string]any{"year": 2020, "month": 1}},
		map[string]any{"companyName": "Fabrikam", "start": map[string]any{"year": 2018, "month": 1}, "current": false},
		map[string]any{"companyName": "Litware", "start": map[string]any{"year": 2024, "month": 1}, "current": true},
	}
	got := mustDecode(t, ev).Profile.GetPositions()
	want := []struct{ current, past bool }{{false, false}, {false, true}, {true, false}}
	if len(got) != len(want) {
		t.Fatalf("%d positions, want %d", len(got), len(want))
	}
	for i, w := range want {
		if got[i].GetCurrent() != w.current || got[i].GetPast() != w.past {
			t.Errorf("position %d (%s): current=%v past=%v, want current=%v past=%v",
				i, got[i].GetCompanyName(), got[i].GetCurrent(), got[i].GetPast(), w.current, w.past)
		}
	}
}
