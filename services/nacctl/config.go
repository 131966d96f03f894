// Package nacctl is the admin's command line: it provisions a Dynamics 365
// organization for notatcompany (`nacctl provision`, with --dry-run and
// --check), removes the webhook registration again (`nacctl
// deprovision`), back-fills or sweeps an organization through the
// running service (`nacctl backfill`, `nacctl sync`), explains, lists and
// reviews contacts' evaluations through its admin API (`nacctl explain`,
// `nacctl list`, `nacctl review`), and handles dead letters through it
// (`nacctl dlq`).
package nacctl

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"time"

	"github.com/notatcompany/notatcompany/services/nacctl/provision"
	"github.com/notatcompany/notatcompany/services/shared/buildinfo"
	"github.com/notatcompany/notatcompany/services/shared/conf"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// Commands nacctl knows.
const (
	CmdProvision   = "provision"
	CmdDeprovision = "deprovision"
)

// Config of one nacctl invocation.
type Config struct {
	Command string
	DryRun  bool
	Check   bool
	// Dataverse is the environment and the admin-capable credential.
	URL         string
	Credentials dataverse.Credentials
	Timeout     time.Duration
	Provision   provision.Config
}

// Usage is the top-level help.
const Usage = `usage: nacctl <command> [flags]

commands:
  provision     create or repair the flag column, the evidence columns, the four views
                and the webhook registration (--dry-run: print the plan; --check: exit 1 on drift)
  deprovision   remove the webhook's steps and service endpoint (--dry-run: print the plan);
                columns, views and data stay
  backfill      read every contact, account, opportunity and user of --org into the pipeline
                (through the running service's admin API), with a progress bar and a summary
  sync          run the reconciliation sweep of --org now (delta reads), likewise
  explain       why a contact is, or is not, flagged: nacctl explain <contact> --org <org> [--json]
  list          nacctl list flagged|at-risk|candidates --org <org> [--limit N] [--all] [--json]
  review        approve or reject a candidate below the threshold:
                nacctl review approve|reject <contact> --org <org> --reviewer <who>
  dlq           list, show, redrive or discard dead letters (nacctl dlq -h)

nacctl --version prints the build. Every flag is also a NAC_* environment variable;
nacctl <command> -h lists them.
`

// ErrUsage is a command line nacctl does not understand.
var ErrUsage = errors.New("usage")

