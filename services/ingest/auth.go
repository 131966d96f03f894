package ingest

import (
	"crypto/subtle"
	"fmt"
	"net/http"
	"regexp"
	"strings"

	"github.com/notatcompany/notatcompany/services/shared/conf"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// Dataverse service endpoint authentication types.
const (
	AuthWebhookKey      = "WebhookKey"      // ?code=<key>
	AuthHTTPHeader      = "HttpHeader"      // <name>: <key>
	AuthHTTPQueryString = "HttpQueryString" // ?<name>=<key>
)

// OrgAuth is how one Dataverse organization authenticates its webhooks.
// Keys holds one key, or two while a key is rotated.
type OrgAuth struct {
	OrganizationID string   `json:"organizationId"`
	Type           string   `json:"auth"`
	Name           string   `json:"name,omitempty"` // header or query parameter
	Keys           []string `json:"keys"`
}

// ParseOrgAuths reads the NAC_DATAVERSE_ORGS document (a JSON array).
func ParseOrgAuths(doc string) ([]OrgAuth, error) {
	orgs, err := conf.JSONList[OrgAuth](doc, "NAC_DATAVERSE_ORGS", "{organizationId, auth, name, keys}")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, o := range orgs {
		o.OrganizationID = strings.ToLower(o.OrganizationID)
		orgs[i].OrganizationID = o.OrganizationID
		where := fmt.Sprintf("NAC_DATAVERSE_ORGS[%d]", i)
		switch {
		case !dataverse.IsGUID(o.OrganizationID):
			return nil, fmt.Errorf("%s.organizationId %q: not a GUID", where, o.OrganizationID)
		case seen[o.OrganizationID]:
			return nil, fmt.Errorf("%s.organizationId %s: listed twice", where, o.OrganizationID)
		case o.Type != AuthWebhookKey && o.Type != AuthHTTPHeader && o.Type != AuthHTTPQueryString:
			return nil, fmt.Errorf("%s.auth %q: want %s, %s or %s", where, o.Type, AuthWebhookKey, AuthHTTPHeader, AuthHTTPQueryString)
		case o.Type != AuthWebhookKey && o.Name == "":
			return nil, fmt.Errorf("%s.name: required for %s", where, o.Type)
		case len(o.Keys) < 1 || len(o.Keys) > 2:
			return nil, fmt.Errorf("%s.keys: want one key, or two while rotating", where)
		}
		for _, k := range o.Keys {
			if len(k) < 16 {
				return nil, fmt.Errorf("%s.keys: each key needs at least 16 characters", where)
			}
		}
		seen[o.OrganizationID] = true
	}
	return orgs, nil
}

// authenticator checks a webhook's credentials against every configured
// organization, in constant time per key and without stopping at a match,
// so timing tells an attacker nothing about which key came close.
type authenticator struct {
	orgs []OrgAuth
	// anyOrg keys (NAC_DATAVERSE_WEBHOOK_KEY) are valid for organizations
	// without an entry of their own.
	anyOrg []string
}

// grant is what a request's credentials allow.
type grant struct {
	orgs   map[string]bool
	anyOrg bool
}

func (g grant) empty() bool { return len(g.orgs) == 0 && !g.anyOrg }

func matches(keys []string, given string) bool {
	ok := 0
	for _, k := range keys {
		ok |= subtle.ConstantTimeCompare([]byte(k), []byte(given))
	}
	return ok == 1 && given != ""
}

func (a *authenticator) authenticate(r *http.Request) grant {
	q := r.URL.Query()
	g := grant{anyOrg: matches(a.anyOrg, q.Get("code"))}
	for _, o := range a.orgs {
		var given string
		switch o.Type {
		case AuthWebhookKey:
			given = q.Get("code")
		case AuthHTTPHeader:
			given = r.Header.Get(o.Name)
		case AuthHTTPQueryString:
			given = q.Get(o.Name)
		}
		if matches(o.Keys, given) {
			if g.orgs == nil {
				g.orgs = map[string]bool{}
			}
			g.orgs[o.OrganizationID] = true
		}
	}
	return g
}

// allows reports whether the grant covers org: its own credentials, or the
// shared key when the organization has no entry of its own.
func (a *authenticator) allows(g grant, org string) bool {
	if g.orgs[org] {
		return true
	}
	if !g.anyOrg {
		return false
	}
	for _, o := range a.orgs {
		if o.OrganizationID == org {
			return false
		}
	}
	return true
}

// ProfileSource is a profile source with its own signing secrets (two
// while rotating), posting to /webhooks/profile/{name}.
type ProfileSource struct {
	Name    string   `json:"source"`
	Secrets []string `json:"secrets"`
}

var sourceNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ParseProfileSources reads the NAC_PROFILE_SOURCES document (a JSON array).
func ParseProfileSources(doc string) ([]ProfileSource, error) {
	sources, err := conf.JSONList[ProfileSource](doc, "NAC_PROFILE_SOURCES", "{source, secrets}")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i, src := range sources {
		where := fmt.Sprintf("NAC_PROFILE_SOURCES[%d]", i)
		switch {
		case !sourceNameRE.MatchString(src.Name):
			return nil, fmt.Errorf("%s.source %q: want lower-case letters, digits, '-' or '_'", where, src.Name)
		case seen[src.Name]:
			return nil, fmt.Errorf("%s.source %q: listed twice", where, src.Name)
		case len(src.Secrets) < 1 || len(src.Secrets) > 2:
			return nil, fmt.Errorf("%s.secrets: want one secret, or two while rotating", where)
		}
		for _, sec := range src.Secrets {
			if len(sec) < 16 {
				return nil, fmt.Errorf("%s.secrets: each secret needs at least 16 characters", where)
			}
		}
		seen[src.Name] = true
	}
	return sources, nil
}
