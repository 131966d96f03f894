package profilefeed

import (
	"encoding/json"
	"testing"
)

// FuzzChallengeCode: no challenge code that is answered can be a body the
// webhook would take, since its answer is that body's signature.
func FuzzChallengeCode(f *testing.F) {
	for _, seed := range []string{
		"8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6b", "8f3c2a1e4b5d4e6f9a0b1c2d3e4f5a6b", "12345678901234567890",
		`{"id":"x","type":"member.erased","source":"s","observedAt":"2026-01-01T00:00:00Z","data":{"memberId":"m"}}`,
		`[{"id":"x"}]`, "-1234567890123456e10", "true-false-null-0000",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, code string) {
		if CheckChallengeCode(code) != nil {
			return
		}
		if len(code) < MinChallengeCode || len(code) > MaxChallengeCode {
			t.Fatalf("accepted %q of length %d", code, len(code))
		}
		if json.Valid([]byte(code)) {
			t.Fatalf("accepted %q, which is JSON", code)
		}
		raws, _, err := SplitBatch([]byte(code))
		if err != nil {
			return
		}
		for _, raw := range raws {
			if ev, err := Decode(raw, received); err == nil {
				t.Fatalf("accepted %q, which decodes as event %v", code, ev)
			}
		}
	})
}