// ParseConfig reads the command, its flags and the environment.
func ParseConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	var c Config
	if len(args) > 0 && (args[0] == "-version" || args[0] == "--version" || args[0] == "version") {
		fmt.Fprintf(out, "nacctl %s\n", buildinfo.Get())
		return c, conf.ErrVersion
	}
	if len(args) == 0 || (args[0] != CmdProvision && args[0] != CmdDeprovision) {
		fmt.Fprint(out, Usage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return c, errHelp
		}
		return c, ErrUsage
	}
	c.Command = args[0]
	d := provision.Defaults()
	c.Provision = d
	p := conf.NewParser("nacctl "+c.Command, getenv, out)
	p.Bool(&c.DryRun, "dry-run", "NAC_DRY_RUN", false, "print the plan and change nothing")
	if c.Command == CmdProvision {
		p.Bool(&c.Check, "check", "NAC_CHECK", false, "change nothing; exit 1 when anything differs from the desired state")
		p.Bool(&c.Provision.SetKey, "set-key", "NAC_PROVISION_SET_KEY", false, "write the webhook key again (Dataverse never returns it, so a rotation is not noticed otherwise)")
	}
	p.String(&c.URL, "dataverse-url", "NAC_DATAVERSE_URL", "", "Dataverse environment URL (https://<org>.crm.dynamics.com)")
	p.String(&c.Credentials.TokenURL, "token-url", "NAC_DATAVERSE_TOKEN_URL", "", "OAuth2 token endpoint (https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token)")
	p.String(&c.Credentials.ClientID, "client-id", "NAC_DATAVERSE_CLIENT_ID", "", "application (client) id of an application user with the System Customizer role")
	p.Secret(&c.Credentials.ClientSecret, "NAC_DATAVERSE_CLIENT_SECRET")
	p.String(&c.Credentials.Scope, "scope", "NAC_DATAVERSE_SCOPE", "", "OAuth2 scope; default <dataverse-url>/.default")
	p.Duration(&c.Timeout, "timeout", "NAC_DATAVERSE_TIMEOUT", 60*time.Second, "timeout of one Dataverse request (metadata writes are slow)")
	p.String(&c.Provision.FlagColumn, "flag-column", "NAC_FLAG_COLUMN", d.FlagColumn, "the contact's flag column: ours, created here, or msdyn_orgchangestatus with --takeover-linkedin")
	p.Bool(&c.Provision.TakeOverLinkedIn, "takeover-linkedin", "NAC_PROVISION_TAKEOVER_LINKEDIN", false, "write LinkedIn's msdyn_orgchangestatus instead of our column (only with LinkedIn Data Validation off)")
	p.Bool(&c.Provision.EvidenceColumns, "evidence-columns", "NAC_PROVISION_EVIDENCE_COLUMNS", d.EvidenceColumns, "create the reason, suggested company, detected-on and confidence columns")
	p.String(&c.Provision.ProfileURLColumn, "profile-url-column", "NAC_PROFILE_URL_COLUMN", "", "contact column with a LinkedIn profile URL, if any (the validator reads it)")
	p.String(&c.Provision.MemberIDColumn, "member-id-column", "NAC_MEMBER_ID_COLUMN", "", "contact column with a member id, if any (the validator reads it)")
	p.String(&c.Provision.LinkedInStatusColumn, "linkedin-status-column", "NAC_LINKEDIN_STATUS_COLUMN", "", "LinkedIn's msdyn_orgchangestatus, if the validator reads it beside the flag column")
	p.String(&c.Provision.CompanyIDColumn, "company-id-column", "NAC_COMPANY_ID_COLUMN", "", "account column with a company id, if any (the validator reads it)")
	p.String(&c.Provision.Publisher, "publisher", "NAC_PROVISION_PUBLISHER", d.Publisher, "unique name of the publisher")
	p.String(&c.Provision.Prefix, "prefix", "NAC_PROVISION_PREFIX", d.Prefix, "customization prefix of the publisher")
	p.String(&c.Provision.Solution, "solution", "NAC_PROVISION_SOLUTION", d.Solution, "unique name of the unmanaged solution that holds every component")
	p.String(&c.Provision.EndpointName, "endpoint-name", "NAC_PROVISION_ENDPOINT_NAME", d.EndpointName, "name of the service endpoint")
	p.String(&c.Provision.Endpoint.URL, "webhook-url", "NAC_PROVISION_WEBHOOK_URL", "", "the ingest's public URL of /webhooks/dataverse")
	p.String(&c.Provision.Endpoint.Auth, "webhook-auth", "NAC_PROVISION_WEBHOOK_AUTH", d.Endpoint.Auth, "WebhookKey, HttpHeader or HttpQueryString (as the ingest is configured)")
	p.String(&c.Provision.Endpoint.Name, "webhook-auth-name", "NAC_PROVISION_WEBHOOK_AUTH_NAME", "", "header or query parameter name for HttpHeader and HttpQueryString")
	p.Secret(&c.Provision.Endpoint.Key, "NAC_PROVISION_WEBHOOK_KEY")
	if err := p.Parse(args[1:]); err != nil {
		return c, err
	}
	if c.Provision.Endpoint.Key == "" {
		// The ingest's own key, the first while rotating.
		var keys string
		p.Secret(&keys, "NAC_DATAVERSE_WEBHOOK_KEY")
		if list := conf.List(keys); len(list) > 0 {
			c.Provision.Endpoint.Key = list[0]
		}
	}
	u, err := url.Parse(c.URL)
	p.Check(err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "", "NAC_DATAVERSE_URL=%q: want https://<org>.crm.dynamics.com", c.URL)
	p.Check(c.Credentials.TokenURL != "", "NAC_DATAVERSE_TOKEN_URL: required")
	p.Check(c.Credentials.ClientID != "", "NAC_DATAVERSE_CLIENT_ID: required")
	p.Check(c.Credentials.ClientSecret != "", "NAC_DATAVERSE_CLIENT_SECRET (or _FILE): required")
	p.Check(c.Timeout > 0, "NAC_DATAVERSE_TIMEOUT: must be positive")
	p.Check(!(c.DryRun && c.Check), "--dry-run and --check: choose one")
	if err := c.Provision.Validate(c.Command == CmdProvision); err != nil {
		p.Check(false, "%v", err)
	}
	return c, p.Err()
}
