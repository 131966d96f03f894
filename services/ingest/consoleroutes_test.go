package ingest

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/notatcompany/notatcompany/services/ingest/console"
)

type fakeOrgList struct{ fakeAdmin }

func (fakeOrgList) Organizations(context.Context) ([]string, error) { return []string{contactOrg}, nil }

// The console is served beside the API, behind the admin tokens in force:
// the API's routes are untouched, and rotating the token in takes effect
// in the console too.
func TestConsoleBesideTheAPI(t *testing.T) {
	t.Parallel()
	f := adminFixture(t)
	h, err := f.svc.WithConsole(f.svc.Routes(), console.Options{Orgs: fakeOrgList{}})
	if err != nil {
		t.Fatal(err)
	}
	f.h = h
	if rec := f.do(t, http.MethodGet, "/console", "", nil, nil); rec.Code != http.StatusMovedPermanently || rec.Header().Get("Location") != "/console/" {
		t.Errorf("/console: %d to %q, want a redirect to /console/", rec.Code, rec.Header().Get("Location"))
	}
	if rec := f.do(t, http.MethodGet, "/console/", "", nil, nil); rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), "/console/login") {
		t.Errorf("/console/ without a session: %d to %q", rec.Code, rec.Header().Get("Location"))
	}
	rec := f.do(t, http.MethodGet, "/console/login", "", nil, nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `name="token"`) || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Errorf("/console/login: %d %q", rec.Code, rec.Header().Get("Content-Type"))
	}
	if rec := f.do(t, http.MethodGet, "/admin/orgs/"+contactOrg+"/sync-users", "", nil, nil); rec.Code != http.StatusUnauthorized {
		t.Errorf("the admin API without a token: %d, want 401", rec.Code)
	}
	if rec := f.do(t, http.MethodGet, "/admin/orgs/"+contactOrg+"/sync-users", "", nil, adminAuth()); rec.Code != http.StatusOK {
		t.Errorf("the admin API: %d, want 200", rec.Code)
	}
	if rec := f.do(t, http.MethodGet, "/nowhere", "", nil, nil); rec.Code != http.StatusNotFound || !strings.Contains(rec.Header().Get("Content-Type"), "problem+json") {
		t.Errorf("an unknown path: %d %q, want the API's problem+json 404", rec.Code, rec.Header().Get("Content-Type"))
	}

	cfg := f.svc.cfg
	cfg.AdminTokens = nil
	f.svc.creds.Store(newCredentials(&cfg))
	if rec := f.do(t, http.MethodGet, "/console/login", "", nil, nil); rec.Code != http.StatusNotFound {
		t.Errorf("/console/login without an admin token: %d, want 404", rec.Code)
	}
}
