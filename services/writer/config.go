// Package writer turns decisions into writes of the contact's flag column
// through the Dataverse Web API, and records every outcome in the audit trail.
package writer

import (
	"io"
	"net/url"
	"regexp"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/conf"
)

// Config of the writer service.
type Config struct {
	conf.Common
	// DataverseURL is the environment to write to; empty means dry run:
	// decisions are recorded as "would write" and nothing is sent.
	DataverseURL string
	TokenURL     string
	ClientID     string
	ClientSecret string
	// Scope overrides "<DataverseURL>/.default" (sovereign clouds).
	Scope          string
	FlagColumn     string
	WriteTag       string
	RequestTimeout time.Duration
	Workers        int
	HandleTimeout  time.Duration
}

// DryRun reports whether nothing is to be sent.
func (c Config) DryRun() bool { return c.DataverseURL == "" }

var columnRE = regexp.MustCompile(`^[a-z][a-z0-9_]{1,99}$`)

// ParseConfig reads the configuration from args and the environment.
func ParseConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	var c Config
	p := conf.NewParser("writer", getenv, out)
	c.Common.Define(p, "127.0.0.1:9092")
	p.String(&c.DataverseURL, "dataverse-url", "NAC_DATAVERSE_URL", "", "Dataverse environment URL (https://<org>.crm.dynamics.com); empty for a dry run")
	p.String(&c.TokenURL, "token-url", "NAC_DATAVERSE_TOKEN_URL", "", "OAuth2 token endpoint (https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token)")
	p.String(&c.ClientID, "client-id", "NAC_DATAVERSE_CLIENT_ID", "", "application (client) id of the Dataverse application user")
	p.Secret(&c.ClientSecret, "NAC_DATAVERSE_CLIENT_SECRET")
	p.String(&c.Scope, "scope", "NAC_DATAVERSE_SCOPE", "", "OAuth2 scope; default <dataverse-url>/.default")
	p.String(&c.FlagColumn, "flag-column", "NAC_FLAG_COLUMN", "nac_orgchangestatus", "logical name of the contact's Not at Company column (or msdyn_orgchangestatus)")
	p.String(&c.WriteTag, "write-tag", "NAC_WRITE_TAG", "notatcompany", "tag set on every write, so ingest drops the webhook it causes")
	p.Duration(&c.RequestTimeout, "request-timeout", "NAC_DATAVERSE_TIMEOUT", 15*time.Second, "timeout of one Dataverse request")
	p.Int(&c.Workers, "workers", "NAC_WORKERS", 8, "decisions written concurrently")
	p.Duration(&c.HandleTimeout, "handle-timeout", "NAC_HANDLE_TIMEOUT", 25*time.Second, "longest time one decision may take (keep under the 30 s ack wait)")
	if err := p.Parse(args); err != nil {
		return c, err
	}
	c.Common.Validate(p)
	c.Validate(p)
	return c, p.Err()
}

// Validate records the problems of c in p.
func (c *Config) Validate(p *conf.Parser) {
	if !c.DryRun() {
		u, err := url.Parse(c.DataverseURL)
		p.Check(err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "", "NAC_DATAVERSE_URL=%q: want https://<org>.crm.dynamics.com", c.DataverseURL)
		p.Check(c.TokenURL != "", "NAC_DATAVERSE_TOKEN_URL: required with NAC_DATAVERSE_URL")
		p.Check(c.ClientID != "", "NAC_DATAVERSE_CLIENT_ID: required with NAC_DATAVERSE_URL")
		p.Check(c.ClientSecret != "", "NAC_DATAVERSE_CLIENT_SECRET (or _FILE): required with NAC_DATAVERSE_URL")
	}
	p.Check(columnRE.MatchString(c.FlagColumn), "NAC_FLAG_COLUMN=%q: want a Dataverse logical name", c.FlagColumn)
	p.Check(c.RequestTimeout > 0, "NAC_DATAVERSE_TIMEOUT: must be positive")
	p.Check(c.Workers >= 1 && c.Workers <= 52, "NAC_WORKERS=%d: want 1-52 (Dataverse allows 52 concurrent requests per user)", c.Workers)
	p.Check(c.HandleTimeout > c.RequestTimeout && c.HandleTimeout < 30*time.Second, "NAC_HANDLE_TIMEOUT=%s: want more than NAC_DATAVERSE_TIMEOUT and under 30s", c.HandleTimeout)
}
