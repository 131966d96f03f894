package devstack_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/devstack"
	"github.com/notatcompany/notatcompany/services/ingest"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// A flagged contact becomes a stakeholder of the demo opportunity through
// a connection created in Dynamics' Web API: the connection's webhook puts
// the opportunity in the at-risk list, saying how it links the contact;
// deactivating the connection takes it out again.
func TestStakeholderConnectionPutsOpportunityAtRisk(t *testing.T) {
	t.Parallel()
	stack, _ := startStack(t, t.TempDir())
	c, err := dataverse.New(context.Background(), stack.StandinURL, dataverse.Credentials{TokenURL: stack.StandinURL + dataversetest.TokenPath,
		ClientID: devstack.ClientID, ClientSecret: stack.Secrets.ClientSecret}, dataverse.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := seller{t: t, c: c}
	const role = "e0e0e0e0-0000-4000-8000-000000000001"
	stack.Standin.Seed("connectionroles", role, map[string]any{"name": "Stakeholder", "statecode": float64(0)})

	// A colleague of the demo contact, owned by the seller, who left.
	p := person{id: "5ea0e0e0-0000-4000-8000-000000000001", first: "Jordan", last: "Lee", left: true}
	s.create("contacts", map[string]any{"contactid": p.id, "firstname": p.first, "lastname": p.last, "fullname": p.first + " " + p.last,
		"emailaddress1": p.email(), "parentcustomerid_account@odata.bind": "/accounts(" + devstack.DemoAccountID + ")"})
	tell(t, stack, []person{p})
	testkit.Eventually(t, "the colleague flagged", 30*time.Second, func() bool { return s.flag(p.id) == 1 })
	if items := atRisk(t, stack); len(items) != 0 {
		t.Fatalf("at risk before any connection: %+v", items)
	}

	conn := s.create("connections", map[string]any{
		"record1id_opportunity@odata.bind": "/opportunities(" + devstack.DemoOpportunityID + ")",
		"record2id_contact@odata.bind":     "/contacts(" + p.id + ")",
		"record2roleid@odata.bind":         "/connectionroles(" + role + ")"})
	var items []ingest.ListItem
	testkit.Eventually(t, "the demo opportunity at risk through its stakeholder", 30*time.Second, func() bool {
		items = atRisk(t, stack)
		return len(items) == 1 && items[0].OpportunityID == devstack.DemoOpportunityID && items[0].ContactID == p.id &&
			len(items[0].Links) == 1 && items[0].Links[0].Via == "connection" && items[0].Links[0].ConnectionID == conn &&
			items[0].Links[0].RoleID == role
	}, func() string { return fmt.Sprintf("%+v", items) })
	if out := nacctlRun(t, stack, "explain", p.id); !strings.Contains(out, "through connection "+conn+" (role "+role+")") {
		t.Errorf("nacctl explain does not say how the opportunity links the contact:\n%s", out)
	}

	s.update("connections", conn, map[string]any{"statecode": 1})
	testkit.Eventually(t, "no longer at risk once the connection is inactive", 30*time.Second, func() bool {
		return len(atRisk(t, stack)) == 0
	})
	if s.flag(p.id) != 1 {
		t.Error("the contact's flag moved with the connection (it is in scope as the seller's own)")
	}
}

// A back-fill reads the connection table: a contact no sync user owns,
// linked only by a connection (seeded, so no webhook told of it) to the
// seller's demo opportunity, is in scope and flagged after the back-fill.
func TestBackfillReadsConnections(t *testing.T) {
	t.Parallel()
	stack, _ := startStack(t, t.TempDir())
	testkit.Eventually(t, "the start's back-fill", 60*time.Second, func() bool {
		st, ok := syncStatus(t, stack)
		return ok && st.State == syncjobs.StateDone
	})
	const other, conn = "5e5e5e5e-0000-4000-8000-0000000000ff", "c0c0c0c0-0000-4000-8000-000000000001"
	const account = "a1b2c3d4-0000-4000-8000-0000000000ff" // another seller's Contoso account
	stack.Standin.Seed("accounts", account, map[string]any{"name": "Contoso Ltd", "websiteurl": "https://www.contoso.com", "statecode": float64(0),
		"_ownerid_value": other, "_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "systemuser"})
	p := person{id: "5ea0e0e0-0000-4000-8000-000000000002", first: "Morgan", last: "Reyes", left: true}
	now := time.Now().UTC().Truncate(time.Second).Format(time.RFC3339)
	stack.Standin.Seed("contacts", p.id, map[string]any{
		"firstname": p.first, "lastname": p.last, "fullname": p.first + " " + p.last, "emailaddress1": p.email(),
		"statecode": float64(0), "modifiedon": now,
		"_parentcustomerid_value": account, "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "account",
		"_ownerid_value": other, "_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "systemuser",
	})
	tell(t, stack, []person{p})
	time.Sleep(300 * time.Millisecond) // the profile is applied; the contact is not known yet
	runJob(t, stack, "backfill")
	if flagOf(t, stack, p.id) != 0 {
		t.Fatal("a contact owned by another user was flagged without a connection")
	}
	stack.Standin.Seed("connections", conn, map[string]any{
		"_record1id_value": devstack.DemoOpportunityID, "record1objecttypecode": float64(3),
		"_record2id_value": p.id, "record2objecttypecode": float64(2), "statecode": float64(0), "modifiedon": now,
	})
	st := runJob(t, stack, "backfill")
	if tb := tableOf(st, "connection"); tb.Rows < 1 || !tb.Done {
		t.Errorf("connection table read %+v, want the connection", tb)
	}
	testkit.Eventually(t, "the stakeholder flagged after the back-fill", 30*time.Second, func() bool { return flagOf(t, stack, p.id) == 1 })
	// The evaluation is kept beside the decision, not before the write:
	// explain may answer the one before for a moment.
	var x ingest.Explanation
	testkit.Eventually(t, "explain names the connection", 10*time.Second, func() bool {
		x = ingest.Explanation{}
		code := adminGet(t, stack, "/contacts/"+p.id, &x)
		return code == 200 && x.Evaluation != nil && x.Evaluation.Scope.Via == "opportunity_connection" && x.Evaluation.Scope.ConnectionID == conn
	}, func() string { return fmt.Sprintf("explain: %+v", x.Evaluation) })
}
