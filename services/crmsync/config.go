// Package crmsync reads the Dynamics 365 tables the validator uses through
// the Web API and feeds every row into the pipeline as the same CrmChange a
// webhook produces: a back-fill when an organization is switched on (or on
// demand), a reconciliation sweep of delta reads every day, read-back of
// changes whose webhook was too large, and drift repair of the flag column.
// Its workers run in the writer's process, which holds the Dataverse
// credentials and the request budget they share.
package crmsync

import (
	"regexp"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/conf"
	"github.com/notatcompany/notatcompany/services/shared/crmschema"
)

// Config of the sync workers.
type Config struct {
	// Off runs no sync worker in this process.
	Off bool
	// Interval is how often each organization with data validation on is
	// swept (delta reads).
	Interval time.Duration
	// PageSize is the rows per page (odata.maxpagesize), 1-5000.
	PageSize int
	// MaxLag is how many CRM changes may wait for the validator before a
	// read waits: a back-fill never holds live webhooks back by more.
	MaxLag int
	// Columns are the organization-specific columns the validator reads;
	// the flag column comes from the writer's configuration.
	Columns crmschema.Columns
}

var columnRE = regexp.MustCompile(`^[a-z][a-z0-9_]{1,99}$`)

// Define declares the settings on p (the flag column is the caller's).
func (c *Config) Define(p *conf.Parser) {
	p.Bool(&c.Off, "sync-off", "NAC_SYNC_OFF", false, "run no back-fill, sweep or read-back worker in this process")
	p.Duration(&c.Interval, "sync-interval", "NAC_SYNC_INTERVAL", 24*time.Hour, "how often each organization is swept with delta reads (at least 15m)")
	p.Int(&c.PageSize, "sync-page-size", "NAC_SYNC_PAGE_SIZE", 5000, "rows per page of a table read, 1-5000")
	p.Int(&c.MaxLag, "sync-max-lag", "NAC_SYNC_MAX_LAG", 2000, "CRM changes waiting for the validator beyond which a read waits")
	p.String(&c.Columns.ProfileURL, "profile-url-column", "NAC_PROFILE_URL_COLUMN", "", "contact column holding a LinkedIn profile URL, if any (as the validator's)")
	p.String(&c.Columns.MemberID, "member-id-column", "NAC_MEMBER_ID_COLUMN", "", "contact column holding the member id, if any (as the validator's)")
	p.String(&c.Columns.CompanyID, "company-id-column", "NAC_COMPANY_ID_COLUMN", "", "account column holding the company id, if any (as the validator's)")
	p.String(&c.Columns.LinkedInStatus, "linkedin-status-column", "NAC_LINKEDIN_STATUS_COLUMN", "", "LinkedIn's msdyn_orgchangestatus on contact, if the validator reads it beside the flag column (as the validator's)")
}

// Validate records the problems of c in p.
func (c *Config) Validate(p *conf.Parser) {
	if c.Off {
		return
	}
	p.Check(c.Interval >= 15*time.Minute, "NAC_SYNC_INTERVAL=%s: want at least 15m", c.Interval)
	p.Check(c.PageSize >= 1 && c.PageSize <= 5000, "NAC_SYNC_PAGE_SIZE=%d: want 1-5000", c.PageSize)
	p.Check(c.MaxLag >= 100, "NAC_SYNC_MAX_LAG=%d: want at least 100", c.MaxLag)
	for env, col := range map[string]string{"NAC_PROFILE_URL_COLUMN": c.Columns.ProfileURL, "NAC_MEMBER_ID_COLUMN": c.Columns.MemberID,
		"NAC_COMPANY_ID_COLUMN": c.Columns.CompanyID, "NAC_LINKEDIN_STATUS_COLUMN": c.Columns.LinkedInStatus} {
		p.Check(col == "" || columnRE.MatchString(col), "%s=%q: want a Dataverse logical name", env, col)
	}
	p.Check(c.Columns.LinkedInStatus == "" || c.Columns.LinkedInStatus != c.Columns.Flag,
		"NAC_LINKEDIN_STATUS_COLUMN: the flag column itself holds our own writes, not an independent source")
}
