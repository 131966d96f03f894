package devstack_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/devstack"
	"github.com/notatcompany/notatcompany/services/nacctl"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// person is a contact of the demo account and what the profile source says.
type person struct {
	id, first, last string
	left            bool
}

func (p person) email() string { return strings.ToLower(p.first+"."+p.last) + "@contoso.com" }

func people(prefix string, n int) []person {
	var out []person
	for i := range n {
		out = append(out, person{id: fmt.Sprintf("%s-0000-4000-8000-%012d", prefix, i), first: "Pat" + prefix[:4],
			last: fmt.Sprintf("Number%d", i), left: i%3 != 0})
	}
	return out
}

// seed puts the contacts in the stand-in as rows that existed before
// install: no webhook is raised.
func seed(stack *devstack.Stack, ps []person) {
	for _, p := range ps {
		stack.Standin.Seed("contacts", p.id, map[string]any{
			"firstname": p.first, "lastname": p.last, "fullname": p.first + " " + p.last, "emailaddress1": p.email(),
			"statecode": float64(0), "modifiedon": time.Now().UTC().Truncate(time.Second).Format(time.RFC3339),
			"_parentcustomerid_value": devstack.DemoAccountID, "_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "account",
			"_ownerid_value": devstack.DemoSyncUserID, "_ownerid_value@Microsoft.Dynamics.CRM.lookuplogicalname": "systemuser",
		})
	}
}

// tell posts each person's profile: the leavers left Contoso for Fabrikam,
// the others are still there.
func tell(t *testing.T, stack *devstack.Stack, ps []person) {
	t.Helper()
	for i, p := range ps {
		sum := sha256.Sum256([]byte(p.email()))
		positions := []map[string]any{{"companyId": "c-contoso", "companyName": "Contoso Ltd", "title": "Buyer",
			"start": map[string]int{"year": 2019, "month": 3}, "current": true}}
		if p.left {
			positions = []map[string]any{
				{"companyId": "c-fabrikam", "companyName": "Fabrikam, Inc.", "title": "Buyer", "start": map[string]int{"year": 2026, "month": 10}, "current": true},
				{"companyId": "c-contoso", "companyName": "Contoso Ltd", "title": "Buyer", "start": map[string]int{"year": 2019, "month": 3},
					"end": map[string]int{"year": 2026, "month": 9}, "current": false},
			}
		}
		body, _ := json.Marshal(map[string]any{"id": fmt.Sprintf("sync-test-%s-%d", p.id, i), "type": "profile.changed", "source": "demo-feed",
			"observedAt": time.Now().UTC().Add(-time.Hour).Format(time.RFC3339),
			"data": map[string]any{"memberId": "m-" + p.id, "firstName": p.first, "lastName": p.last, "country": "GB",
				"emailSha256": []string{hex.EncodeToString(sum[:])}, "positions": positions}})
		if code, b := post(t, stack.HTTPURL+"/webhooks/profile", body, map[string]string{"X-LI-Signature": sign(stack.Secrets.ProfileSecret, body)}); code != http.StatusAccepted {
			t.Fatalf("profile of %s: %d %s", p.id, code, b)
		}
	}
}

func flagOf(t *testing.T, stack *devstack.Stack, id string) float64 {
	t.Helper()
	row, ok := stack.Standin.Row("contacts", id)
	if !ok {
		t.Fatalf("contact %s is gone", id)
	}
	v, _ := row["nac_orgchangestatus"].(float64)
	return v
}

// wantFlags waits until every leaver is flagged and no one else is.
func wantFlags(t *testing.T, stack *devstack.Stack, ps []person, what string) {
	t.Helper()
	testkit.Eventually(t, what, 60*time.Second, func() bool {
		for _, p := range ps {
			want := 0.0
			if p.left {
				want = 1
			}
			if flagOf(t, stack, p.id) != want {
				return false
			}
		}
		return true
	})
}

