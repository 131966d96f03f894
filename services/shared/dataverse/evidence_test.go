package dataverse_test

import (
	"context"
	"errors"
	"testing"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// The evidence columns travel in the flag's own part of the $batch, and a
// nil value clears its column: one request sets and clears them all.
func TestBatchWritesTheEvidenceWithTheFlag(t *testing.T) {
	e := newEnv(t, defaultOpts)
	c := e.client(t, "secret")
	ctx := context.Background()
	set := map[string]any{"nac_orgchangereason": "Left Contoso in 2026-06", "nac_orgchangeconfidence": 0.93}
	results, err := c.Batch(ctx, []dataverse.FlagWrite{{ContactID: contactA, Column: "nac_flag", Value: 1, Also: set}})
	if err != nil || results[0] != nil {
		t.Fatalf("Batch: %v %v", err, results)
	}
	row, _ := e.standin.Row("contacts", contactA)
	if row["nac_flag"] != float64(1) || row["nac_orgchangereason"] != "Left Contoso in 2026-06" || row["nac_orgchangeconfidence"] != 0.93 {
		t.Fatalf("row = %v, want the flag and its evidence", row)
	}
	clear := map[string]any{"nac_orgchangereason": nil, "nac_orgchangeconfidence": nil}
	if err := c.PatchFlag(ctx, dataverse.FlagWrite{ContactID: contactA, Column: "nac_flag", Value: 0, Also: clear}); err != nil {
		t.Fatalf("PatchFlag: %v", err)
	}
	row, _ = e.standin.Row("contacts", contactA)
	if row["nac_flag"] != float64(0) || row["nac_orgchangereason"] != nil || row["nac_orgchangeconfidence"] != nil {
		t.Fatalf("row = %v, want the flag cleared with its evidence", row)
	}
	if got := e.standin.Patches(); got != 2 {
		t.Errorf("%d PATCH operations, want 2 (one per write)", got)
	}
	e.mu.Lock()
	n := len(e.requests)
	e.mu.Unlock()
	if n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

func TestEvidenceColumnsAreValidated(t *testing.T) {
	for name, also := range map[string]map[string]any{
		"crafted name": {"nac_x eq 1 or y": "v"},
		"the flag":     {"nac_flag": "v"},
		"not a value":  {"nac_x": []string{"a"}},
		"upper case":   {"Nac_X": "v"},
	} {
		w := dataverse.FlagWrite{ContactID: contactA, Column: "nac_flag", Value: 1, Also: also}
		if err := w.Validate(); !errors.Is(err, dataverse.ErrInvalidRequest) {
			t.Errorf("%s: Validate = %v, want ErrInvalidRequest", name, err)
		}
	}
}
