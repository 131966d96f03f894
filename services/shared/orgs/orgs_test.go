package orgs_test

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/orgs"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// Organizations lists every organization with settings, GUIDs and
// tokenized ids alike, sorted; none is an empty list, not an error.
func TestOrganizations(t *testing.T) {
	ctx := context.Background()
	js, _ := testkit.JetStream(t)
	if err := bus.Declare(ctx, js, bus.DefaultOptions()); err != nil {
		t.Fatal(err)
	}
	r, err := orgs.NewReader(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.Organizations(ctx); err != nil || len(got) != 0 {
		t.Fatalf("no organizations = %v, %v; want an empty list", got, err)
	}
	kv, err := js.KeyValue(ctx, bus.BucketOrgs)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(orgs.Settings{DataValidation: true})
	for _, org := range []string{"6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f", "0a1b2c3d-0000-4000-8000-000000000001", "org.with.dots"} {
		if _, err := kv.Put(ctx, orgs.SettingsKey(org), b); err != nil {
			t.Fatal(err)
		}
	}
	got, err := r.Organizations(ctx)
	want := []string{"0a1b2c3d-0000-4000-8000-000000000001", "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f", "org.with.dots"}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("Organizations = %v, %v; want %v", got, err, want)
	}
}
