package ingest

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// Organizations with their own credentials, one per authentication form.
const (
	hookOrg   = "0a0a0a0a-0000-4000-8000-00000000000a" // WebhookKey: ?code=
	headerOrg = "0b0b0b0b-0000-4000-8000-00000000000b" // HttpHeader: x-nac-key
	queryOrg  = "0c0c0c0c-0000-4000-8000-00000000000c" // HttpQueryString: ?token=

	hookKey1, hookKey2     = "hook-key-aaaaaaaaaaaa-1", "hook-key-aaaaaaaaaaaa-2"
	headerKey1, headerKey2 = "header-key-bbbbbbbbbb-1", "header-key-bbbbbbbbbb-2"
	queryKey1, queryKey2   = "query-key-cccccccccccc-1", "query-key-cccccccccccc-2"
	retiredKey             = "retired-key-dddddddddd-0"
)

// orgsConfig is testConfig with the three organizations beside the shared
// keys, which stay valid for contactOrg (no entry of its own).
func orgsConfig() Config {
	cfg := testConfig()
	cfg.DataverseOrgs = []OrgAuth{
		{OrganizationID: hookOrg, Type: AuthWebhookKey, Keys: []string{hookKey1, hookKey2}},
		{OrganizationID: headerOrg, Type: AuthHTTPHeader, Name: "x-nac-key", Keys: []string{headerKey1, headerKey2}},
		{OrganizationID: queryOrg, Type: AuthHTTPQueryString, Name: "token", Keys: []string{queryKey1, queryKey2}},
	}
	return cfg
}

// keyPlacement places key where an organization's form puts it.
type keyPlacement func(key string) (target string, header map[string]string)

func viaCode(key string) (string, map[string]string) { return dataverseURL(key), nil }
func viaHeader(key string) (string, map[string]string) {
	return "/webhooks/dataverse", map[string]string{"x-nac-key": key}
}
func viaToken(key string) (string, map[string]string) { return "/webhooks/dataverse?token=" + key, nil }

