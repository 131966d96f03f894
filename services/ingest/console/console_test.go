package console_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/notatcompany/notatcompany/services/ingest/console"
	"github.com/notatcompany/notatcompany/services/shared/orgs"
	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
)

const (
	token   = "admin-token-0123456789abcdef"
	org     = "6f1c2d3e-4b5a-4c7d-8e9f-0a1b2c3d4e5f"
	contact = "3a7e9c10-5b2d-4f8e-9a61-7c4d2e8b1f03"
	seller  = "0c9a8b7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
)

type fakeOrgs struct{}

func (fakeOrgs) Organizations(context.Context) ([]string, error) { return []string{org}, nil }
func (fakeOrgs) Settings(_ context.Context, o string) (orgs.Settings, bool, error) {
	return orgs.Settings{DataValidation: o == org, Threshold: 0.85, ReflagAfterIgnore: true}, o == org, nil
}
func (fakeOrgs) SyncUsers(_ context.Context, o string) ([]string, error) {
	if o == org {
		return []string{seller}, nil
	}
	return []string{}, nil
}

type fakeSync struct{}

func (fakeSync) Status(_ context.Context, o string) (syncjobs.Status, bool, error) {
	if o != org {
		return syncjobs.Status{}, false, nil
	}
	return syncjobs.Status{JobID: "backfill-1", Kind: syncjobs.KindBackfill, State: syncjobs.StateRunning, Requests: 42,
		Tables: []syncjobs.Table{{Name: "contact", Mode: "full", Rows: 250, Total: 1000}, {Name: "account", Mode: "full", Rows: 40, Total: 40, Done: true}}}, true, nil
}

type fakeLists struct{}

func (fakeLists) List(_ context.Context, o, list, cursor string, limit int) (console.ContactPage, error) {
	return console.ContactPage{Rows: []console.ContactRow{{Contact: contact, Account: "b2d4f6a8-1c3e-4a5b-8d7f-9e0a1b2c3d4e",
		Reason: list + "-reason", Confidence: 0.72, SuggestedCompany: "Fabrikam, Inc."}}}, nil
}

type reviewed struct {
	org, contact string
	approve      bool
	who          console.Actor
}

type fakeReviewer struct{ got []reviewed }

func (f *fakeReviewer) Review(_ context.Context, o, c string, approve bool, who console.Actor) error {
	f.got = append(f.got, reviewed{o, c, approve, who})
	return nil
}

type fakeDead struct{ redriven []uint64 }

func (f *fakeDead) List(_ context.Context, o string, after uint64, limit int) (console.DeadLetterPage, error) {
	return console.DeadLetterPage{Letters: []console.DeadLetter{{Sequence: 7, Consumer: "writer", Kind: "Decision", Reason: "bad request"}}}, nil
}
func (f *fakeDead) Redrive(_ context.Context, seq uint64, who console.Actor) (string, error) {
	if seq == 8 {
		return "", console.ErrNotFound
	}
	f.redriven = append(f.redriven, seq)
	return "redriven", nil
}

// fixture is a console on a test server with a settable clock and tokens.
type fixture struct {
	t      *testing.T
	srv    *httptest.Server
	now    time.Time
	tokens []string
	rev    *fakeReviewer
	dead   *fakeDead
}

func newFixture(t *testing.T, full bool, edit func(*console.Options)) *fixture {
	t.Helper()
	f := &fixture{t: t, now: time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC), tokens: []string{token}, rev: &fakeReviewer{}, dead: &fakeDead{}}
	opts := console.Options{Tokens: func() []string { return f.tokens }, Orgs: fakeOrgs{}, Sync: fakeSync{}, Now: func() time.Time { return f.now }}
	if full {
		opts.Lists, opts.Reviewer, opts.DeadLetters = fakeLists{}, f.rev, f.dead
	}
	if edit != nil {
		edit(&opts)
	}
	c, err := console.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(routeUnder(c.Handler()))
	t.Cleanup(f.srv.Close)
	return f
}

