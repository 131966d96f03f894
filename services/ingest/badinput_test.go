package ingest

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/notatcompany/notatcompany/services/shared/orgs"
)

func dvDate(ms int64) string { return "/Date(" + strconv.FormatInt(ms, 10) + ")/" }

// TestBadCRMInputChangesNothing: each was accepted and published before.
func TestBadCRMInputChangesNothing(t *testing.T) {
	t.Parallel()
	future := fixedNow.Add(10 * 60e9).UnixMilli()
	ref := func(table, id string) map[string]any {
		return map[string]any{"__type": "EntityReference:http://schemas.microsoft.com/xrm/2011/Contracts", "Id": id, "LogicalName": table}
	}
	for _, tc := range []struct {
		name   string
		body   []byte
		column string // named in the problem's field errors
	}{
		{"modifiedon 9999-12-31", withTarget(t, "contact", "firstname", "Ada", "modifiedon", dvDate(253402214400000)), "modifiedon"},
		{"modifiedon ten minutes ahead", withTarget(t, "contact", "modifiedon", dvDate(future)), "modifiedon"},
		{"a date beyond a Timestamp", withTarget(t, "contact", "birthdate", "/Date(99999999999999999)/"), "birthdate"},
		{"parentcustomerid not a GUID", withTarget(t, "contact", "parentcustomerid", ref("account", "contoso")), "parentcustomerid"},
		{"ownerid not a GUID", withTarget(t, "contact", "ownerid", ref("systemuser", contactUser+"')")), "ownerid"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			p := decodeProblem(t, f.do(t, http.MethodPost, dataverseURL(testKey), "application/json", tc.body, nil), http.StatusBadRequest, "invalid-body")
			if len(p.Errors) != 1 || !strings.HasPrefix(p.Errors[0].Reason, tc.column+":") || !strings.Contains(p.Errors[0].Field, "/Attributes/") {
				t.Errorf("errors %+v, want the attribute %s named", p.Errors, tc.column)
			}
			if n := len(f.pub.stored()); n != 0 {
				t.Errorf("%d changes published", n)
			}
		})
	}
}

func TestUnknownMessagesAreAcknowledgedAndDropped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, msg := range []string{"Frobnicate", "Retrieve", "RetrieveMultiple"} {
		body := withChanges(t, contactFixture(t), func(doc map[string]any) { doc["MessageName"] = msg })
		a := decodeAccepted(t, f.do(t, http.MethodPost, dataverseURL(testKey), "application/json", body, nil), "ignored")
		if a.EventID != "" {
			t.Errorf("%s: eventId %q", msg, a.EventID)
		}
	}
	// Invalid UTF-8 in the message name: the same, and nothing of it
	// reaches an event id.
	body := withChanges(t, contactFixture(t), func(doc map[string]any) { doc["MessageName"] = "Upd@te" })
	body = bytes.Replace(body, []byte("Upd@te"), []byte("Upd\xffte"), 1)
	decodeAccepted(t, f.do(t, http.MethodPost, dataverseURL(testKey), "application/json", body, nil), "ignored")
	if n := len(f.pub.stored()); n != 0 {
		t.Fatalf("%d changes published for unknown messages", n)
	}
	if got := f.requests("dataverse", "contact", "other", "unsupported_message"); got != 4 {
		t.Errorf("unsupported_message requests %v, want 4", got)
	}
	// A wrong key is still a 401, whatever the message.
	other := withOrg(t, withChanges(t, contactFixture(t), func(doc map[string]any) { doc["MessageName"] = "Retrieve" }), "0bb00bb0-bb11-cc22-dd33-44ee44ee44ee")
	cfg := orgsConfig()
	g := newFixtureWith(t, cfg)
	decodeProblem(t, g.do(t, http.MethodPost, dataverseURL(hookKey1), "application/json", other, nil), http.StatusUnauthorized, "unauthorized")
}