func settings(t *testing.T, stack *devstack.Stack, on bool) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, stack.HTTPURL+"/admin/orgs/"+devstack.DemoOrganizationID+"/settings",
		strings.NewReader(fmt.Sprintf(`{"dataValidation":%t,"reflagAfterIgnore":true}`, on)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+stack.Secrets.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("settings: %d", resp.StatusCode)
	}
}

func syncStatus(t *testing.T, stack *devstack.Stack) (syncjobs.Status, bool) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, stack.HTTPURL+"/admin/orgs/"+devstack.DemoOrganizationID+"/sync-status", nil)
	req.Header.Set("Authorization", "Bearer "+stack.Secrets.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st syncjobs.Status
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&st) != nil {
		return st, false
	}
	return st, true
}

// runJob asks for a job through the admin API and waits for its end.
func runJob(t *testing.T, stack *devstack.Stack, path string) syncjobs.Status {
	t.Helper()
	code, body := post(t, stack.HTTPURL+"/admin/orgs/"+devstack.DemoOrganizationID+"/"+path, nil,
		map[string]string{"Authorization": "Bearer " + stack.Secrets.AdminToken})
	if code != http.StatusAccepted {
		t.Fatalf("%s: %d %s", path, code, body)
	}
	var acc struct {
		RequestID string `json:"requestId"`
	}
	_ = json.Unmarshal(body, &acc)
	var st syncjobs.Status
	testkit.Eventually(t, path+" done", 60*time.Second, func() bool {
		var ok bool
		st, ok = syncStatus(t, stack)
		return ok && st.JobID == acc.RequestID && st.State != syncjobs.StateRunning
	})
	if st.State != syncjobs.StateDone {
		t.Fatalf("%s: %s: %s", path, st.State, st.Error)
	}
	return st
}

func tableOf(st syncjobs.Status, name string) syncjobs.Table {
	for _, tb := range st.Tables {
		if tb.Name == name {
			return tb
		}
	}
	return syncjobs.Table{}
}

// An organization that existed before install: its contacts are rows no
// webhook ever told about. Switching data validation on back-fills them,
// and every leaver among them is flagged.
func TestSwitchingOnBackfillsAndFlagsEveryLeaver(t *testing.T) {
	t.Parallel()
	stack, _ := startStack(t, t.TempDir())
	testkit.Eventually(t, "the start's back-fill", 60*time.Second, func() bool {
		st, ok := syncStatus(t, stack)
		return ok && st.State == syncjobs.StateDone && st.DataValidation
	})
	settings(t, stack, false)
	testkit.Eventually(t, "switched off", 10*time.Second, func() bool { st, ok := syncStatus(t, stack); return ok && !st.DataValidation })
	ps := people("aaaa0001", 30)
	seed(stack, ps)
	tell(t, stack, ps)
	time.Sleep(300 * time.Millisecond) // the profiles are applied; no contact is known yet
	for _, p := range ps {
		if flagOf(t, stack, p.id) != 0 {
			t.Fatalf("%s flagged before any back-fill", p.id)
		}
	}
	settings(t, stack, true)
	wantFlags(t, stack, ps, "every leaver flagged after switching on")
	testkit.Eventually(t, "the enable job done", 30*time.Second, func() bool {
		st, ok := syncStatus(t, stack)
		return ok && st.Kind == syncjobs.KindEnable && st.State == syncjobs.StateDone
	})
	st, _ := syncStatus(t, stack)
	if c := tableOf(st, "contact"); c.Rows < len(ps) || c.Mode != "full" || !c.Done {
		t.Errorf("contact table read %+v, want at least %d rows, full, done", c, len(ps))
	}
	if st.Requests == 0 || st.EventsPublished < len(ps) {
		t.Errorf("job %+v: want requests counted and every row published", st)
	}
}