// routeUnder serves h under /console, as ingest mounts it.
func routeUnder(h http.Handler) http.Handler {
	r := chi.NewRouter()
	r.Mount(console.Base, h)
	return r
}

// client is a browser without redirects followed, keeping cookies by hand.
type client struct {
	f       *fixture
	cookies map[string]*http.Cookie
}

func (f *fixture) client() *client { return &client{f: f, cookies: map[string]*http.Cookie{}} }

func (c *client) do(method, path string, form url.Values, header map[string]string) (*http.Response, string) {
	c.f.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, c.f.srv.URL+path, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	for _, ck := range c.cookies {
		req.AddCookie(ck)
	}
	hc := *c.f.srv.Client() // trusts the TLS test server's certificate
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := hc.Do(req)
	if err != nil {
		c.f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, ck := range resp.Cookies() {
		if ck.MaxAge < 0 {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck
		}
	}
	return resp, string(b)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", page)
	}
	return m[1]
}

// login logs c in as name with tok and returns the first page after it.
func (c *client) login(name, tok string) (*http.Response, string) {
	c.f.t.Helper()
	_, form := c.do(http.MethodGet, "/console/login", nil, nil)
	return c.do(http.MethodPost, "/console/login", url.Values{"csrf": {csrfOf(c.f.t, form)}, "name": {name}, "token": {tok}}, nil)
}

func TestLoginRefusals(t *testing.T) {
	f := newFixture(t, false, nil)
	tests := []struct {
		name       string
		form       func(csrf string) url.Values
		header     map[string]string
		wantStatus int
		wantText   string
	}{
		{"no CSRF token", func(string) url.Values { return url.Values{"name": {"Sam"}, "token": {token}} }, nil, http.StatusForbidden, "expired or did not come from this console"},
		{"a wrong CSRF token", func(string) url.Values { return url.Values{"csrf": {"forged"}, "name": {"Sam"}, "token": {token}} }, nil, http.StatusForbidden, "expired"},
		{"a wrong token", func(c string) url.Values {
			return url.Values{"csrf": {c}, "name": {"Sam"}, "token": {"not-the-token-000000"}}
		}, nil, http.StatusUnauthorized, "not the admin token"},
		{"no token", func(c string) url.Values { return url.Values{"csrf": {c}, "name": {"Sam"}} }, nil, http.StatusUnauthorized, "not the admin token"},
		{"no name", func(c string) url.Values { return url.Values{"csrf": {c}, "token": {token}} }, nil, http.StatusBadRequest, "Give your name"},
		{"another origin", func(c string) url.Values { return url.Values{"csrf": {c}, "name": {"Sam"}, "token": {token}} },
			map[string]string{"Origin": "https://evil.example"}, http.StatusForbidden, "did not come from this console"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := f.client()
			_, form := c.do(http.MethodGet, "/console/login", nil, nil)
			resp, body := c.do(http.MethodPost, "/console/login", tt.form(csrfOf(t, form)), tt.header)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(body, tt.wantText) {
				t.Errorf("status %d, want %d with %q:\n%s", resp.StatusCode, tt.wantStatus, tt.wantText, body)
			}
			if _, ok := c.cookies["nac_console"]; ok {
				t.Error("a refused login set a session cookie")
			}
		})
	}
}

