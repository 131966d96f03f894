package ingest

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/conf"
	"github.com/notatcompany/notatcompany/services/shared/crmschema"
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
	// DataverseMaxBodyBytes and ProfileMaxBodyBytes are the largest bodies
	// each webhook takes (413 beyond); a Dataverse context can be 256 KB
	// and more, a profile batch is small.
	DataverseMaxBodyBytes int
	ProfileMaxBodyBytes   int
	// MaxInflightBytes bounds the request bodies held at once across all
	// requests; beyond it a request is answered 503 without being read.
	MaxInflightBytes int
	// Tables whose changes matter; other tables are acknowledged and ignored.
	Tables []string
	// WriteTag is the ?tag= our writer sets; changes carrying it are ours.
	WriteTag string
	// AppUserID is the Dataverse application user the writer acts as.
	AppUserID string
	// FlagColumn is the contact's flag column.
	FlagColumn string
	// AdminTokens are the bearer tokens of the admin API (two while
	// rotating); none: no admin API.
	AdminTokens []string
	// ConsoleSecureCookies marks the console's cookies Secure on plain
	// HTTP too, for a console behind a proxy that terminates TLS.
	ConsoleSecureCookies bool
	// Secrets are where the settings above that are secret came from; when
	// they come from files, a change of a file replaces them (nil: fixed).
	Secrets *conf.SecretSet
}

// Names of the secret settings: read from the environment or <NAME>_FILE,
// and re-read from their files while the service runs.
const (
	envDataverseKeys  = "NAC_DATAVERSE_WEBHOOK_KEY"
	envDataverseOrgs  = "NAC_DATAVERSE_ORGS"
	envProfileSecrets = "NAC_PROFILE_SECRET"
	envProfileSources = "NAC_PROFILE_SOURCES"
	envAdminToken     = "NAC_ADMIN_TOKEN"
)

var secretNames = []string{envDataverseKeys, envDataverseOrgs, envProfileSecrets, envProfileSources, envAdminToken}

// checker records a problem unless ok holds; *conf.Parser is one.
type checker interface {
	Check(ok bool, format string, args ...any)
}

// problems collects what a checker is told, for a reload of the secrets.
type problems []error

func (ps *problems) Check(ok bool, format string, args ...any) {
	if !ok {
		*ps = append(*ps, fmt.Errorf(format, args...))
	}
}

// setSecrets parses the secret settings from values, keyed by variable name.
func (c *Config) setSecrets(values map[string]string, ck checker) {
	c.DataverseKeys = conf.List(values[envDataverseKeys])
	orgs, err := ParseOrgAuths(values[envDataverseOrgs])
	ck.Check(err == nil, "%v", err)
	c.DataverseOrgs = orgs
	c.ProfileSecrets = conf.List(values[envProfileSecrets])
	sources, err := ParseProfileSources(values[envProfileSources])
	ck.Check(err == nil, "%v", err)
	c.ProfileSources = sources
	c.AdminTokens = conf.List(values[envAdminToken])
}

// withSecrets returns c with its secrets replaced by values, or every
// problem of the new values.
func (c Config) withSecrets(values map[string]string) (Config, error) {
	var ps problems
	c.setSecrets(values, &ps)
	c.validateSecrets(&ps)
	return c, errors.Join(ps...)
}