func TestPerOrganizationAuth(t *testing.T) {
	t.Parallel()
	contact := contactFixture(t)
	forms := []struct {
		form       string
		org        string
		send       keyPlacement
		keys       [2]string
		otherOrg   string       // whose body this org's key must not carry
		wrongForms keyPlacement // the right key, in another form
	}{
		{AuthWebhookKey, hookOrg, viaCode, [2]string{hookKey1, hookKey2}, headerOrg, viaToken},
		{AuthHTTPHeader, headerOrg, viaHeader, [2]string{headerKey1, headerKey2}, queryOrg, viaCode},
		{AuthHTTPQueryString, queryOrg, viaToken, [2]string{queryKey1, queryKey2}, contactOrg, viaCode},
	}
	for _, tc := range forms {
		body := withOrg(t, contact, tc.org)
		post := func(t *testing.T, send keyPlacement, key string, body []byte) (*fixture, int) {
			t.Helper()
			f := newFixtureWith(t, orgsConfig())
			target, header := send(key)
			rec := f.do(t, http.MethodPost, target, "application/json", body, header)
			return f, rec.Code
		}
		t.Run(tc.form+"/both keys while rotating", func(t *testing.T) {
			for _, key := range tc.keys {
				f := newFixtureWith(t, orgsConfig())
				target, header := tc.send(key)
				decodeAccepted(t, f.do(t, http.MethodPost, target, "application/json", body, header), "accepted")
				msgs := f.pub.stored()
				if len(msgs) != 1 {
					t.Fatalf("key %s: %d published, want 1", key, len(msgs))
				}
				if got := decodeChange(t, msgs[0]).GetOrganizationId(); got != tc.org {
					t.Errorf("published organization %q, want %q", got, tc.org)
				}
			}
		})
		t.Run(tc.form+"/wrong keys", func(t *testing.T) {
			for _, key := range []string{
				retiredKey,                     // a third key
				tc.keys[0][:len(tc.keys[0])-1], // a prefix
				tc.keys[1] + "x",               // an extension
				strings.ToUpper(tc.keys[0]),    // another case
				"",                             // none
			} {
				f := newFixtureWith(t, orgsConfig())
				target, header := tc.send(key)
				decodeProblem(t, f.do(t, http.MethodPost, target, "application/json", body, header), http.StatusUnauthorized, "unauthorized")
				if f.pub.attempts != 0 {
					t.Errorf("key %q: published", key)
				}
			}
		})
		t.Run(tc.form+"/right key in another form", func(t *testing.T) {
			if f, status := post(t, tc.wrongForms, tc.keys[0], body); status != http.StatusUnauthorized || f.pub.attempts != 0 {
				t.Errorf("status %d, %d publish attempts; want 401 and none", status, f.pub.attempts)
			}
		})
		t.Run(tc.form+"/key of this organization, body of another", func(t *testing.T) {
			f := newFixtureWith(t, orgsConfig())
			target, header := tc.send(tc.keys[0])
			rec := f.do(t, http.MethodPost, target, "application/json", withOrg(t, contact, tc.otherOrg), header)
			p := decodeProblem(t, rec, http.StatusUnauthorized, "unauthorized")
			if !strings.Contains(p.Detail, tc.otherOrg) {
				t.Errorf("detail %q does not name organization %s", p.Detail, tc.otherOrg)
			}
			if f.pub.attempts != 0 || len(f.pub.stored()) != 0 {
				t.Error("published a change of an organization the key is not for")
			}
			if got := f.requests("dataverse", "", "", "unauthorized"); got != 1 {
				t.Errorf("unauthorized requests %v, want 1", got)
			}
		})
		t.Run(tc.form+"/shared key refused for an organization with an entry", func(t *testing.T) {
			for _, key := range []string{testKey, rotatedKey} {
				f := newFixtureWith(t, orgsConfig())
				decodeProblem(t, f.do(t, http.MethodPost, dataverseURL(key), "application/json", body, nil), http.StatusUnauthorized, "unauthorized")
				if f.pub.attempts != 0 {
					t.Errorf("shared key %s published for %s", key, tc.org)
				}
			}
		})
	}
	t.Run("shared key accepted for an organization without an entry", func(t *testing.T) {
		for _, key := range []string{testKey, rotatedKey} {
			f := newFixtureWith(t, orgsConfig())
			decodeAccepted(t, f.do(t, http.MethodPost, dataverseURL(key), "application/json", contact, nil), "accepted")
			if msgs := f.pub.stored(); len(msgs) != 1 || decodeChange(t, msgs[0]).GetOrganizationId() != contactOrg {
				t.Errorf("shared key %s: published %d", key, len(msgs))
			}
		}
	})
	t.Run("organization keys without shared keys", func(t *testing.T) {
		cfg := orgsConfig()
		cfg.DataverseKeys = nil
		f := newFixtureWith(t, cfg)
		// No shared key: an organization without an entry has no way in.
		decodeProblem(t, f.do(t, http.MethodPost, dataverseURL(hookKey1), "application/json", contact, nil), http.StatusUnauthorized, "unauthorized")
		decodeProblem(t, f.do(t, http.MethodPost, dataverseURL(""), "application/json", contact, nil), http.StatusUnauthorized, "unauthorized")
		target, header := viaHeader(headerKey2)
		decodeAccepted(t, f.do(t, http.MethodPost, target, "application/json", withOrg(t, contact, headerOrg), header), "accepted")
		if n := len(f.pub.stored()); n != 1 {
			t.Errorf("%d published, want 1", n)
		}
	})
	t.Run("organization id in upper case in the body", func(t *testing.T) {
		f := newFixtureWith(t, orgsConfig())
		target, header := viaToken(queryKey1)
		decodeAccepted(t, f.do(t, http.MethodPost, target, "application/json", withOrg(t, contact, strings.ToUpper(queryOrg)), header), "accepted")
	})
}

