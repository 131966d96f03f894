package validator

import (
	"io"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/conf"
	"github.com/notatcompany/notatcompany/services/shared/crmschema"
	"github.com/notatcompany/notatcompany/services/validator/state"
)

// Config of the validator service.
type Config struct {
	conf.Common
	// FlagColumn is the contact's "Not at Company" choice column.
	FlagColumn string
	// Threshold is the least match confidence that may flag a contact.
	Threshold float64
	// Workers handle messages of each consumer concurrently.
	Workers       int
	HandleTimeout time.Duration
	// Optional LinkedIn columns: a profile URL or member id on contact, a
	// company id on account.
	ProfileURLColumn string
	MemberIDColumn   string
	CompanyIDColumn  string
	// LinkedInStatusColumn is LinkedIn's own msdyn_orgchangestatus, read as
	// corroboration when it is not the flag column itself.
	LinkedInStatusColumn string
	// MaxProfileAge: a profile observed longer ago says too little.
	MaxProfileAge time.Duration
	// InlineFanout is the most contacts an event evaluates itself; a larger
	// fan-out goes to the work queue in chunks of ChunkSize.
	InlineFanout int
	ChunkSize    int
}

// DefaultFlagColumn is the column provisioning creates.
const DefaultFlagColumn = crmschema.DefaultFlagColumn

// DefaultThreshold is the default least confidence that may flag.
const DefaultThreshold = 0.8

// ParseConfig reads the configuration from args and the environment.
func ParseConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	var c Config
	p := conf.NewParser("validator", getenv, out)
	c.Common.Define(p, "127.0.0.1:9091")
	c.define(p)
	if err := p.Parse(args); err != nil {
		return c, err
	}
	c.Common.Validate(p)
	c.Validate(p)
	return c, p.Err()
}

func (c *Config) define(p *conf.Parser) {
	p.String(&c.FlagColumn, "flag-column", "NAC_FLAG_COLUMN", DefaultFlagColumn, "logical name of the contact's Not at Company column (or msdyn_orgchangestatus)")
	p.Float(&c.Threshold, "confidence-threshold", "NAC_CONFIDENCE_THRESHOLD", DefaultThreshold, "least match confidence that may flag a contact")
	p.Int(&c.Workers, "workers", "NAC_WORKERS", 16, "messages handled concurrently per consumer (each mostly waits on JetStream round trips)")
	p.Duration(&c.HandleTimeout, "handle-timeout", "NAC_HANDLE_TIMEOUT", 20*time.Second, "longest time one event may take (keep under the 30 s ack wait)")
	p.String(&c.ProfileURLColumn, "profile-url-column", "NAC_PROFILE_URL_COLUMN", "", "contact column holding a LinkedIn profile URL, if the organization has one")
	p.String(&c.MemberIDColumn, "member-id-column", "NAC_MEMBER_ID_COLUMN", "", "contact column holding the member id, if the organization has one")
	p.String(&c.CompanyIDColumn, "company-id-column", "NAC_COMPANY_ID_COLUMN", "", "account column holding the company id, if the organization has one")
	p.String(&c.LinkedInStatusColumn, "linkedin-status-column", "NAC_LINKEDIN_STATUS_COLUMN", "", "LinkedIn's msdyn_orgchangestatus on contact, if the organization has it beside the flag column: corroborates a leave, and its Ignore (2) is respected")
	p.Duration(&c.MaxProfileAge, "max-profile-age", "NAC_MAX_PROFILE_AGE", 548*24*time.Hour, "a profile observed longer ago is too stale to flag on")
	p.Int(&c.InlineFanout, "inline-fanout", "NAC_INLINE_FANOUT", 200, "most contacts one event evaluates itself; more go to the work queue")
	p.Int(&c.ChunkSize, "chunk-size", "NAC_CHUNK_SIZE", 500, "contacts per work queue chunk")
}

// Validate records the problems of c in p.
func (c *Config) Validate(p *conf.Parser) {
	p.Check(crmschema.IsColumnName(c.FlagColumn), "NAC_FLAG_COLUMN=%q: want a Dataverse logical name", c.FlagColumn)
	p.Check(c.Threshold >= 0 && c.Threshold <= 1, "NAC_CONFIDENCE_THRESHOLD=%v: want 0-1", c.Threshold)
	p.Check(c.Workers >= 1 && c.Workers <= 256, "NAC_WORKERS=%d: want 1-256", c.Workers)
	p.Check(c.HandleTimeout > 0 && c.HandleTimeout < 30*time.Second, "NAC_HANDLE_TIMEOUT=%s: want 0-30s", c.HandleTimeout)
	for env, col := range map[string]string{"NAC_PROFILE_URL_COLUMN": c.ProfileURLColumn, "NAC_MEMBER_ID_COLUMN": c.MemberIDColumn, "NAC_COMPANY_ID_COLUMN": c.CompanyIDColumn} {
		p.Check(col == "" || crmschema.IsColumnName(col), "%s=%q: want a Dataverse logical name", env, col)
	}
	p.Check(c.LinkedInStatusColumn == "" || crmschema.IsColumnName(c.LinkedInStatusColumn), "NAC_LINKEDIN_STATUS_COLUMN=%q: want a Dataverse logical name", c.LinkedInStatusColumn)
	p.Check(c.LinkedInStatusColumn == "" || c.LinkedInStatusColumn != c.FlagColumn, "NAC_LINKEDIN_STATUS_COLUMN: the flag column itself holds our own writes, not an independent source")
	p.Check(c.MaxProfileAge >= 0, "NAC_MAX_PROFILE_AGE: must not be negative")
	p.Check(c.InlineFanout >= 1, "NAC_INLINE_FANOUT: at least 1")
	p.Check(c.ChunkSize >= 1 && c.ChunkSize <= 5000, "NAC_CHUNK_SIZE=%d: want 1-5000", c.ChunkSize)
}

// Columns are the organization-specific columns the state keeps.
func (c Config) Columns() state.Columns {
	return state.Columns{Flag: c.FlagColumn, ProfileURL: c.ProfileURLColumn, MemberID: c.MemberIDColumn, CompanyID: c.CompanyIDColumn,
		LinkedInStatus: c.LinkedInStatusColumn}
}