// ParseConfig reads the configuration from args and the environment.
func ParseConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	var c Config
	p := conf.NewParser("ingest", getenv, out)
	c.Common.Define(p, "127.0.0.1:9090")
	p.String(&c.HTTPAddr, "http-addr", "NAC_HTTP_ADDR", "127.0.0.1:8080", "address of the public webhook API")
	var tables string
	c.Secrets = p.Secrets(secretNames...)
	p.Duration(&c.PublishTimeout, "publish-timeout", "NAC_PUBLISH_TIMEOUT", 5*time.Second, "longest wait for JetStream to acknowledge a publish")
	p.Int(&c.DataverseMaxBodyBytes, "dataverse-max-body-bytes", "NAC_DATAVERSE_MAX_BODY_BYTES", 4<<20, "largest Dataverse webhook body accepted")
	p.Int(&c.ProfileMaxBodyBytes, "profile-max-body-bytes", "NAC_PROFILE_MAX_BODY_BYTES", 1<<20, "largest profile webhook body accepted")
	p.Int(&c.MaxInflightBytes, "max-inflight-bytes", "NAC_MAX_INFLIGHT_BYTES", 32<<20, "request body bytes held at once across all requests")
	p.String(&tables, "tables", "NAC_TABLES", "contact,account,opportunity,systemuser,connection", "Dataverse tables whose changes are published")
	p.String(&c.WriteTag, "write-tag", "NAC_WRITE_TAG", "notatcompany", "tag the writer sets on its Dataverse writes")
	p.String(&c.AppUserID, "app-user-id", "NAC_APP_USER_ID", "", "Dataverse application user id of the writer (its changes are ignored)")
	p.String(&c.FlagColumn, "flag-column", "NAC_FLAG_COLUMN", crmschema.DefaultFlagColumn, "logical name of the contact's Not at Company column")
	p.Bool(&c.ConsoleSecureCookies, "console-secure-cookies", "NAC_CONSOLE_SECURE_COOKIES", false, "mark the console's cookies Secure on plain HTTP too (behind a proxy that terminates TLS)")
	if err := p.Parse(args); err != nil {
		return c, err
	}
	p.Check(getenv("NAC_MAX_BODY_BYTES") == "", "NAC_MAX_BODY_BYTES: retired; set NAC_DATAVERSE_MAX_BODY_BYTES and NAC_PROFILE_MAX_BODY_BYTES")
	c.setSecrets(c.Secrets.Snapshot(), p)
	c.Tables = conf.List(tables)
	c.Common.Validate(p)
	c.Validate(p)
	return c, p.Err()
}

// Validate records the problems of c in p.
func (c *Config) Validate(p *conf.Parser) {
	c.validateSecrets(p)
	p.Check(c.HTTPAddr != "", "NAC_HTTP_ADDR: required")
	p.Check(c.PublishTimeout > 0 && c.PublishTimeout <= 30*time.Second, "NAC_PUBLISH_TIMEOUT=%s: want 0-30s (Dataverse waits 60 s in all)", c.PublishTimeout)
	p.Check(c.DataverseMaxBodyBytes >= 64<<10 && c.DataverseMaxBodyBytes <= 64<<20, "NAC_DATAVERSE_MAX_BODY_BYTES=%d: want 64 KiB-64 MiB", c.DataverseMaxBodyBytes)
	p.Check(c.ProfileMaxBodyBytes >= 16<<10 && c.ProfileMaxBodyBytes <= 16<<20, "NAC_PROFILE_MAX_BODY_BYTES=%d: want 16 KiB-16 MiB", c.ProfileMaxBodyBytes)
	// A body of unknown length is charged twice its limit (see readBody),
	// and the largest must fit.
	need := 2 * max(c.DataverseMaxBodyBytes, c.ProfileMaxBodyBytes, adminMaxBodyBytes)
	p.Check(c.MaxInflightBytes >= need && c.MaxInflightBytes <= 1<<30, "NAC_MAX_INFLIGHT_BYTES=%d: want %d (twice the largest body limit) to 1 GiB", c.MaxInflightBytes, need)
	p.Check(len(c.Tables) > 0, "NAC_TABLES: at least one table")
	p.Check(c.FlagColumn != "", "NAC_FLAG_COLUMN: required")
}

// validateSecrets records the problems of c's secret settings: at start,
// and again for every new set a rotation brings.
func (c *Config) validateSecrets(p checker) {
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
	p.Check(len(c.AdminTokens) <= 2, "NAC_ADMIN_TOKEN: want one token, or two comma-separated while rotating")
	for _, t := range c.AdminTokens {
		p.Check(len(t) >= 16, "NAC_ADMIN_TOKEN: each token needs at least 16 characters")
	}
}