func TestEventIDsAreASCII(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	body := withChanges(t, contactFixture(t), func(doc map[string]any) { doc["PrimaryEntityName"] = "cont@ct" })
	body = bytes.Replace(body, []byte(`"cont@ct"`), []byte("\"cont\xffct\""), 1)
	decodeProblem(t, f.do(t, http.MethodPost, dataverseURL(testKey), "application/json", body, nil), http.StatusBadRequest, "invalid-body")
	decodeAccepted(t, f.do(t, http.MethodPost, dataverseURL(testKey), "application/json", contactFixture(t), nil), "accepted")
	for _, m := range f.pub.stored() {
		if !utf8.ValidString(m.msgID) || strings.ContainsFunc(m.msgID, func(r rune) bool { return r < '!' || r > '~' }) {
			t.Errorf("message id %q is not printable ASCII", m.msgID)
		}
	}
}

func TestJSONEndpointsRequireJSONContentType(t *testing.T) {
	t.Parallel()
	f := adminFixture(t)
	body := profileBody(t, "ct-1")
	settings := []byte(`{"dataValidation":true}`)
	for _, ct := range []string{"", "text/plain", "application/x-www-form-urlencoded", "application/jsonx", "bad/;;"} {
		decodeProblem(t, f.do(t, http.MethodPost, dataverseURL(testKey), ct, contactFixture(t), nil), http.StatusUnsupportedMediaType, "unsupported-media-type")
		decodeProblem(t, f.do(t, http.MethodPost, "/webhooks/profile", ct, body, signed(body)), http.StatusUnsupportedMediaType, "unsupported-media-type")
		decodeProblem(t, f.do(t, http.MethodPut, "/admin/orgs/"+contactOrg+"/settings", ct, settings, adminAuth()), http.StatusUnsupportedMediaType, "unsupported-media-type")
	}
	if n := len(f.pub.stored()); n != 0 {
		t.Fatalf("%d published without a JSON Content-Type", n)
	}
	for _, ct := range []string{"application/json", "application/json; charset=utf-8", "text/json"} {
		decodeAccepted(t, f.do(t, http.MethodPut, "/admin/orgs/"+contactOrg+"/settings", ct, settings, adminAuth()), "accepted")
	}
}

func TestAdminSettingsRefuseTrailingData(t *testing.T) {
	t.Parallel()
	f := adminFixture(t)
	for _, body := range []string{
		`{"dataValidation":false} {"x":1}`,
		`{"dataValidation":false}{"dataValidation":true}`,
		`{"dataValidation":false} x`,
		`{"dataValidation":false}]`,
	} {
		p := decodeProblem(t, f.do(t, http.MethodPut, "/admin/orgs/"+contactOrg+"/settings", "application/json", []byte(body), adminAuth()), http.StatusBadRequest, "invalid-body")
		if len(p.Errors) == 0 || p.Errors[0].Field != "/" {
			t.Errorf("%s: errors %+v", body, p.Errors)
		}
	}
	if n := len(f.pub.stored()); n != 0 {
		t.Fatalf("%d settings published from bodies with trailing data", n)
	}
	decodeAccepted(t, f.do(t, http.MethodPut, "/admin/orgs/"+contactOrg+"/settings", "application/json", []byte("{\"dataValidation\":false}\n"), adminAuth()), "accepted")
}

// fakeAdmin reads nothing; the admin tests here are about what is written.
type fakeAdmin struct{}

func (fakeAdmin) SyncUsers(context.Context, string) ([]string, error) { return nil, nil }
func (fakeAdmin) Settings(context.Context, string) (orgs.Settings, bool, error) {
	return orgs.Settings{}, false, nil
}

const testAdminToken = "admin-token-0123456789"

func adminAuth() map[string]string {
	return map[string]string{"Authorization": "Bearer " + testAdminToken}
}

func adminFixture(t *testing.T) *fixture {
	t.Helper()
	cfg := testConfig()
	cfg.AdminTokens = []string{testAdminToken}
	f := newFixtureWith(t, cfg)
	f.svc.admin = fakeAdmin{}
	f.h = f.svc.Routes()
	return f
}
