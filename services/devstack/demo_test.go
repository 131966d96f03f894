package devstack_test

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/devstack"
	"github.com/notatcompany/notatcompany/services/devstack/demoorg"
)

// TestDemoRepeatable runs make demo's core twice against one devstack: the
// two tables are equal (each run brings people of its own), and they show
// what the demo is for: a leaver flagged with the reason and the suggested
// company, a stayer left at No Feedback, a seller's Ignore kept; then one
// flag cleared by the seller's move.
func TestDemoRepeatable(t *testing.T) {
	t.Parallel()
	stack, _ := startStack(t, t.TempDir())
	// One instant for both runs: the positions' months and the profile
	// dates in the reasons would differ across a midnight otherwise.
	now := time.Now()
	cfg := demoorg.Config{APIURL: stack.HTTPURL, StandinURL: stack.StandinURL, ClientID: devstack.ClientID,
		ClientSecret: stack.Secrets.ClientSecret, AdminToken: stack.Secrets.AdminToken, ProfileSecret: stack.Secrets.ProfileSecret,
		Timeout: 90 * time.Second, Quiet: 2 * time.Second, Now: now}
	var results []*demoorg.Result
	for i := range 2 {
		var out bytes.Buffer
		res, err := demoorg.Run(context.Background(), cfg, &out)
		t.Logf("run %d:\n%s", i+1, out.String())
		if err != nil {
			t.Fatalf("run %d: %v", i+1, err)
		}
		results = append(results, res)
	}
	first, second := results[0], results[1]
	if first.Run == second.Run {
		t.Errorf("both runs are %s: a run must bring people of its own", first.Run)
	}
	if !slices.Equal(first.Contacts, second.Contacts) {
		t.Errorf("the second table differs from the first:\n%v\n%v", first.Contacts, second.Contacts)
	}
	if !slices.Equal(first.Opportunities, second.Opportunities) {
		t.Errorf("the opportunities differ:\n%v\n%v", first.Opportunities, second.Opportunities)
	}

	var leaver, stayer, ignore bool
	for _, r := range second.Contacts {
		switch {
		case r.Case == demoorg.CaseLeaver && r.Flag == 1 && r.Reason != "" && r.SuggestedCompany != "":
			leaver = true
		case r.Case == demoorg.CaseStayer && r.Flag == 0 && r.Reason == "":
			stayer = true
		case r.Case == demoorg.CaseIgnore && r.Flag == 2:
			ignore = true
		}
	}
	if !leaver || !stayer || !ignore {
		t.Errorf("flagged leaver with reason and suggested company %v, No Feedback stayer %v, Ignore kept %v; want all:\n%v",
			leaver, stayer, ignore, second.Contacts)
	}
	if rev := second.Reversal; rev.Before.Flag != 1 || rev.After.Flag != 0 || rev.After.Reason != "" || rev.After.Account != rev.To {
		t.Errorf("reversal %+v: want flag 1 → 0, the reason cleared, at the account %s", rev, rev.To)
	}
	var atRisk int
	for _, o := range second.Opportunities {
		if o.AtRisk {
			atRisk++
		}
	}
	if atRisk == 0 || atRisk == len(second.Opportunities) {
		t.Errorf("%d of %d opportunities at risk: want some, not all", atRisk, len(second.Opportunities))
	}
}
