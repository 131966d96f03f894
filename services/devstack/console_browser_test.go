package devstack_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/notatcompany/notatcompany/services/devstack"
	"github.com/notatcompany/notatcompany/services/devstack/demoorg"
	"github.com/notatcompany/notatcompany/services/ingest/console"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
	"github.com/notatcompany/notatcompany/services/shared/deadletters"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// consoleScreenshots is where the browser test leaves a screenshot of
// every page it loaded (ignored by git); NAC_SCREENSHOT_DIR moves it.
const consoleScreenshots = "testdata/out/console"

// chromium finds Debian's chromium (or another Chromium) on the PATH.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("the console's browser test needs Chromium, which CI installs (apt-get install chromium): it is missing")
	}
	t.Skip("skipped: the console's browser test needs Chromium (apt-get install chromium), which is not installed")
	return ""
}

// browser is one headless Chromium tab, and where its screenshots go.
type browser struct {
	t    *testing.T
	ctx  context.Context
	out  string
	base string
}

func newBrowser(t *testing.T, base string) *browser {
	t.Helper()
	exe := chromium(t)
	out := os.Getenv("NAC_SCREENSHOT_DIR")
	if out == "" {
		out = consoleScreenshots
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.WindowSize(1400, 1000), chromedp.UserDataDir(t.TempDir()))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	ctx, cancelTime := context.WithTimeout(ctx, 2*time.Minute)
	t.Cleanup(func() { cancelTime(); cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start %s: %v", exe, err)
	}
	return &browser{t: t, ctx: ctx, out: out, base: base}
}

func (b *browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// get runs one action that returns a value.
func get[T any](b *browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// timing is how long the page's response took: the server's own account
// (Server-Timing) and the browser's, from the navigation's start to the
// response's end.
type timing struct {
	Server float64 `json:"server"`
	Total  float64 `json:"total"`
}

const timingJS = `(() => {
  const n = performance.getEntriesByType('navigation')[0];
  const st = n.serverTiming.find(e => e.name === 'page');
  return {server: st ? st.duration : -1, total: n.responseEnd - n.startTime};
})()`

// page opens path, waits for sel, saves a screenshot as name.png, and
// returns the text of sel and the page's timing.
func (b *browser) page(name, path, sel string) (string, timing) {
	b.t.Helper()
	b.do("open "+path, chromedp.Navigate(b.base+path), chromedp.WaitVisible(chromedp.CSS(sel)))
	text := get(b, "the text of "+sel, chromedp.Text(chromedp.CSS(sel)))
	tm := get(b, "the timing of "+path, chromedp.Evaluate[timing](timingJS))
	shot := get(b, "a screenshot of "+path, chromedp.FullScreenshot(100))
	if err := os.WriteFile(filepath.Join(b.out, name+".png"), shot, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return text, tm
}

// TestConsoleInABrowser logs in to the console of a devstack holding the
// demo organization with headless Chromium, loads every page of the
// organization, checks what each shows, saves a screenshot of each, and
// holds each to 100 ms on the server.
func TestConsoleInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("skipped in -short: starts a devstack and Chromium")
	}
	chromium(t) // skip (or, in CI, fail) before starting anything
	stack, _ := startStack(t, t.TempDir())
	cfg := demoorg.Config{APIURL: stack.HTTPURL, StandinURL: stack.StandinURL, ClientID: devstack.ClientID,
		ClientSecret: stack.Secrets.ClientSecret, AdminToken: stack.Secrets.AdminToken, ProfileSecret: stack.Secrets.ProfileSecret,
		Timeout: 90 * time.Second, Quiet: time.Second}
	var demoOut bytes.Buffer
	demo, err := demoorg.Run(context.Background(), cfg, &demoOut)
	if err != nil {
		t.Fatalf("the demo organization: %v\n%s", err, demoOut.String())
	}
	// A flagged leaver of the demo whose opportunity is at risk (not the
	// one the demo reverses), and a stayer.
	leaver, stayer := "", ""
	for i, r := range demo.Contacts {
		switch {
		case r.Contact == "Drew Patel" && r.Flag == 1:
			leaver = demo.ContactIDs[i]
		case r.Case == demoorg.CaseStayer && stayer == "":
			stayer = demo.ContactIDs[i]
		}
	}
	if leaver == "" || stayer == "" {
		t.Fatalf("the demo has no flagged Drew Patel or no stayer:\n%s", demoOut.String())
	}
	// A decision Dataverse refuses with 400 is set aside: the dead letter
	// the console redrives below.
	stack.Standin.Inject(dataversetest.Fault{Status: http.StatusBadRequest, Row: devstack.DemoContactID, Count: 1})
	left := example(t, "profile-left.json")
	if code, body := post(t, stack.HTTPURL+"/webhooks/profile", left, map[string]string{"X-LI-Signature": sign(stack.Secrets.ProfileSecret, left)}); code != http.StatusAccepted {
		t.Fatalf("profile-left: status %d %s", code, body)
	}
	var dead deadletters.Page
	testkit.Eventually(t, "the refused decision set aside", 15*time.Second, func() bool {
		return adminJSON(t, stack, http.MethodGet, "/admin/deadletters?consumer="+bus.ConsumerWriter, &dead) == http.StatusOK && len(dead.DeadLetters) == 1
	})
	seq := strconv.FormatUint(dead.DeadLetters[0].Sequence, 10)

	b := newBrowser(t, stack.HTTPURL)
	org := devstack.DemoOrganizationID

	// Not logged in: the login form, which takes the admin token.
	text, _ := b.page("login", "/console/orgs/"+org+"/", "form.login")
	if !strings.Contains(text, "Admin token") {
		t.Fatalf("the login form says %q", text)
	}
	b.do("log in", chromedp.SendKeys(chromedp.CSS(`input[name="name"]`), "Browser Test"),
		chromedp.SendKeys(chromedp.CSS(`input[name="token"]`), stack.Secrets.AdminToken),
		chromedp.Submit(chromedp.CSS("form.login")), chromedp.WaitVisible(chromedp.CSS("#validation")))
	if who := get(b, "who is logged in", chromedp.Text(chromedp.CSS(".who"))); who != "Browser Test" {
		t.Errorf("logged in as %q", who)
	}

	pages := []struct {
		name, path, sel string
		want            []string
	}{
		{"home", "/console/", "main", []string{org, "Every dead letter"}},
		{"status", "/console/orgs/" + org + "/", "main", []string{"Data validation", "On", devstack.DemoSyncUserID, "Sync job", "contact"}},
		{"flagged", "/console/orgs/" + org + "/flagged", "#rows", []string{leaver, "left_company", "93%"}},
		{"at-risk", "/console/orgs/" + org + "/at-risk", "#rows", []string{leaver, "left_company"}},
		{"review", "/console/orgs/" + org + "/review", "main", []string{"Review queue", "None."}},
		{"explain-leaver", "/console/orgs/" + org + "/contacts/" + leaver, "main", []string{"Not at Company", "left_company", "In scope",
			"email", "History", "written"}},
		{"explain-stayer", "/console/orgs/" + org + "/contacts/" + stayer, "main", []string{"No Feedback", "still_at_company"}},
		{"deadletters", "/console/orgs/" + org + "/deadletters", "main", []string{"Dead letters", seq, "writer", "Decision", "400", "Redrive"}},
		{"explain", "/console/orgs/" + org + "/contacts/" + devstack.DemoContactID, "main", []string{devstack.DemoContactID, "Not at Company"}},
		{"all-deadletters", "/console/deadletters", "main", []string{"Dead letters"}},
	}
	for _, p := range pages {
		text, tm := b.page(p.name, p.path, p.sel)
		for _, w := range p.want {
			if !strings.Contains(text, w) {
				t.Errorf("%s: the page lacks %q:\n%s", p.name, w, text)
			}
		}
		// The times are figures, not a pass mark: a loaded machine is slow.
		t.Logf("%-16s server %5.1f ms, browser %5.1f ms", p.name, tm.Server, tm.Total)
		if tm.Server < 0 {
			t.Errorf("%s: the page states no server time (Server-Timing)", p.name)
		}
	}

	// Redrive the dead letter (the stand-in refused that one write only):
	// it is gone from the page, and the flag lands in Dynamics.
	b.page("deadletters-before-redrive", "/console/orgs/"+org+"/deadletters", "#rows")
	b.do("redrive", chromedp.Click(chromedp.CSS(`form[action$="/deadletters/`+seq+`/redrive"] button`)),
		chromedp.WaitVisible(chromedp.CSS(".notice")))
	text, _ = b.page("deadletters-after-redrive", "/console/orgs/"+org+"/deadletters?done=redriven", "main")
	if !strings.Contains(text, "Redriven") || !strings.Contains(text, "None: every message was handled") {
		t.Errorf("after the redrive the page says %q", text)
	}
	testkit.Eventually(t, "the redriven flag in the stand-in", 15*time.Second, func() bool { return storedFlag(stack) == "1" })
	if action := lastDeadLetterAction(t, stack); action.GetAction() != deadletters.ActionRedrive || action.GetActor() != "Browser Test" ||
		action.GetTokenFingerprint() != console.Fingerprint(stack.Secrets.AdminToken) {
		t.Errorf("the redrive's audit record %v: want the console's user and token", action)
	}

	// A candidate below the threshold, approved in the console: the
	// organization's threshold goes above an email match's confidence, and
	// a new contact of the demo account left Contoso.
	candidate := newCandidate(t, stack)
	b.page("review-queue", "/console/orgs/"+org+"/review", "#rows")
	b.do("approve", chromedp.Click(chromedp.CSS(`form[action$="/review/`+candidate+`"] button[value="approve"]`)),
		chromedp.WaitVisible(chromedp.CSS(".notice")))
	if text := get(b, "the notice", chromedp.Text(chromedp.CSS(".notice"))); !strings.Contains(text, "Approved") {
		t.Errorf("after approving the notice says %q", text)
	}
	testkit.Eventually(t, "the approved contact flagged in the stand-in", 15*time.Second, func() bool {
		row, _ := stack.Standin.Row("contacts", candidate)
		return row["nac_orgchangestatus"] == float64(1)
	})
	text, _ = b.page("explain-approved", "/console/orgs/"+org+"/contacts/"+candidate, "main")
	for _, w := range []string{"Not at Company", "reviewed", "Browser Test"} {
		if !strings.Contains(text, w) {
			t.Errorf("the approved contact's explain page lacks %q:\n%s", w, text)
		}
	}

	// Logging out ends the session: the console asks for the token again.
	b.do("log out", chromedp.Click(chromedp.CSS("form.logout button")), chromedp.WaitVisible(chromedp.CSS("form.login")))
	text, _ = b.page("after-logout", "/console/orgs/"+org+"/", "main")
	if !strings.Contains(text, "Admin token") {
		t.Errorf("after logging out the status page shows %q", text)
	}
}

// newCandidate raises the demo organization's threshold above an email
// match's confidence (0.95 × 0.98), then has a contact of the demo account
// leave Contoso: it waits for the contact among the candidates below the
// threshold, and returns it.
func newCandidate(t *testing.T, stack *devstack.Stack) string {
	t.Helper()
	org := devstack.DemoOrganizationID
	settings := `{"dataValidation":true,"confidenceThreshold":0.95,"reflagAfterIgnore":true}`
	req, _ := http.NewRequest(http.MethodPut, stack.HTTPURL+"/admin/orgs/"+org+"/settings", strings.NewReader(settings))
	req.Header.Set("Authorization", "Bearer "+stack.Secrets.AdminToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("raise the threshold: %v %v", err, resp)
	}
	resp.Body.Close()
	testkit.Eventually(t, "the threshold applied", 10*time.Second, func() bool {
		var st struct{ ConfidenceThreshold float64 }
		return adminJSON(t, stack, http.MethodGet, "/admin/orgs/"+org+"/settings", &st) == http.StatusOK && st.ConfidenceThreshold == 0.95
	})

	c, err := dataverse.New(context.Background(), stack.StandinURL, dataverse.Credentials{TokenURL: stack.StandinURL + dataversetest.TokenPath,
		ClientID: devstack.ClientID, ClientSecret: stack.Secrets.ClientSecret}, dataverse.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	email := "casey.candidate@contoso.com"
	id := seller{t: t, c: c}.create("contacts", map[string]any{"firstname": "Casey", "lastname": "Candidate", "emailaddress1": email,
		"jobtitle": "Buyer", "parentcustomerid_account@odata.bind": "/accounts(" + devstack.DemoAccountID + ")"})
	now := time.Now().UTC()
	ended := now.AddDate(0, -2, 0)
	sum := sha256.Sum256([]byte(email))
	body, _ := json.Marshal(map[string]any{"id": "browser-candidate-" + id, "type": "profile.changed", "source": "demo-feed",
		"observedAt": now.Truncate(time.Second).Format(time.RFC3339),
		"data": map[string]any{"memberId": "m-browser-candidate", "firstName": "Casey", "lastName": "Candidate", "emailSha256": []string{hex.EncodeToString(sum[:])},
			"positions": []map[string]any{
				{"companyId": "c-wingtip", "companyName": "Wingtip Toys", "title": "Buyer", "start": map[string]int{"year": ended.Year(), "month": int(ended.Month())}, "current": true},
				{"companyId": "c-contoso", "companyName": "Contoso Ltd", "title": "Buyer", "start": map[string]int{"year": 2020, "month": 1},
					"end": map[string]int{"year": ended.Year(), "month": int(ended.Month())}, "current": false},
			}}})
	if code, b := post(t, stack.HTTPURL+"/webhooks/profile", body, map[string]string{"X-LI-Signature": sign(stack.Secrets.ProfileSecret, body)}); code != http.StatusAccepted {
		t.Fatalf("the candidate's profile: %d %s", code, b)
	}
	testkit.Eventually(t, "the contact among the candidates", 15*time.Second, func() bool {
		var page struct{ Items []struct{ ContactID string } }
		if adminJSON(t, stack, http.MethodGet, "/admin/orgs/"+org+"/candidates", &page) != http.StatusOK {
			return false
		}
		for _, it := range page.Items {
			if it.ContactID == id {
				return true
			}
		}
		return false
	})
	return id
}
