package nacctl

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const (
	testOrg     = "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f"
	testContact = "3a7e9c10-5b2d-4f8e-9a61-7c4d2e8b1f03"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestParseExplainConfig(t *testing.T) {
	env := envOf(map[string]string{"NAC_ADMIN_TOKEN": "t", "NAC_ORG": testOrg})
	for _, tc := range []struct {
		args []string
		ok   bool
		want ExplainConfig
	}{
		{[]string{"explain", testContact, "--json"}, true, ExplainConfig{Command: CmdExplain, Contact: testContact, JSON: true}},
		{[]string{"explain", strings.ToUpper(testContact)}, true, ExplainConfig{Command: CmdExplain, Contact: testContact}},
		{[]string{"explain"}, false, ExplainConfig{}},
		{[]string{"explain", "not-a-guid"}, false, ExplainConfig{}},
		{[]string{"list", "at-risk", "--limit", "10", "--all"}, true, ExplainConfig{Command: CmdList, Kind: "at-risk", Limit: 10, All: true}},
		{[]string{"list", "everything"}, false, ExplainConfig{}},
		{[]string{"list", "flagged", "--limit", "500"}, false, ExplainConfig{}},
		{[]string{"review", "approve", testContact, "--reviewer", "ops@contoso.example"}, true,
			ExplainConfig{Command: CmdReview, Kind: "approve", Contact: testContact, Reviewer: "ops@contoso.example"}},
		{[]string{"review", "approve", testContact}, false, ExplainConfig{}},
		{[]string{"review", "maybe", testContact, "--reviewer", "x"}, false, ExplainConfig{}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			c, err := ParseExplainConfig(tc.args, env, io.Discard)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok %v", err, tc.ok)
			}
			if !tc.ok {
				return
			}
			if c.Command != tc.want.Command || c.Kind != tc.want.Kind || c.Contact != tc.want.Contact || c.JSON != tc.want.JSON ||
				(tc.want.Limit != 0 && c.Limit != tc.want.Limit) || c.All != tc.want.All || c.Reviewer != tc.want.Reviewer || c.Org != testOrg {
				t.Errorf("config %+v, want %+v", c, tc.want)
			}
		})
	}
	if _, err := ParseExplainConfig([]string{"explain", testContact}, envOf(map[string]string{"NAC_ORG": testOrg}), io.Discard); err == nil ||
		!strings.Contains(err.Error(), "NAC_ADMIN_TOKEN") {
		t.Errorf("without a token: %v", err)
	}
}

// adminStandIn answers the admin API paths nacctl calls with what the
// test gives, and records the requests.
type adminStandIn struct {
	answers map[string]string // "METHOD path?query" → JSON
	seen    []string
	bodies  []string
}

func (a *adminStandIn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Method + " " + r.URL.RequestURI()
	a.seen = append(a.seen, key+" "+r.Header.Get("Authorization"))
	b, _ := io.ReadAll(r.Body)
	a.bodies = append(a.bodies, string(b))
	body, ok := a.answers[key]
	if !ok {
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"title":"Not Found","detail":"no such thing","status":404}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, body)
}