func TestLoginSessionAndLogout(t *testing.T) {
	f := newFixture(t, false, nil)
	c := f.client()
	if resp, _ := c.do(http.MethodGet, "/console/orgs/"+org+"/", nil, nil); resp.StatusCode != http.StatusSeeOther ||
		resp.Header.Get("Location") != "/console/login?next=%2Fconsole%2Forgs%2F"+org+"%2F" {
		t.Fatalf("without a session: %d to %q, want 303 to the login", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, form := c.do(http.MethodGet, "/console/login?next=%2Fconsole%2Forgs%2F"+org+"%2F", nil, nil)
	resp, _ := c.do(http.MethodPost, "/console/login", url.Values{"csrf": {csrfOf(t, form)}, "name": {"Sam Admin"}, "token": {token},
		"next": {"/console/orgs/" + org + "/"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/orgs/"+org+"/" {
		t.Fatalf("login: %d to %q, want 303 back where it was going", resp.StatusCode, resp.Header.Get("Location"))
	}
	ck := c.cookies["nac_console"]
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Secure || ck.Path != "/console" || ck.MaxAge != int((8*time.Hour).Seconds()) {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict, not Secure over HTTP, Path /console, 8 h", ck)
	}
	resp, body := c.do(http.MethodGet, "/console/orgs/"+org+"/", nil, nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Sam Admin") || !strings.Contains(body, "Log out") {
		t.Fatalf("status page with the session: %d\n%s", resp.StatusCode, body)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("no %s header", h)
		}
	}
	if resp.Header.Get("Cache-Control") != "no-store" || !strings.HasPrefix(resp.Header.Get("Server-Timing"), "page;dur=") {
		t.Errorf("Cache-Control %q, Server-Timing %q", resp.Header.Get("Cache-Control"), resp.Header.Get("Server-Timing"))
	}

	// Logging out takes the session's CSRF token.
	if resp, _ := c.do(http.MethodPost, "/console/logout", url.Values{}, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("logout without the CSRF token: %d, want 403", resp.StatusCode)
	}
	if resp, _ := c.do(http.MethodPost, "/console/logout", url.Values{"csrf": {csrfOf(t, body)}}, nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("logout: %d, want 303", resp.StatusCode)
	}
	if _, ok := c.cookies["nac_console"]; ok {
		t.Error("logout left the session cookie")
	}
}

// A session ends after eight hours, when the token that made it is
// rotated away, or when its cookie is changed; another session's CSRF
// token is refused.
func TestSessionEnds(t *testing.T) {
	f := newFixture(t, true, nil)
	orgPage := "/console/orgs/" + org + "/"
	loggedIn := func(c *client) bool {
		resp, _ := c.do(http.MethodGet, orgPage, nil, nil)
		return resp.StatusCode == http.StatusOK
	}

	c := f.client()
	c.login("Sam", token)
	f.now = f.now.Add(8*time.Hour - time.Second)
	if !loggedIn(c) {
		t.Fatal("the session ended before eight hours")
	}
	f.now = f.now.Add(2 * time.Second)
	if loggedIn(c) {
		t.Error("the session outlived eight hours")
	}

	c = f.client()
	c.login("Sam", token)
	f.tokens = []string{"a-new-admin-token-0123456789", token} // rotating: both valid
	if !loggedIn(c) {
		t.Error("the session ended while its token is still in force")
	}
	f.tokens = []string{"a-new-admin-token-0123456789"}
	if loggedIn(c) {
		t.Error("the session outlived its token")
	}

	f.tokens = []string{token}
	c = f.client()
	c.login("Sam", token)
	good := c.cookies["nac_console"].Value
	payload, mac, _ := strings.Cut(good, ".")
	c.cookies["nac_console"].Value = payload + "x." + mac
	if loggedIn(c) {
		t.Error("a changed cookie was taken")
	}
	c.cookies["nac_console"].Value = good

	other := f.client()
	other.login("Kim", token)
	_, otherPage := other.do(http.MethodGet, "/console/orgs/"+org+"/review", nil, nil)
	if resp, _ := c.do(http.MethodPost, "/console/orgs/"+org+"/review/"+contact, url.Values{"csrf": {csrfOf(t, otherPage)}, "action": {"approve"}}, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("another session's CSRF token: %d, want 403", resp.StatusCode)
	}
	if len(f.rev.got) != 0 {
		t.Errorf("reviews applied: %v", f.rev.got)
	}
}

func TestSecureCookie(t *testing.T) {
	for _, tt := range []struct {
		name   string
		secure bool
		tls    bool
	}{{"behind a TLS proxy", true, false}, {"over TLS", false, true}} {
		t.Run(tt.name, func(t *testing.T) {
			f := &fixture{t: t, now: time.Now(), tokens: []string{token}}
			c, err := console.New(console.Options{Tokens: func() []string { return f.tokens }, Orgs: fakeOrgs{}, SecureCookies: tt.secure})
			if err != nil {
				t.Fatal(err)
			}
			if tt.tls {
				f.srv = httptest.NewTLSServer(routeUnder(c.Handler()))
			} else {
				f.srv = httptest.NewServer(routeUnder(c.Handler()))
			}
			defer f.srv.Close()
			cl := f.client()
			cl.login("Sam", token)
			if ck := cl.cookies["nac_console"]; ck == nil || !ck.Secure {
				t.Errorf("session cookie %+v, want Secure", ck)
			}
		})
	}
}

func TestConsoleOffWithoutToken(t *testing.T) {
	f := newFixture(t, false, nil)
	f.tokens = nil
	resp, body := f.client().do(http.MethodGet, "/console/login", nil, nil)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "NAC_ADMIN_TOKEN") {
		t.Errorf("no admin token: %d\n%s", resp.StatusCode, body)
	}
}

func TestStatusPage(t *testing.T) {
	f := newFixture(t, false, nil)
	c := f.client()
	c.login("Sam", token)
	_, body := c.do(http.MethodGet, "/console/orgs/"+org+"/", nil, nil)
	for _, want := range []string{`class="big on">On`, seller, "0.85", "backfill-1", "250 / 1000", "42 requests", "Not available."} {
		if !strings.Contains(body, want) {
			t.Errorf("the status page lacks %q", want)
		}
	}
	other := "0a1b2c3d-0000-4000-8000-000000000001"
	_, body = c.do(http.MethodGet, "/console/orgs/"+other+"/", nil, nil)
	for _, want := range []string{`class="big off">Off`, "None: no contact is in scope", "No back-fill or sweep has run"} {
		if !strings.Contains(body, want) {
			t.Errorf("the status page of an organization never set up lacks %q", want)
		}
	}
	if resp, _ := c.do(http.MethodGet, "/console/orgs/not-a-guid/", nil, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("an organization that is not a GUID: %d, want 400", resp.StatusCode)
	}
	if resp, _ := c.do(http.MethodGet, "/console/?org=Contoso", nil, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("opening an organization that is not a GUID: %d, want 400", resp.StatusCode)
	}
	if resp, _ := c.do(http.MethodGet, "/console/?org="+strings.ToUpper(org), nil, nil); resp.Header.Get("Location") != "/console/orgs/"+org+"/" {
		t.Errorf("opening an organization goes to %q", resp.Header.Get("Location"))
	}
}

// Without the readers of the lists, the explain page and the dead letters,
// their pages say so and show no row; their forms are refused.
func TestPagesNotAvailable(t *testing.T) {
	f := newFixture(t, false, nil)
	c := f.client()
	c.login("Sam", token)
	for _, p := range []string{"flagged", "at-risk", "review", "deadletters", "contacts/" + contact} {
		resp, body := c.do(http.MethodGet, "/console/orgs/"+org+"/"+p, nil, nil)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, `id="not-available"`) || strings.Contains(body, `id="rows"`) {
			t.Errorf("%s: %d, want 200 saying not available:\n%s", p, resp.StatusCode, body)
		}
	}
	_, page := c.do(http.MethodGet, "/console/orgs/"+org+"/", nil, nil)
	if resp, _ := c.do(http.MethodPost, "/console/orgs/"+org+"/review/"+contact, url.Values{"csrf": {csrfOf(t, page)}, "action": {"approve"}}, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("a review without a reviewer: %d, want 404", resp.StatusCode)
	}
}

func TestReviewAndRedrive(t *testing.T) {
	f := newFixture(t, true, nil)
	c := f.client()
	c.login("Sam Admin", token)
	_, page := c.do(http.MethodGet, "/console/orgs/"+org+"/review", nil, nil)
	for _, want := range []string{"review-reason", "72%", "Fabrikam, Inc.", `value="approve"`, `value="reject"`} {
		if !strings.Contains(page, want) {
			t.Errorf("the review queue lacks %q", want)
		}
	}
	csrf := csrfOf(t, page)
	resp, _ := c.do(http.MethodPost, "/console/orgs/"+org+"/review/"+strings.ToUpper(contact), url.Values{"csrf": {csrf}, "action": {"reject"}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/orgs/"+org+"/review?done=reject" {
		t.Fatalf("review: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	want := reviewed{org, contact, false, console.Actor{Name: "Sam Admin", TokenFingerprint: console.Fingerprint(token)}}
	if len(f.rev.got) != 1 || f.rev.got[0] != want {
		t.Errorf("reviews %v, want %v", f.rev.got, want)
	}
	if _, body := c.do(http.MethodGet, "/console/orgs/"+org+"/review?done=reject", nil, nil); !strings.Contains(body, "Rejected: the contact stays") {
		t.Error("no notice after the review")
	}
	if resp, _ := c.do(http.MethodPost, "/console/orgs/"+org+"/review/"+contact, url.Values{"csrf": {csrf}, "action": {"delete"}}, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("an unknown review action: %d, want 400", resp.StatusCode)
	}

	_, page = c.do(http.MethodGet, "/console/orgs/"+org+"/deadletters", nil, nil)
	if !strings.Contains(page, "bad request") || !strings.Contains(page, `action="/console/orgs/`+org+`/deadletters/7/redrive"`) {
		t.Fatalf("the dead letters page:\n%s", page)
	}
	resp, _ = c.do(http.MethodPost, "/console/orgs/"+org+"/deadletters/7/redrive", url.Values{"csrf": {csrf}}, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/orgs/"+org+"/deadletters?done=redriven" || len(f.dead.redriven) != 1 {
		t.Errorf("redrive: %d to %q, redriven %v", resp.StatusCode, resp.Header.Get("Location"), f.dead.redriven)
	}
	if resp, _ := c.do(http.MethodPost, "/console/deadletters/8/redrive", url.Values{"csrf": {csrf}}, nil); resp.Header.Get("Location") != "/console/deadletters?done=gone" {
		t.Errorf("redrive of a dead letter gone already goes to %q", resp.Header.Get("Location"))
	}
	if resp, _ := c.do(http.MethodPost, "/console/orgs/"+org+"/deadletters/7/redrive", url.Values{}, nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("redrive without the CSRF token: %d, want 403", resp.StatusCode)
	}
}

type failingOrgs struct{ fakeOrgs }

func (failingOrgs) Settings(context.Context, string) (orgs.Settings, bool, error) {
	return orgs.Settings{}, false, errors.New("jetstream down")
}

func TestReaderFailureIs503(t *testing.T) {
	f := newFixture(t, false, func(o *console.Options) { o.Orgs = failingOrgs{} })
	c := f.client()
	c.login("Sam", token)
	resp, body := c.do(http.MethodGet, "/console/orgs/"+org+"/", nil, nil)
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || strings.Contains(body, "jetstream down") {
		t.Errorf("a failing reader: %d, Retry-After %q, and the page must not show the error:\n%s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
}

type fakeExplainer struct{}

func (fakeExplainer) Explain(_ context.Context, o, c string) (*console.Explanation, error) {
	if c != contact {
		return nil, console.ErrNotFound
	}
	one := 1
	return &console.Explanation{Contact: c, Account: "b2d4f6a8-1c3e-4a5b-8d7f-9e0a1b2c3d4e", Summary: "Not at Company: left Contoso Ltd in 2026-09.",
		Evaluated: true, Value: 1, Reason: "left_company", Confidence: 0.93, Threshold: 0.8, InScope: true, ScopeVia: "account_owner", ScopeUser: seller,
		Checks:      []console.ScopeCheck{{Via: "contact_owner", User: "9a8b7c6d-5e4f-4a3b-8c2d-1e0f2a3b4c5d"}, {Via: "account_owner", User: seller, Row: "b2d4f6a8-1c3e-4a5b-8d7f-9e0a1b2c3d4e", SyncUser: true}},
		MemberMatch: "name+company+title", MemberConfidence: 0.9, CompanyName: "Contoso Ltd", CompanyMatch: "domain", CompanyConfidence: 0.98,
		Ended: &console.Position{Company: "Contoso Ltd", Title: "Buyer", Start: "2019-03", End: "2026-09"}, Current: &console.Position{Company: "Fabrikam, Inc.", Title: "Head of Buying", Start: "2026-10"},
		ProfileSource: "demo-feed", Features: []console.Feature{{Name: "name", Level: "rare", Weight: 9.5}}, MatchWeight: 12.25,
		Dynamics: &one, DynamicsSource: "write", Opportunities: []string{"7f3e2d1c-0b9a-4876-8543-210fedcba987"},
		History: []console.HistoryEntry{{Kind: "decision", Detail: "decided Not at Company (0 → 1)"}, {Kind: "write", Detail: "written Not at Company (1), HTTP 204"}}}, nil
}

type refusingReviewer struct{}

func (refusingReviewer) Review(context.Context, string, string, bool, console.Actor) error {
	return &console.Refused{Status: http.StatusConflict, Detail: "contact is not below the threshold"}
}

func TestExplainPage(t *testing.T) {
	f := newFixture(t, false, func(o *console.Options) { o.Explainer, o.Reviewer = fakeExplainer{}, refusingReviewer{} })
	c := f.client()
	c.login("Sam", token)
	resp, body := c.do(http.MethodGet, "/console/orgs/"+org+"/contacts/"+strings.ToUpper(contact), nil, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("explain: %d\n%s", resp.StatusCode, body)
	}
	for _, want := range []string{"Not at Company: left Contoso Ltd in 2026-09.", "left_company", "93% (threshold 80%)", "the account&#39;s owner",
		"✓ sync user", "name&#43;company&#43;title (90%)", "Contoso Ltd, domain (98%)", "Buyer at Contoso Ltd, 2019-03 – 2026-09",
		"Head of Buying at Fabrikam, Inc., since 2026-10", "12.25", "from our last write", "7f3e2d1c-0b9a-4876-8543-210fedcba987",
		"written Not at Company (1), HTTP 204"} {
		if !strings.Contains(body, want) {
			t.Errorf("the explain page lacks %q", want)
		}
	}
	other := "0d0d0d0d-0000-4000-8000-000000000404"
	if resp, body := c.do(http.MethodGet, "/console/orgs/"+org+"/contacts/"+other, nil, nil); resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "has not evaluated") {
		t.Errorf("a contact never evaluated: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ := c.do(http.MethodGet, "/console/orgs/"+org+"/explain?contact=+"+contact+"+", nil, nil); resp.Header.Get("Location") != "/console/orgs/"+org+"/contacts/"+contact {
		t.Errorf("the explain box goes to %q", resp.Header.Get("Location"))
	}
	if resp, _ := c.do(http.MethodGet, "/console/orgs/"+org+"/explain?contact=Avery", nil, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("the explain box with a name: %d, want 400", resp.StatusCode)
	}
	// A review the admin API refuses shows its reason, with its status.
	resp, body = c.do(http.MethodPost, "/console/orgs/"+org+"/review/"+contact, url.Values{"csrf": {csrfOf(t, body)}, "action": {"approve"}}, nil)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "not below the threshold") {
		t.Errorf("a refused review: %d\n%s", resp.StatusCode, body)
	}
}
