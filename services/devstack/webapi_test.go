package devstack_test

import (
	"bytes"
	"context"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/devstack"
	"github.com/notatcompany/notatcompany/services/nacctl/provision"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// seller talks to the stand-in's Web API as the demo seller (impersonated
// by the devstack's application user), as a person editing Dynamics does.
type seller struct {
	t *testing.T
	c *dataverse.Client
}

func (s seller) opts() *dataverse.RequestOptions {
	return &dataverse.RequestOptions{CallerID: devstack.DemoSyncUserID}
}

func (s seller) create(set string, cols map[string]any) string {
	s.t.Helper()
	res, _ := dataverse.Set(set)
	id, err := s.c.Create(context.Background(), res, cols, s.opts())
	if err != nil {
		s.t.Fatalf("create %s: %v", set, err)
	}
	return id
}

func (s seller) update(set, id string, cols map[string]any) {
	s.t.Helper()
	res, _ := dataverse.RowOf(set, id)
	if err := s.c.Update(context.Background(), res, cols, s.opts()); err != nil {
		s.t.Fatalf("update %s %s: %v", set, id, err)
	}
}

func (s seller) flag(id string) float64 {
	s.t.Helper()
	res, _ := dataverse.RowOf("contacts", id)
	var row map[string]any
	if err := s.c.Get(context.Background(), res, map[string][]string{"$select": {"nac_orgchangestatus"}}, nil, &row); err != nil {
		s.t.Fatal(err)
	}
	v, _ := row["nac_orgchangestatus"].(float64)
	return v
}

func (s seller) view(set, id string) []string {
	s.t.Helper()
	res, _ := dataverse.Set(set)
	rows, err := s.c.List(context.Background(), res, map[string][]string{"savedQuery": {id}}, s.opts(), 0)
	if err != nil {
		s.t.Fatal(err)
	}
	var ids []string
	for _, r := range rows {
		v, _ := r["contactid"].(string)
		if v == "" {
			v, _ = r["opportunityid"].(string)
		}
		ids = append(ids, v)
	}
	slices.Sort(ids)
	return ids
}

// TestWebAPIEndToEnd: rows are created and changed only through the
// stand-in's Web API; the webhooks the devstack registered at start carry
// every change to ingest, and the flags end right.
func TestWebAPIEndToEnd(t *testing.T) {
	t.Parallel()
	stack, _ := startStack(t, t.TempDir())
	c, err := dataverse.New(context.Background(), stack.StandinURL, dataverse.Credentials{TokenURL: stack.StandinURL + dataversetest.TokenPath,
		ClientID: devstack.ClientID, ClientSecret: stack.Secrets.ClientSecret}, dataverse.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := seller{t: t, c: c}

	// The devstack provisioned its stand-in: a second run changes nothing.
	cfg := provision.Defaults()
	cfg.Endpoint = provision.Endpoint{URL: stack.HTTPURL + "/webhooks/dataverse", Auth: provision.AuthWebhookKey, Key: stack.Secrets.WebhookKey}
	res, err := (&provision.Runner{Client: c, Config: cfg}).Provision(context.Background(), provision.DryRun)
	if err != nil || len(res.Drifted()) != 0 {
		t.Fatalf("the devstack's provisioning drifted: %v %+v", err, res.Drifted())
	}

	// A seller touches the demo account and contact in Dynamics: the
	// webhooks tell the validator about them.
	s.update("accounts", devstack.DemoAccountID, map[string]any{"websiteurl": "https://contoso.com"})
	s.update("contacts", devstack.DemoContactID, map[string]any{"jobtitle": "Procurement Manager"})
	// A colleague at the same account whom no profile mentions.
	other := s.create("contacts", map[string]any{"firstname": "Riley", "lastname": "Park", "emailaddress1": "riley.park@contoso.com",
		"parentcustomerid_account@odata.bind": "/accounts(" + devstack.DemoAccountID + ")"})
	opp := s.create("opportunities", map[string]any{"name": "Contoso renewal",
		"parentcontactid@odata.bind": "/contacts(" + devstack.DemoContactID + ")"})
	// Decided before the profile comes: the profile's decision is then the
	// one write of the flag, and any write after its echo the echo's.
	idle(t, stack)

	left := example(t, "profile-left.json")
	if code, body := post(t, stack.HTTPURL+"/webhooks/profile", left, map[string]string{"X-LI-Signature": sign(stack.Secrets.ProfileSecret, left)}); code != http.StatusAccepted {
		t.Fatalf("profile-left: %d %s", code, body)
	}
	testkit.Eventually(t, "the contact flagged", 10*time.Second, func() bool { return s.flag(devstack.DemoContactID) == 1 })

	// Our own write came back as a webhook (the flag is a filtering
	// attribute) and was dropped by its tag: no second write follows.
	settle := func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := stack.Standin.WaitWebhooks(ctx); err != nil {
			t.Fatal(err)
		}
	}
	settle()
	echo := false
	for _, d := range stack.Standin.Deliveries() {
		if d.Table == "contact" && d.RowID == devstack.DemoContactID && d.Message == "Update" && d.Status/100 == 2 && containsTag(d.Body) {
			echo = true
		}
	}
	if !echo {
		t.Error("the writer's PATCH raised no webhook carrying its tag")
	}
	patches := stack.Standin.Patches()
	time.Sleep(300 * time.Millisecond)
	if got := stack.Standin.Patches(); got != patches {
		t.Errorf("the echo of our write caused %d more writes", got-patches)
	}

	// The views show it, to its owner.
	ids, err := provision.ViewIDs(context.Background(), c, "nac_orgchangestatus")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.view("contacts", ids["My Contacts Not at Company"]); !slices.Equal(got, []string{devstack.DemoContactID}) {
		t.Errorf("My Contacts Not at Company = %v", got)
	}
	// The seller's new opportunity, and the demo one seeded at start.
	wantAtRisk := []string{opp, devstack.DemoOpportunityID}
	slices.Sort(wantAtRisk)
	if got := s.view("opportunities", ids["My Opportunities at Risk – Contact Left"]); !slices.Equal(slices.Sorted(slices.Values(got)), wantAtRisk) {
		t.Errorf("My Opportunities at Risk = %v, want %v", got, wantAtRisk)
	}

	// The seller moves the contact to the account of the company they
	// joined: the flag clears.
	fabrikam := s.create("accounts", map[string]any{"name": "Fabrikam, Inc.", "websiteurl": "https://www.fabrikam.com"})
	s.update("contacts", devstack.DemoContactID, map[string]any{"parentcustomerid_account@odata.bind": "/accounts(" + fabrikam + ")"})
	testkit.Eventually(t, "the flag cleared after the move", 10*time.Second, func() bool { return s.flag(devstack.DemoContactID) == 0 })
	settle()
	if got := s.flag(other); got != 0 {
		t.Errorf("the colleague no profile mentions has flag %v", got)
	}
}

func containsTag(body []byte) bool {
	return bytes.Contains(body, []byte(`"key":"tag","value":"notatcompany"`))
}