func run(t *testing.T, a *adminStandIn, args ...string) (string, error) {
	t.Helper()
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	cfg, err := ParseExplainConfig(args, envOf(map[string]string{"NAC_ADMIN_TOKEN": "tok", "NAC_ORG": testOrg, "NAC_API_URL": srv.URL}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = RunExplain(context.Background(), cfg, srv.Client(), &out)
	return out.String(), err
}

func TestExplainPrintsTheExplanation(t *testing.T) {
	a := &adminStandIn{answers: map[string]string{"GET /admin/orgs/" + testOrg + "/contacts/" + testContact: `{
		"organizationId":"` + testOrg + `","contactId":"` + testContact + `","summary":"Not at Company: left Contoso Ltd.",
		"evaluation":{"value":1,"valueName":"not_at_company","reason":"left_company","confidence":0.855,"threshold":0.8,
			"evidence":{"memberId":"m-avery","memberMatch":"email","memberConfidence":0.95,"companyName":"Contoso Ltd","companyConfidence":0.9,
				"currentPosition":{"companyName":"Fabrikam, Inc.","title":"Head of Buying","start":{"year":2026,"month":10},"current":true},
				"features":[{"name":"email","level":"same","weight":9.5}],"matchWeight":0,"candidates":[]},
			"scope":{"inScope":true,"via":"contact_owner","userId":"u-1","checks":[{"via":"contact_owner","userId":"u-1","syncUser":true}]},
			"openOpportunities":[{"opportunityId":"o-1","ownerId":"u-1"}],"crmFlag":{"value":0}},
		"dynamics":{"value":1,"source":"write","at":"2026-12-01T10:00:00Z"},
		"lastWrite":{"decisionId":"d-1","value":1,"outcome":"written","httpStatus":204,"attempts":1},
		"history":{"entries":[{"kind":"decision","at":"2026-12-01T09:59:59Z","sequence":4,
			"decision":{"decisionId":"d-1","value":1,"previous":0,"reason":"left_company","confidence":0.855}}],"complete":true,"scanned":9}}`}}
	out, err := run(t, a, "explain", testContact)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Not at Company: left Contoso Ltd.", "Not at Company (1), left_company, confidence 0.855, threshold 0.80",
		"in scope through the contact owner, sync user u-1", "member m-avery (email match, 0.95)", "now: Head of Buying at Fabrikam, Inc., since 2026-10",
		"feature email", "+9.50 bits", "opportunity o-1", "from our last write", "written of 1 (HTTP 204, deliveries 1)", "decision  0 → 1", "9 of the organization's audit records"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if len(a.seen) != 1 || !strings.HasSuffix(a.seen[0], "Bearer tok") {
		t.Errorf("requests %v", a.seen)
	}
	js, err := run(t, a, "explain", testContact, "--json")
	if err != nil || !strings.Contains(js, `"reason": "left_company"`) {
		t.Errorf("--json: %v\n%s", err, js)
	}
	if _, err := run(t, &adminStandIn{}, "explain", testContact); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown contact: %v", err)
	}
}

func TestListFollowsPagesAndReviewPosts(t *testing.T) {
	base := "GET /admin/orgs/" + testOrg + "/flagged?"
	a := &adminStandIn{answers: map[string]string{
		base + "limit=1":             `{"organizationId":"x","items":[{"contactId":"c-1","value":1,"reason":"left_company","confidence":0.9,"threshold":0.8}],"next":"Yy0x"}`,
		base + "cursor=Yy0x&limit=1": `{"organizationId":"x","items":[{"contactId":"c-2","value":1,"reason":"reviewed","reviewer":"ops","confidence":0.6,"threshold":0.8}]}`,
		"POST /admin/orgs/" + testOrg + "/candidates/" + testContact + "/reject": `{"outcome":"accepted","eventId":"e-1"}`,
	}}
	out, err := run(t, a, "list", "flagged", "--limit", "1")
	if err != nil || !strings.Contains(out, "c-1") || strings.Contains(out, "c-2") || !strings.Contains(out, "more: --cursor Yy0x") {
		t.Errorf("one page: %v\n%s", err, out)
	}
	out, err = run(t, a, "list", "flagged", "--limit", "1", "--all")
	if err != nil || !strings.Contains(out, "c-1") || !strings.Contains(out, "reviewed by ops") || strings.Count(out, "CONTACT") != 1 {
		t.Errorf("--all: %v\n%s", err, out)
	}
	out, err = run(t, a, "review", "reject", testContact, "--reviewer", "ops@contoso.example")
	if err != nil || !strings.Contains(out, "reject of contact "+testContact+" by ops@contoso.example requested (e-1)") {
		t.Errorf("review: %v\n%s", err, out)
	}
	if last := a.bodies[len(a.bodies)-1]; last != `{"reviewer":"ops@contoso.example"}` {
		t.Errorf("review body %s", last)
	}
}
