// Package provision reconciles a Dynamics 365 organization with what
// notatcompany needs there: its publisher and solution, the flag column
// and the evidence columns on contact, the four views, and the webhook
// (service endpoint, steps and images). It reads what exists, plans
// create / update / unchanged / conflict per component, and applies the
// plan idempotently: a second run changes nothing.
package provision

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/notatcompany/notatcompany/services/shared/crmschema"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// LinkedInColumn is LinkedIn Data Validation's own flag column.
const LinkedInColumn = "msdyn_orgchangestatus"

// Webhook authentication types of a service endpoint.
const (
	AuthWebhookKey      = "WebhookKey"      // ?code=<key>
	AuthHTTPHeader      = "HttpHeader"      // <name>: <key>
	AuthHTTPQueryString = "HttpQueryString" // ?<name>=<key>
)

// Config is the desired state of one organization.
type Config struct {
	// Publisher and Solution hold every component provisioning creates.
	Publisher         string // unique name
	Prefix            string // customization prefix, "nac"
	OptionValuePrefix int
	Solution          string
	// FlagColumn is the contact's flag column: ours (created here) or,
	// with TakeOverLinkedIn, LinkedIn's msdyn_orgchangestatus.
	FlagColumn       string
	TakeOverLinkedIn bool
	// EvidenceColumns creates the reason, suggested company, detected-on
	// and confidence columns the writer fills in.
	EvidenceColumns bool
	// Columns are the organization's extra columns the validator reads:
	// they join the steps' filtering attributes and images.
	ProfileURLColumn, MemberIDColumn, CompanyIDColumn string
	// LinkedInStatusColumn is msdyn_orgchangestatus when the validator reads
	// it beside the flag column.
	LinkedInStatusColumn string
	// Endpoint is where Dynamics posts the webhooks: the ingest.
	EndpointName string
	Endpoint     Endpoint
	// SetKey writes the endpoint's key even when nothing else changed:
	// Dataverse never returns it, so a rotated key cannot be noticed.
	SetKey bool
}

// Endpoint is the ingest's public webhook URL and its authentication.
type Endpoint struct {
	URL  string
	Auth string // WebhookKey, HttpHeader or HttpQueryString
	Name string // header or query parameter (HttpHeader, HttpQueryString)
	Key  string
}

// Defaults are the documented defaults.
func Defaults() Config {
	return Config{Publisher: "notatcompany", Prefix: crmschema.DefaultPrefix, OptionValuePrefix: 72150, Solution: "notatcompany",
		FlagColumn: crmschema.DefaultFlagColumn, EvidenceColumns: true, EndpointName: "notatcompany",
		Endpoint: Endpoint{Auth: AuthWebhookKey}}
}

// Columns are the columns the validator reads, as the validator is
// configured.
func (c Config) Columns() crmschema.Columns {
	return crmschema.Columns{Flag: c.FlagColumn, ProfileURL: c.ProfileURLColumn, MemberID: c.MemberIDColumn, CompanyID: c.CompanyIDColumn,
		LinkedInStatus: c.LinkedInStatusColumn}
}

// Validate returns every problem of c at once. needEndpoint is false for
// commands that do not register the webhook.
func (c Config) Validate(needEndpoint bool) error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(dataverse.IsLogicalName(c.Publisher), "publisher %q: want a lower-case unique name", c.Publisher)
	check(dataverse.IsLogicalName(c.Solution), "solution %q: want a lower-case unique name", c.Solution)
	check(len(c.Prefix) >= 2 && len(c.Prefix) <= 8 && dataverse.IsLogicalName(c.Prefix) && !strings.Contains(c.Prefix, "_"),
		"prefix %q: want 2-8 lower-case letters and digits", c.Prefix)
	check(c.OptionValuePrefix >= 10000 && c.OptionValuePrefix <= 99999, "option value prefix %d: want 10000-99999", c.OptionValuePrefix)
	check(dataverse.IsLogicalName(c.FlagColumn), "NAC_FLAG_COLUMN=%q: want a logical name", c.FlagColumn)
	switch {
	case c.TakeOverLinkedIn:
		check(c.FlagColumn == LinkedInColumn, "NAC_PROVISION_TAKEOVER_LINKEDIN: needs NAC_FLAG_COLUMN=%s", LinkedInColumn)
	case c.FlagColumn == LinkedInColumn:
		errs = append(errs, fmt.Errorf("NAC_FLAG_COLUMN=%s is LinkedIn's column: writing it needs NAC_PROVISION_TAKEOVER_LINKEDIN=true, only with LinkedIn Data Validation off", LinkedInColumn))
	default:
		check(strings.HasPrefix(c.FlagColumn, c.Prefix+"_"), "NAC_FLAG_COLUMN=%q: a column provisioning creates starts with the prefix %s_", c.FlagColumn, c.Prefix)
	}
	for _, col := range []string{c.ProfileURLColumn, c.MemberIDColumn, c.CompanyIDColumn, c.LinkedInStatusColumn} {
		check(col == "" || dataverse.IsLogicalName(col), "column %q: want a logical name", col)
	}
	check(c.EndpointName != "" && len(c.EndpointName) <= 100, "endpoint name %q: want 1-100 characters", c.EndpointName)
	if needEndpoint {
		u, err := url.Parse(c.Endpoint.URL)
		check(err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" && u.RawQuery == "",
			"NAC_PROVISION_WEBHOOK_URL=%q: want the ingest's public https URL of /webhooks/dataverse, without a query", c.Endpoint.URL)
		switch c.Endpoint.Auth {
		case AuthWebhookKey:
		case AuthHTTPHeader, AuthHTTPQueryString:
			check(c.Endpoint.Name != "" && !strings.ContainsAny(c.Endpoint.Name, `"<>&'`), "NAC_PROVISION_WEBHOOK_AUTH_NAME: required for %s, without quotes or markup", c.Endpoint.Auth)
		default:
			errs = append(errs, fmt.Errorf("NAC_PROVISION_WEBHOOK_AUTH=%q: want %s, %s or %s", c.Endpoint.Auth, AuthWebhookKey, AuthHTTPHeader, AuthHTTPQueryString))
		}
		check(len(c.Endpoint.Key) >= 16, "NAC_PROVISION_WEBHOOK_KEY (or _FILE): required, at least 16 characters (the ingest's key)")
	}
	return errors.Join(errs...)
}
