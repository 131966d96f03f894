package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"

	"github.com/notatcompany/notatcompany/services/ingest/console"
	"github.com/notatcompany/notatcompany/services/shared/deadletters"
)

// fakeDeadLetterStore answers a redrive with err, and lists one letter.
type fakeDeadLetterStore struct {
	DeadLetterAdmin
	err    error
	filter deadletters.Filter
	who    deadletters.Actor
}

func (f *fakeDeadLetterStore) List(_ context.Context, flt deadletters.Filter, after uint64, limit int) (deadletters.Page, error) {
	f.filter = flt
	return deadletters.Page{DeadLetters: []deadletters.Letter{{Sequence: 9, Consumer: "writer", Kind: "Decision", Reason: "400",
		DeadLetteredAt: time.Unix(1, 0), Deliveries: 1}}, Next: 10}, nil
}

func (f *fakeDeadLetterStore) Redrive(_ context.Context, seq uint64, who deadletters.Actor) (deadletters.Outcome, error) {
	f.who = who
	return deadletters.Outcome{Sequence: seq, Outcome: deadletters.OutcomeRedriven}, f.err
}

func TestConsoleDeadLetters(t *testing.T) {
	t.Parallel()
	who := console.Actor{Name: "Sam", TokenFingerprint: "abcd1234"}
	for _, tt := range []struct {
		err     error
		outcome string
		wantErr error
	}{
		{nil, deadletters.OutcomeRedriven, nil},
		{fmt.Errorf("x: %w", deadletters.ErrSuperseded), deadletters.OutcomeSuperseded, nil},
		{fmt.Errorf("x: %w", deadletters.ErrNoOrigin), deadletters.OutcomeNoOrigin, nil},
		{fmt.Errorf("x: %w", deadletters.ErrNotFound), "", console.ErrNotFound},
		{errors.New("jetstream down"), "", errors.New("jetstream down")},
	} {
		f := &fakeDeadLetterStore{err: tt.err}
		got, err := consoleDeadLetters{f}.Redrive(context.Background(), 9, who)
		if got != tt.outcome || (err == nil) != (tt.wantErr == nil) || tt.wantErr == console.ErrNotFound && !errors.Is(err, console.ErrNotFound) {
			t.Errorf("redrive with %v = %q, %v; want %q, %v", tt.err, got, err, tt.outcome, tt.wantErr)
		}
		if f.who != (deadletters.Actor{Name: "Sam", TokenFingerprint: "abcd1234"}) {
			t.Errorf("the store was told %+v", f.who)
		}
	}
	f := &fakeDeadLetterStore{}
	p, err := consoleDeadLetters{f}.List(context.Background(), contactOrg, 0, 50)
	if err != nil || len(p.Letters) != 1 || p.Letters[0].Sequence != 9 || p.Next != 10 || f.filter.Organization != contactOrg {
		t.Errorf("list = %+v, %v with filter %+v", p, err, f.filter)
	}
}

// The console records the token's fingerprint the admin API records.
func TestConsoleFingerprintIsTheAdminAPIs(t *testing.T) {
	t.Parallel()
	if got, want := console.Fingerprint(testAdminToken), tokenFingerprint(testAdminToken); got != want {
		t.Errorf("console fingerprint %q, admin API's %q", got, want)
	}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// The console's lists, explain page and reviews go through the admin API's
// own handlers, mounted as ingest mounts them: what they show and refuse
// is the API's.
func TestConsoleReadsThroughTheAdminAPI(t *testing.T) {
	t.Parallel()
	f := explainFixture(t)
	h, err := f.svc.WithConsole(f.svc.Routes(), console.Options{Orgs: fakeOrgList{}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar}
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	post := func(path string, form url.Values) (int, string) {
		t.Helper()
		resp, err := client.PostForm(srv.URL+path, form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	csrf := func(page string) string {
		t.Helper()
		m := csrfField.FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no CSRF token in:\n%s", page)
		}
		return m[1]
	}
	_, login := get("/console/login")
	if code, _ := post("/console/login", url.Values{"csrf": {csrf(login)}, "name": {"Console Admin"}, "token": {testAdminToken}}); code != http.StatusOK {
		t.Fatalf("login: %d", code)
	}
	base := "/console/orgs/" + contactOrg
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"/flagged", []string{flaggedContact, "left_company", "86%"}},
		{"/at-risk", []string{riskOpportunity[:8], flaggedContact, "Fabrikam, Inc."}},
		{"/review", []string{candidateContact, "below_threshold", "62%", "80%", `value="approve"`}},
		{"/contacts/" + flaggedContact, []string{"Not at Company: left Contoso Ltd in 2026-09", "written Not at Company (1), HTTP 204", "from our last write"}},
	} {
		code, page := get(base + tc.path)
		if code != http.StatusOK {
			t.Errorf("%s: %d", tc.path, code)
		}
		for _, w := range tc.want {
			if !strings.Contains(page, w) {
				t.Errorf("%s lacks %q", tc.path, w)
			}
		}
		if strings.Contains(page, `id="not-available"`) {
			t.Errorf("%s says it is not available", tc.path)
		}
	}
	if code, _ := get(base + "/contacts/" + unknownContact); code != http.StatusNotFound {
		t.Errorf("a contact never evaluated: %d, want 404", code)
	}

	_, page := get(base + "/review")
	if code, page := post(base+"/review/"+candidateContact, url.Values{"csrf": {csrf(page)}, "action": {"approve"}}); code != http.StatusOK || !strings.Contains(page, "Approved") {
		t.Fatalf("approve: %d\n%s", code, page)
	}
	msgs := f.pub.stored()
	var r eventsv1.ReviewAction
	if len(msgs) != 1 || proto.Unmarshal(msgs[0].data, &r) != nil || r.GetAction() != "approve" || r.GetReviewer() != "Console Admin" || r.GetContactId() != candidateContact {
		t.Fatalf("published %d, the review %v", len(msgs), &r)
	}
	code, refused := post(base+"/review/"+flaggedContact, url.Values{"csrf": {csrf(page)}, "action": {"reject"}})
	if code != http.StatusConflict || !strings.Contains(refused, "only candidates are reviewed") {
		t.Errorf("a review of a flagged contact: %d\n%s", code, refused)
	}
}