const validOrgs = `[
	{"organizationId": "0A0A0A0A-0000-4000-8000-00000000000A", "auth": "WebhookKey", "keys": ["hook-key-aaaaaaaaaaaa-1"]},
	{"organizationId": "0b0b0b0b-0000-4000-8000-00000000000b", "auth": "HttpHeader", "name": "x-nac-key",
	 "keys": ["header-key-bbbbbbbbbb-1", "header-key-bbbbbbbbbb-2"]},
	{"organizationId": "0c0c0c0c-0000-4000-8000-00000000000c", "auth": "HttpQueryString", "name": "token", "keys": ["0123456789abcdef"]}
]`

func TestParseOrgAuths(t *testing.T) {
	t.Parallel()
	orgs, err := ParseOrgAuths(validOrgs)
	if err != nil {
		t.Fatal(err)
	}
	want := []OrgAuth{
		{OrganizationID: hookOrg, Type: AuthWebhookKey, Keys: []string{hookKey1}},
		{OrganizationID: headerOrg, Type: AuthHTTPHeader, Name: "x-nac-key", Keys: []string{headerKey1, headerKey2}},
		{OrganizationID: queryOrg, Type: AuthHTTPQueryString, Name: "token", Keys: []string{"0123456789abcdef"}},
	}
	if !slices.EqualFunc(orgs, want, func(a, b OrgAuth) bool {
		return a.OrganizationID == b.OrganizationID && a.Type == b.Type && a.Name == b.Name && slices.Equal(a.Keys, b.Keys)
	}) {
		t.Errorf("parsed %+v,\nwant %+v", orgs, want)
	}
	for _, empty := range []string{"", "  \n"} {
		if orgs, err := ParseOrgAuths(empty); orgs != nil || err != nil {
			t.Errorf("ParseOrgAuths(%q) = %v, %v; want nothing", empty, orgs, err)
		}
	}

	entry := func(org, auth, name string, keys ...string) string {
		n := ""
		if name != "" {
			n = fmt.Sprintf(`, "name": %q`, name)
		}
		return fmt.Sprintf(`{"organizationId": %q, "auth": %q%s, "keys": ["%s"]}`, org, auth, n, strings.Join(keys, `", "`))
	}
	ok := entry(hookOrg, AuthWebhookKey, "", hookKey1)
	for _, tc := range []struct {
		name, doc string
		want      []string // in the error
	}{
		{"not a GUID", "[" + ok + "," + entry("contoso", AuthWebhookKey, "", hookKey1) + "]", []string{"NAC_DATAVERSE_ORGS[1].organizationId", "not a GUID"}},
		{"GUID in braces", "[" + entry("{"+hookOrg+"}", AuthWebhookKey, "", hookKey1) + "]", []string{"[0].organizationId", "not a GUID"}},
		{"duplicate", "[" + ok + "," + entry(headerOrg, AuthHTTPHeader, "x-nac-key", headerKey1) + "," + entry(strings.ToUpper(hookOrg), AuthWebhookKey, "", hookKey2) + "]",
			[]string{"NAC_DATAVERSE_ORGS[2].organizationId", hookOrg, "listed twice"}},
		{"unknown auth type", "[" + entry(hookOrg, "Basic", "", hookKey1) + "]", []string{"[0].auth", `"Basic"`}},
		{"auth type in another case", "[" + entry(hookOrg, "webhookkey", "", hookKey1) + "]", []string{"[0].auth"}},
		{"no name for HttpHeader", "[" + entry(headerOrg, AuthHTTPHeader, "", headerKey1) + "]", []string{"[0].name", "required for HttpHeader"}},
		{"no name for HttpQueryString", "[" + entry(queryOrg, AuthHTTPQueryString, "", queryKey1) + "]", []string{"[0].name", "required for HttpQueryString"}},
		{"no keys", `[{"organizationId": "` + hookOrg + `", "auth": "WebhookKey", "keys": []}]`, []string{"[0].keys", "one key, or two"}},
		{"keys missing", `[{"organizationId": "` + hookOrg + `", "auth": "WebhookKey"}]`, []string{"[0].keys"}},
		{"three keys", "[" + entry(hookOrg, AuthWebhookKey, "", hookKey1, hookKey2, retiredKey) + "]", []string{"[0].keys", "one key, or two"}},
		{"short key", "[" + entry(hookOrg, AuthWebhookKey, "", hookKey1, "0123456789abcde") + "]", []string{"[0].keys", "at least 16 characters"}},
		{"unknown field", `[{"organizationId": "` + hookOrg + `", "auth": "WebhookKey", "keys": ["` + hookKey1 + `"], "header": "x"}]`,
			[]string{"NAC_DATAVERSE_ORGS", `unknown field "header"`}},
		{"an object, not an array", ok, []string{"NAC_DATAVERSE_ORGS", "not a JSON array"}},
		{"not JSON", "organizationId=" + hookOrg, []string{"NAC_DATAVERSE_ORGS", "not a JSON array"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orgs, err := ParseOrgAuths(tc.doc)
			if err == nil {
				t.Fatalf("accepted %s: %+v", tc.doc, orgs)
			}
			if orgs != nil {
				t.Errorf("organizations %+v came with the error", orgs)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestParseProfileSources(t *testing.T) {
	t.Parallel()
	const s1, s2 = "acme-secret-0000000001", "acme-secret-0000000002"
	sources, err := ParseProfileSources(`[{"source": "acme", "secrets": ["` + s1 + `", "` + s2 + `"]},
		{"source": "b_2-x", "secrets": ["0123456789abcdef"]}]`)
	if err != nil {
		t.Fatal(err)
	}
	if len(sources) != 2 || sources[0].Name != "acme" || !slices.Equal(sources[0].Secrets, []string{s1, s2}) ||
		sources[1].Name != "b_2-x" || !slices.Equal(sources[1].Secrets, []string{"0123456789abcdef"}) {
		t.Errorf("parsed %+v", sources)
	}
	if sources, err := ParseProfileSources(" "); sources != nil || err != nil {
		t.Errorf("blank: %v, %v; want nothing", sources, err)
	}

	src := func(name string, secrets ...string) string {
		return fmt.Sprintf(`{"source": %q, "secrets": ["%s"]}`, name, strings.Join(secrets, `", "`))
	}
	for _, tc := range []struct {
		name, doc string
		want      []string
	}{
		{"upper case", "[" + src("Acme", s1) + "]", []string{"NAC_PROFILE_SOURCES[0].source", `"Acme"`}},
		{"dot", "[" + src("acme.eu", s1) + "]", []string{"[0].source"}},
		{"empty name", "[" + src("", s1) + "]", []string{"[0].source"}},
		{"leading dash", "[" + src("-acme", s1) + "]", []string{"[0].source"}},
		{"64 characters", "[" + src(strings.Repeat("a", 64), s1) + "]", []string{"[0].source"}},
		{"duplicate", "[" + src("acme", s1) + "," + src("acme", s2) + "]", []string{"NAC_PROFILE_SOURCES[1].source", "listed twice"}},
		{"no secrets", `[{"source": "acme", "secrets": []}]`, []string{"[0].secrets", "one secret, or two"}},
		{"three secrets", "[" + src("acme", s1, s2, s1+"3") + "]", []string{"[0].secrets", "one secret, or two"}},
		{"short secret", "[" + src("acme", s1, "0123456789abcde") + "]", []string{"[0].secrets", "at least 16 characters"}},
		{"unknown field", `[{"name": "acme", "secrets": ["` + s1 + `"]}]`, []string{"NAC_PROFILE_SOURCES", `unknown field "name"`}},
		{"not an array", src("acme", s1), []string{"NAC_PROFILE_SOURCES", "not a JSON array"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sources, err := ParseProfileSources(tc.doc)
			if err == nil {
				t.Fatalf("accepted %s: %+v", tc.doc, sources)
			}
			if sources != nil {
				t.Errorf("sources %+v came with the error", sources)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	// 63 characters is the longest name.
	if _, err := ParseProfileSources("[" + src(strings.Repeat("a", 63), s1) + "]"); err != nil {
		t.Errorf("63-character name: %v", err)
	}
}

// configErrors lists the problems ParseConfig joined into err.
func configErrors(t *testing.T, err error) []string {
	t.Helper()
	var joined interface{ Unwrap() []error }
	if !errors.As(err, &joined) {
		t.Fatalf("error %v joins nothing", err)
	}
	var out []string
	for _, e := range joined.Unwrap() {
		out = append(out, e.Error())
	}
	return out
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	parse := func(env map[string]string, args ...string) (Config, error) {
		var out strings.Builder
		return ParseConfig(args, func(k string) string { return env[k] }, &out)
	}
	t.Run("organizations alone are enough", func(t *testing.T) {
		cfg, err := parse(map[string]string{"NAC_DATAVERSE_ORGS": validOrgs, "NAC_PROFILE_SECRET": testSecret})
		if err != nil {
			t.Fatal(err)
		}
		if len(cfg.DataverseKeys) != 0 || len(cfg.DataverseOrgs) != 3 || cfg.DataverseOrgs[0].OrganizationID != hookOrg {
			t.Errorf("keys %v, organizations %+v", cfg.DataverseKeys, cfg.DataverseOrgs)
		}
		if cfg.FlagColumn != "nac_orgchangestatus" || !slices.Equal(cfg.Tables, []string{"contact", "account", "opportunity", "systemuser", "connection"}) {
			t.Errorf("defaults: flag %q, tables %v", cfg.FlagColumn, cfg.Tables)
		}
	})
	t.Run("profile sources alone are enough", func(t *testing.T) {
		cfg, err := parse(map[string]string{
			"NAC_DATAVERSE_WEBHOOK_KEY": testKey + "," + rotatedKey,
			"NAC_PROFILE_SOURCES":       `[{"source": "acme", "secrets": ["acme-secret-0000000001"]}]`,
		})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(cfg.DataverseKeys, []string{testKey, rotatedKey}) || len(cfg.ProfileSecrets) != 0 ||
			len(cfg.ProfileSources) != 1 || cfg.ProfileSources[0].Name != "acme" {
			t.Errorf("cfg %+v", cfg)
		}
	})
	t.Run("neither", func(t *testing.T) {
		_, err := parse(map[string]string{"NAC_PROFILE_SECRET": testSecret})
		if err == nil {
			t.Fatal("accepted a configuration without any Dataverse credentials")
		}
		var naming []string
		for _, e := range configErrors(t, err) {
			if strings.Contains(e, "NAC_DATAVERSE_WEBHOOK_KEY") || strings.Contains(e, "NAC_DATAVERSE_ORGS") {
				naming = append(naming, e)
			}
		}
		if len(naming) != 1 || !strings.Contains(naming[0], "NAC_DATAVERSE_WEBHOOK_KEY") || !strings.Contains(naming[0], "NAC_DATAVERSE_ORGS") {
			t.Errorf("problems naming the Dataverse credentials: %q; want one naming both", naming)
		}
	})
	t.Run("invalid organizations", func(t *testing.T) {
		_, err := parse(map[string]string{
			"NAC_DATAVERSE_WEBHOOK_KEY": testKey,
			"NAC_DATAVERSE_ORGS":        `[{"organizationId": "contoso", "auth": "WebhookKey", "keys": ["` + hookKey1 + `"]}]`,
			"NAC_PROFILE_SECRET":        testSecret,
		})
		if err == nil || !strings.Contains(err.Error(), "NAC_DATAVERSE_ORGS[0].organizationId") {
			t.Errorf("err = %v, want the organization named", err)
		}
	})
	t.Run("no profile credentials", func(t *testing.T) {
		_, err := parse(map[string]string{"NAC_DATAVERSE_WEBHOOK_KEY": testKey})
		if err == nil || !strings.Contains(err.Error(), "NAC_PROFILE_SECRET or NAC_PROFILE_SOURCES") {
			t.Errorf("err = %v", err)
		}
	})
}
