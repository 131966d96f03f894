package devstack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/devstack"
	"github.com/notatcompany/notatcompany/services/ingest"
	"github.com/notatcompany/notatcompany/services/nacctl"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// adminGet reads an admin API resource into out; it reports the status.
func adminGet(t *testing.T, stack *devstack.Stack, path string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, stack.HTTPURL+"/admin/orgs/"+devstack.DemoOrganizationID+path, nil)
	req.Header.Set("Authorization", "Bearer "+stack.Secrets.AdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

func explainDemo(t *testing.T, stack *devstack.Stack) ingest.Explanation {
	t.Helper()
	var x ingest.Explanation
	if code := adminGet(t, stack, "/contacts/"+devstack.DemoContactID, &x); code != http.StatusOK {
		t.Fatalf("explain: status %d", code)
	}
	return x
}

// waitExplained waits until explain says reason for the demo contact.
func waitExplained(t *testing.T, stack *devstack.Stack, reason string) ingest.Explanation {
	t.Helper()
	var x ingest.Explanation
	testkit.Eventually(t, "explain says "+reason, 20*time.Second, func() bool {
		x = explainDemo(t, stack)
		return x.Evaluation != nil && x.Evaluation.Reason == reason
	}, func() string { return x.Summary })
	return x
}

func atRisk(t *testing.T, stack *devstack.Stack) []ingest.ListItem {
	t.Helper()
	var page ingest.ListPage
	if code := adminGet(t, stack, "/at-risk", &page); code != http.StatusOK {
		t.Fatalf("at-risk: status %d", code)
	}
	return page.Items
}

func nacctlRun(t *testing.T, stack *devstack.Stack, args ...string) string {
	t.Helper()
	env := map[string]string{"NAC_API_URL": stack.HTTPURL, "NAC_ADMIN_TOKEN": stack.Secrets.AdminToken, "NAC_ORG": devstack.DemoOrganizationID}
	cfg, err := nacctl.ParseExplainConfig(args, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := nacctl.RunExplain(context.Background(), cfg, http.DefaultClient, &out); err != nil {
		t.Fatalf("nacctl %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func postProfile(t *testing.T, stack *devstack.Stack, body []byte) {
	t.Helper()
	if code, b := post(t, stack.HTTPURL+"/webhooks/profile", body, map[string]string{"X-LI-Signature": sign(stack.Secrets.ProfileSecret, body)}); code != http.StatusAccepted {
		t.Fatalf("profile: status %d %s", code, b)
	}
}

// TestExplainListAndReview walks explain for a flagged, an out-of-scope and
// a No Feedback contact, the at-risk list while the demo contact is
// flagged, and a review approve/reject round trip that ends in the stand-in.
func TestExplainListAndReview(t *testing.T) {
	t.Parallel()
	stack, _ := startStack(t, t.TempDir())
	dvURL := stack.HTTPURL + "/webhooks/dataverse?code=" + stack.Secrets.WebhookKey
	for _, name := range []string{"dataverse-contact-update.json", "dataverse-account-update.json"} {
		if code, body := post(t, dvURL, example(t, name), nil); code != http.StatusAccepted {
			t.Fatalf("%s: status %d %s", name, code, body)
		}
	}
	postProfile(t, stack, example(t, "profile-left.json"))
	testkit.Eventually(t, "flag set to 1", 10*time.Second, func() bool { return flag(t, stack) == 1 })

	// Flagged: the evidence, the scope path, the decision and its write,
	// and the value in Dynamics from our write.
	x := waitExplained(t, stack, "left_company")
	testkit.Eventually(t, "the write in the history", 10*time.Second, func() bool {
		x = explainDemo(t, stack)
		return x.LastWrite != nil && x.LastWrite.Outcome == "written"
	})
	ev := x.Evaluation
	if ev.Value != 1 || ev.Evidence.MemberID != "m-avery-quinn" || ev.Evidence.CurrentPosition == nil ||
		ev.Evidence.CurrentPosition.CompanyName != "Fabrikam, Inc." || !ev.Scope.InScope || ev.Scope.Via != "contact_owner" ||
		ev.Scope.UserID != devstack.DemoSyncUserID || len(ev.Evidence.Features) == 0 && ev.Evidence.MemberMatch == "" {
		t.Errorf("flagged: %+v", ev)
	}
	if x.Dynamics.Source != "write" || x.Dynamics.Value == nil || *x.Dynamics.Value != 1 || x.LastDecision == nil || x.LastDecision.Value != 1 {
		t.Errorf("Dynamics %+v, last decision %+v", x.Dynamics, x.LastDecision)
	}
	kinds := map[string]bool{}
	for _, e := range x.History.Entries {
		kinds[e.Kind] = true
	}
	if !kinds["decision"] || !kinds["write"] {
		t.Errorf("history %+v, want the decision and its write", x.History)
	}
	out := nacctlRun(t, stack, "explain", devstack.DemoContactID)
	if !strings.Contains(out, "Not at Company: left Contoso Ltd in 2026-09; now Head of Procurement at Fabrikam, Inc.") ||
		!strings.Contains(out, "in scope through the contact owner") {
		t.Errorf("nacctl explain:\n%s", out)
	}
	t.Logf("nacctl explain:\n%s", out)

	// The demo opportunity is at risk while its contact is flagged (the
	// start's back-fill brought it in).
	testkit.Eventually(t, "the demo opportunity at risk", 30*time.Second, func() bool {
		items := atRisk(t, stack)
		return len(items) == 1 && items[0].OpportunityID == devstack.DemoOpportunityID && items[0].ContactID == devstack.DemoContactID &&
			items[0].Evidence != nil && items[0].Evidence.MemberID == "m-avery-quinn"
	})
	if out := nacctlRun(t, stack, "list", "at-risk"); !strings.Contains(out, devstack.DemoOpportunityID) || !strings.Contains(out, "Fabrikam, Inc.") {
		t.Errorf("nacctl list at-risk:\n%s", out)
	}
	var flagged ingest.ListPage
	if adminGet(t, stack, "/flagged", &flagged); len(flagged.Items) != 1 || flagged.Items[0].ContactID != devstack.DemoContactID {
		t.Errorf("flagged list %+v", flagged)
	}

	// Out of scope, and why: no owner along the three rules is a sync user.
	syncUser := stack.HTTPURL + "/admin/orgs/" + devstack.DemoOrganizationID + "/sync-users/" + devstack.DemoSyncUserID
	if code := admin(t, http.MethodDelete, syncUser, stack.Secrets.AdminToken); code != http.StatusAccepted {
		t.Fatalf("remove sync user: status %d", code)
	}
	x = waitExplained(t, stack, "out_of_scope")
	if ev := x.Evaluation; ev.Value != 0 || ev.Scope.InScope || len(ev.Scope.Checks) != 3 || ev.Scope.Checks[2].RowID != devstack.DemoOpportunityID {
		t.Errorf("out of scope: %+v", ev.Scope)
	}
	if !strings.Contains(x.Summary, "out of scope: the contact's owner (user "+devstack.DemoSyncUserID+") is not a sync user") {
		t.Errorf("summary %q", x.Summary)
	}
	testkit.Eventually(t, "flag cleared out of scope", 10*time.Second, func() bool { return flag(t, stack) == 0 })
	if items := atRisk(t, stack); len(items) != 0 {
		t.Errorf("at risk with the contact out of scope: %+v", items)
	}
	if code := admin(t, http.MethodPut, syncUser, stack.Secrets.AdminToken); code != http.StatusAccepted {
		t.Fatalf("add sync user: status %d", code)
	}
	testkit.Eventually(t, "flag set again in scope", 10*time.Second, func() bool { return flag(t, stack) == 1 })

	// No Feedback: back at Contoso.
	postProfile(t, stack, example(t, "profile-back.json"))
	x = waitExplained(t, stack, "still_at_company")
	if x.Evaluation.Value != 0 || !strings.HasPrefix(x.Summary, "No Feedback: still at Contoso Ltd") {
		t.Errorf("back: %+v %q", x.Evaluation, x.Summary)
	}
	testkit.Eventually(t, "flag cleared", 10*time.Second, func() bool { return flag(t, stack) == 0 })

	// Review: a later leave below a threshold of 0.99 is a candidate;
	// approved it is written, rejected it is cleared again.
	req, _ := http.NewRequest(http.MethodPut, stack.HTTPURL+"/admin/orgs/"+devstack.DemoOrganizationID+"/settings",
		strings.NewReader(`{"dataValidation":true,"reflagAfterIgnore":true,"confidenceThreshold":0.99}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+stack.Secrets.AdminToken)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("settings: %v %v", resp, err)
	}
	var again map[string]any
	if err := json.Unmarshal(example(t, "profile-left.json"), &again); err != nil {
		t.Fatal(err)
	}
	again["id"], again["observedAt"] = "demo-review", time.Now().UTC().Add(-time.Minute).Format(time.RFC3339)
	body, _ := json.Marshal(again)
	postProfile(t, stack, body)
	x = waitExplained(t, stack, "below_threshold")
	if !x.Evaluation.Candidate || x.Evaluation.Threshold != 0.99 || x.Evaluation.Confidence >= 0.99 {
		t.Errorf("candidate: %+v", x.Evaluation)
	}
	if out := nacctlRun(t, stack, "list", "candidates"); !strings.Contains(out, devstack.DemoContactID) {
		t.Errorf("nacctl list candidates:\n%s", out)
	}
	nacctlRun(t, stack, "review", "approve", devstack.DemoContactID, "--reviewer", "ops@contoso.example")
	testkit.Eventually(t, "the approved flag in the stand-in", 10*time.Second, func() bool { return flag(t, stack) == 1 })
	x = waitExplained(t, stack, "reviewed")
	if x.Evaluation.Reviewer != "ops@contoso.example" || x.Evaluation.Review == nil || x.Evaluation.Review.Action != "approve" {
		t.Errorf("approved: %+v", x.Evaluation)
	}
	row, _ := stack.Standin.Row("contacts", devstack.DemoContactID)
	if reason, _ := row["nac_orgchangereason"].(string); !strings.Contains(reason, "reviewed by ops@contoso.example") {
		t.Errorf("the reason column in the stand-in: %q", reason)
	}
	nacctlRun(t, stack, "review", "reject", devstack.DemoContactID, "--reviewer", "lead@contoso.example")
	testkit.Eventually(t, "the rejected flag cleared in the stand-in", 10*time.Second, func() bool { return flag(t, stack) == 0 })
	waitExplained(t, stack, "review_rejected")
	testkit.Eventually(t, "both reviews in the history", 10*time.Second, func() bool {
		reviews := 0
		for _, e := range explainDemo(t, stack).History.Entries {
			if e.Review != nil && e.Review.Outcome == "applied" {
				reviews++
			}
		}
		return reviews == 2
	})
}