// Lost webhooks are healed by the next sweep's delta read; an expired
// delta token makes the sweep read the table in full again.
func TestSweepHealsLostWebhooksAndExpiredTokens(t *testing.T) {
	t.Parallel()
	stack, _ := startStack(t, t.TempDir())
	testkit.Eventually(t, "the start's back-fill", 60*time.Second, func() bool {
		st, ok := syncStatus(t, stack)
		return ok && st.State == syncjobs.StateDone
	})
	runJob(t, stack, "backfill") // every table has a delta link now
	c, err := dataverse.New(context.Background(), stack.StandinURL, dataverse.Credentials{TokenURL: stack.StandinURL + dataversetest.TokenPath,
		ClientID: devstack.ClientID, ClientSecret: stack.Secrets.ClientSecret}, dataverse.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	s := seller{t: t, c: c}

	// A seller creates contacts; Dynamics fails to deliver every webhook.
	lost := people("bbbb0002", 12)
	stack.Standin.InjectWebhookFaults(dataversetest.WebhookFaults{Drop: len(lost)})
	for _, p := range lost {
		s.create("contacts", map[string]any{"contactid": p.id, "firstname": p.first, "lastname": p.last, "emailaddress1": p.email(),
			"parentcustomerid_account@odata.bind": "/accounts(" + devstack.DemoAccountID + ")"})
	}
	if err := stack.Standin.WaitWebhooks(context.Background()); err != nil {
		t.Fatal(err)
	}
	dropped := 0
	for _, d := range stack.Standin.Deliveries() {
		if d.Dropped {
			dropped++
		}
	}
	if dropped != len(lost) {
		t.Fatalf("%d webhooks dropped, want %d", dropped, len(lost))
	}
	tell(t, stack, lost)
	time.Sleep(300 * time.Millisecond)
	for _, p := range lost {
		if flagOf(t, stack, p.id) != 0 {
			t.Fatalf("%s flagged though its webhook was lost", p.id)
		}
	}
	st := runJob(t, stack, "sync")
	wantFlags(t, stack, lost, "every lost contact flagged after the sweep")
	if c := tableOf(st, "contact"); c.Mode != "delta" || c.Rows < len(lost) {
		t.Errorf("contact table %+v, want a delta read with the %d lost rows", c, len(lost))
	}

	// The delta tokens expire (as after ExpireChangeTrackingInDays); rows
	// added meanwhile without webhooks are found by a full read.
	stack.Standin.ExpireDeltaTokens()
	quiet := people("cccc0003", 9)
	seed(stack, quiet)
	tell(t, stack, quiet)
	st = runJob(t, stack, "sync")
	wantFlags(t, stack, quiet, "every contact flagged after the full re-read")
	if c := tableOf(st, "contact"); c.Mode != "full (token expired)" || c.Rows < len(lost)+len(quiet) {
		t.Errorf("contact table %+v, want a full re-read after the expired token", c)
	}
}

// nacctl backfill goes through the admin API, shows its progress and ends
// with a summary table.
func TestNacctlBackfillShowsProgressAndSummary(t *testing.T) {
	t.Parallel()
	stack, _ := startStack(t, t.TempDir())
	seed(stack, people("dddd0004", 20))
	env := map[string]string{"NAC_API_URL": stack.HTTPURL, "NAC_ADMIN_TOKEN": stack.Secrets.AdminToken, "NAC_POLL": "50ms"}
	cfg, err := nacctl.ParseSyncConfig([]string{"backfill", "--org", devstack.DemoOrganizationID}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := nacctl.RunSync(context.Background(), cfg, http.DefaultClient, &out); err != nil {
		t.Fatalf("nacctl backfill: %v\n%s", err, out.String())
	}
	for _, want := range []string{"backfill of organization " + devstack.DemoOrganizationID + " requested", "[########################] 100%",
		"events ", "evaluated ", "flags to write ", "TABLE", "MODE", "contact", "full", "backfill done in", "Dataverse requests:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	t.Logf("nacctl backfill:\n%s", strings.ReplaceAll(out.String(), "\r", "\n"))
}
