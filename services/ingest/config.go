// Package ingest is the front door: it authenticates webhooks from Dynamics
// 365 and from profile sources, normalizes them into event contracts and
// publishes them to JetStream, answering 2xx only once JetStream has them.
// It never evaluates anything.
package ingest

import (
	"io"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/conf"
)

// Config of the ingest service.
type Config struct {
	conf.Common
	HTTPAddr string
	// DataverseKeys are webhook keys (WebhookKey auth, ?code=) valid for any
	// organization without an entry in DataverseOrgs; two while rotating.
	DataverseKeys []string
	// DataverseOrgs authenticate organizations one by one, in any of the
	// three forms Dataverse offers.
	DataverseOrgs []OrgAuth
	// ProfileSecrets sign events posted to /webhooks/profile, from any
	// source; two while rotating.
	ProfileSecrets []string
	// ProfileSources each sign the events posted to
	// /webhooks/profile/{source}, which must name that source.
	ProfileSources []ProfileSource
	PublishTimeout time.Duration
	MaxBodyBytes   int
	// Tables whose changes matter; other tables are acknowledged and ignored.
	Tables []string
	// WriteTag is the ?tag= our writer sets; changes carrying it are ours.
	WriteTag string
	// AppUserID is the Dataverse application user the writer acts as.
	AppUserID string
	// FlagColumn is the contact's flag column: a change of it alone is the
	// echo of our own write, unless a user set Ignore.
	FlagColumn string
	// AdminToken is the bearer token of the admin API; empty: no admin API.
	AdminToken string
}

// ParseConfig reads the configuration from args and the environment.
func ParseConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	var c Config
	p := conf.NewParser("ingest", getenv, out)
	c.Common.Define(p, "127.0.0.1:9090")
	p.String(&c.HTTPAddr, "http-addr", "NAC_HTTP_ADDR", "127.0.0.1:8080", "address of the public webhook API")
	var dvKeys, dvOrgs, profileSecrets, profileSources, tables string
	p.Secret(&dvKeys, "NAC_DATAVERSE_WEBHOOK_KEY")
	p.Secret(&dvOrgs, "NAC_DATAVERSE_ORGS")
	p.Secret(&profileSecrets, "NAC_PROFILE_SECRET")
	p.Secret(&profileSources, "NAC_PROFILE_SOURCES")
	p.Secret(&c.AdminToken, "NAC_ADMIN_TOKEN")
	p.Duration(&c.PublishTimeout, "publish-timeout", "NAC_PUBLISH_TIMEOUT", 5*time.Second, "longest wait for JetStream to acknowledge a publish")
	p.Int(&c.MaxBodyBytes, "max-body-bytes", "NAC_MAX_BODY_BYTES", 4<<20, "largest webhook body accepted")
	p.String(&tables, "tables", "NAC_TABLES", "contact,account,opportunity,systemuser", "Dataverse tables whose changes are published")
	p.String(&c.WriteTag, "write-tag", "NAC_WRITE_TAG", "notatcompany", "tag the writer sets on its Dataverse writes")
	p.String(&c.AppUserID, "app-user-id", "NAC_APP_USER_ID", "", "Dataverse application user id of the writer (its changes are ignored)")
	p.String(&c.FlagColumn, "flag-column", "NAC_FLAG_COLUMN", "nac_orgchangestatus", "logical name of the contact's Not at Company column")
	if err := p.Parse(args); err != nil {
		return c, err
	}
	c.DataverseKeys = conf.List(dvKeys)
	orgs, err := ParseOrgAuths(dvOrgs)
	p.Check(err == nil, "%v", err)
	c.DataverseOrgs = orgs
	c.ProfileSecrets = conf.List(profileSecrets)
	sources, err := ParseProfileSources(profileSources)
	p.Check(err == nil, "%v", err)
	c.ProfileSources = sources
	c.Tables = conf.List(tables)
	c.Common.Validate(p)
	c.Validate(p)
	return c, p.Err()
}

// Validate records the problems of c in p.
func (c *Config) Validate(p *conf.Parser) {
	p.Check(len(c.DataverseKeys) > 0 || len(c.DataverseOrgs) > 0, "NAC_DATAVERSE_WEBHOOK_KEY or NAC_DATAVERSE_ORGS: at least one is required")
	p.Check(len(c.DataverseKeys) <= 2, "NAC_DATAVERSE_WEBHOOK_KEY: want one key, or two comma-separated while rotating")
	for _, k := range c.DataverseKeys {
		p.Check(len(k) >= 16, "NAC_DATAVERSE_WEBHOOK_KEY: each key needs at least 16 characters")
	}
	p.Check(len(c.ProfileSecrets) > 0 || len(c.ProfileSources) > 0, "NAC_PROFILE_SECRET or NAC_PROFILE_SOURCES: at least one is required")
	p.Check(len(c.ProfileSecrets) <= 2, "NAC_PROFILE_SECRET: want one secret, or two comma-separated while rotating")
	for _, s := range c.ProfileSecrets {
		p.Check(len(s) >= 16, "NAC_PROFILE_SECRET: each secret needs at least 16 characters")
	}
	p.Check(c.HTTPAddr != "", "NAC_HTTP_ADDR: required")
	p.Check(c.PublishTimeout > 0 && c.PublishTimeout <= 30*time.Second, "NAC_PUBLISH_TIMEOUT=%s: want 0-30s (Dataverse waits 60 s in all)", c.PublishTimeout)
	p.Check(c.MaxBodyBytes >= 64<<10, "NAC_MAX_BODY_BYTES=%d: want at least 64 KiB", c.MaxBodyBytes)
	p.Check(len(c.Tables) > 0, "NAC_TABLES: at least one table")
	p.Check(c.FlagColumn != "", "NAC_FLAG_COLUMN: required")
	p.Check(c.AdminToken == "" || len(c.AdminToken) >= 16, "NAC_ADMIN_TOKEN: at least 16 characters")
}
