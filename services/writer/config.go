package writer

import (
	"fmt"
	"io"
	"net/url"
	"strings"
	"time"

	"github.com/notatcompany/notatcompany/services/crmsync"
	"github.com/notatcompany/notatcompany/services/shared/conf"
	"github.com/notatcompany/notatcompany/services/shared/crmschema"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// Config of the writer service.
type Config struct {
	conf.Common
	// Default is the Dataverse environment of every organization without a
	// target of its own; no URL means dry run: decisions are recorded as
	// "would write" and nothing is sent.
	Default TargetConfig
	// Targets are organizations with their own environment or settings.
	Targets    []TargetConfig
	FlagColumn string
	WriteTag   string
	// Evidence names the columns written with the flag (see evidence.go).
	Evidence EvidenceConfig
	// BatchSize is the most writes per $batch request (1: one PATCH each).
	BatchSize int
	// Linger is how long a batch waits to fill after its first decision
	// while more are pending (bus.BatchRunner); a lone one goes at once.
	Linger         time.Duration
	Budget         Budget
	RequestTimeout time.Duration
	// Workers is how many batches are written at once.
	Workers       int
	HandleTimeout time.Duration
	// LeaseTTL is how long a contact's write lease lasts when its holder
	// does not give it back (it died): longer than a holder can write.
	LeaseTTL time.Duration
	// Sync are the back-fill, sweep and read-back workers that run here.
	Sync crmsync.Config
}

// TargetConfig is where one organization's decisions are written.
type TargetConfig struct {
	OrganizationID string `json:"organizationId"`
	URL            string `json:"url"`
	TokenURL       string `json:"tokenUrl"`
	ClientID       string `json:"clientId"`
	ClientSecret   string `json:"clientSecret"`
	// ClientSecretFile is the file the default target's secret came from
	// (NAC_DATAVERSE_CLIENT_SECRET_FILE), read again before each token.
	ClientSecretFile string `json:"-"`
	Scope            string `json:"scope,omitempty"`
	// Disabled switches data validation off: nothing is written.
	Disabled bool `json:"disabled,omitempty"`
}

// DryRun reports whether nothing is to be sent.
func (t TargetConfig) DryRun() bool { return t.URL == "" }

func (t TargetConfig) credentials() dataverse.Credentials {
	return dataverse.Credentials{TokenURL: t.TokenURL, ClientID: t.ClientID, ClientSecret: t.ClientSecret, ClientSecretFile: t.ClientSecretFile, Scope: t.Scope}
}

// Budget is the share of Dataverse's service protection limits the writer
// may use, per environment and application user, every replica together
// (budget.go cites the limits).
type Budget struct {
	Off bool
	// Requests per Window; Dataverse allows 6000. A $batch is one.
	Requests int
	// ExecutionTime is the combined execution time of the requests per
	// Window; Dataverse allows 20 minutes. Every operation of a $batch
	// counts.
	ExecutionTime time.Duration
	Window        time.Duration // sliding; Dataverse: 5 minutes
	// Concurrent requests in progress at once (a $batch is one); Dataverse
	// allows 52, and its x-ms-dop-hint lowers it when it says less.
	Concurrent int
}

// ParseConfig reads the configuration from args and the environment.
func ParseConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	var c Config
	p := conf.NewParser("writer", getenv, out)
	c.Common.Define(p, "127.0.0.1:9092")
	p.String(&c.Default.URL, "dataverse-url", "NAC_DATAVERSE_URL", "", "Dataverse environment URL (https://<org>.crm.dynamics.com); empty for a dry run")
	p.String(&c.Default.TokenURL, "token-url", "NAC_DATAVERSE_TOKEN_URL", "", "OAuth2 token endpoint (https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token)")
	p.String(&c.Default.ClientID, "client-id", "NAC_DATAVERSE_CLIENT_ID", "", "application (client) id of the Dataverse application user")
	p.SecretFromFile(&c.Default.ClientSecret, &c.Default.ClientSecretFile, "NAC_DATAVERSE_CLIENT_SECRET")
	p.String(&c.Default.Scope, "scope", "NAC_DATAVERSE_SCOPE", "", "OAuth2 scope; default <dataverse-url>/.default")
	var targets string
	p.Secret(&targets, "NAC_DATAVERSE_TARGETS")
	p.String(&c.FlagColumn, "flag-column", "NAC_FLAG_COLUMN", crmschema.DefaultFlagColumn, "logical name of the contact's Not at Company column (or msdyn_orgchangestatus)")
	p.String(&c.WriteTag, "write-tag", "NAC_WRITE_TAG", "notatcompany", "tag set on every write, so ingest drops the webhook it causes")
	ev := crmschema.EvidenceColumns(crmschema.DefaultPrefix)
	p.Bool(&c.Evidence.Off, "evidence-off", "NAC_EVIDENCE_OFF", false, "write the flag alone, without the reason, suggested company, detected-on and confidence columns")
	p.String(&c.Evidence.Columns.Reason, "reason-column", "NAC_REASON_COLUMN", ev.Reason, "logical name of the contact's evidence sentence column")
	p.String(&c.Evidence.Columns.SuggestedCompany, "suggested-company-column", "NAC_SUGGESTED_COMPANY_COLUMN", ev.SuggestedCompany, "logical name of the contact's suggested new company column")
	p.String(&c.Evidence.Columns.DetectedOn, "detected-on-column", "NAC_DETECTED_ON_COLUMN", ev.DetectedOn, "logical name of the contact's detected-on date column")
	p.String(&c.Evidence.Columns.Confidence, "confidence-column", "NAC_CONFIDENCE_COLUMN", ev.Confidence, "logical name of the contact's confidence column")
	p.Int(&c.BatchSize, "batch-size", "NAC_BATCH_SIZE", 10, "writes per $batch request, 1-1000 (1: one PATCH per decision)")
	p.Duration(&c.Linger, "batch-linger", "NAC_BATCH_LINGER", 20*time.Millisecond, "how long a batch waits to fill after its first decision while more are pending (a lone decision goes at once)")
	p.Bool(&c.Budget.Off, "budget-off", "NAC_BUDGET_OFF", false, "write as fast as Dataverse answers (benchmarks only)")
	p.Int(&c.Budget.Requests, "budget-requests", "NAC_BUDGET_REQUESTS", 6000, "requests per window per environment and application user, every replica together (a $batch is one)")
	p.Duration(&c.Budget.ExecutionTime, "budget-execution-time", "NAC_BUDGET_EXECUTION_TIME", 20*time.Minute, "combined execution time of the requests per window, every replica together (each operation of a $batch counts)")
	p.Duration(&c.Budget.Window, "budget-window", "NAC_BUDGET_WINDOW", 5*time.Minute, "sliding window of the request and execution time budgets")
	p.Int(&c.Budget.Concurrent, "budget-concurrent", "NAC_BUDGET_CONCURRENT", 52, "requests in progress at once per environment and application user, every replica together (x-ms-dop-hint lowers it)")
	p.Duration(&c.RequestTimeout, "request-timeout", "NAC_DATAVERSE_TIMEOUT", 15*time.Second, "timeout of one Dataverse request")
	p.Int(&c.Workers, "workers", "NAC_WORKERS", 4, "batches written at once")
	p.Duration(&c.HandleTimeout, "handle-timeout", "NAC_HANDLE_TIMEOUT", 25*time.Second, "longest time one batch may take (keep under the 30 s ack wait)")
	p.Duration(&c.LeaseTTL, "lease-ttl", "NAC_LEASE_TTL", time.Minute, "how long a contact's write lease outlives a writer that died holding it (over NAC_HANDLE_TIMEOUT plus NAC_DATAVERSE_TIMEOUT)")
	c.Sync.Define(p)
	if err := p.Parse(args); err != nil {
		return c, err
	}
	c.Sync.Columns.Flag = c.FlagColumn
	var err error
	c.Targets, err = ParseTargets(targets)
	p.Check(err == nil, "%v", err)
	c.Common.Validate(p)
	c.Validate(p)
	return c, p.Err()
}

// ParseTargets reads the NAC_DATAVERSE_TARGETS document: a JSON array of
// {organizationId, url, tokenUrl, clientId, clientSecret, scope, disabled}.
func ParseTargets(doc string) ([]TargetConfig, error) {
	ts, err := conf.JSONList[TargetConfig](doc, "NAC_DATAVERSE_TARGETS", "targets")
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i := range ts {
		ts[i].OrganizationID = strings.ToLower(ts[i].OrganizationID)
		id := ts[i].OrganizationID
		if id == "" || seen[id] {
			return nil, fmt.Errorf("NAC_DATAVERSE_TARGETS[%d].organizationId %q: missing or listed twice", i, id)
		}
		seen[id] = true
	}
	return ts, nil
}

// Validate records the problems of c in p.
func (c *Config) Validate(p *conf.Parser) {
	type names struct{ url, tokenURL, clientID, secret string }
	checkTarget := func(n names, t TargetConfig) {
		if t.DryRun() || t.Disabled {
			return
		}
		u, err := url.Parse(t.URL)
		p.Check(err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "", "%s=%q: want https://<org>.crm.dynamics.com", n.url, t.URL)
		p.Check(t.TokenURL != "", "%s: required with %s", n.tokenURL, n.url)
		p.Check(t.ClientID != "", "%s: required with %s", n.clientID, n.url)
		p.Check(t.ClientSecret != "", "%s: required with %s", n.secret, n.url)
	}
	checkTarget(names{"NAC_DATAVERSE_URL", "NAC_DATAVERSE_TOKEN_URL", "NAC_DATAVERSE_CLIENT_ID", "NAC_DATAVERSE_CLIENT_SECRET (or _FILE)"}, c.Default)
	for i, t := range c.Targets {
		at := fmt.Sprintf("NAC_DATAVERSE_TARGETS[%d].", i)
		checkTarget(names{at + "url", at + "tokenUrl", at + "clientId", at + "clientSecret"}, t)
	}
	p.Check(crmschema.IsColumnName(c.FlagColumn), "NAC_FLAG_COLUMN=%q: want a Dataverse logical name", c.FlagColumn)
	if !c.Evidence.Off {
		for env, col := range map[string]string{"NAC_REASON_COLUMN": c.Evidence.Columns.Reason, "NAC_SUGGESTED_COMPANY_COLUMN": c.Evidence.Columns.SuggestedCompany,
			"NAC_DETECTED_ON_COLUMN": c.Evidence.Columns.DetectedOn, "NAC_CONFIDENCE_COLUMN": c.Evidence.Columns.Confidence} {
			p.Check(crmschema.IsColumnName(col) && col != c.FlagColumn, "%s=%q: want a Dataverse logical name other than the flag's", env, col)
		}
	}
	p.Check(c.BatchSize >= 1 && c.BatchSize <= dataverse.MaxBatch, "NAC_BATCH_SIZE=%d: want 1-%d", c.BatchSize, dataverse.MaxBatch)
	p.Check(c.Linger >= 0 && c.Linger <= time.Second, "NAC_BATCH_LINGER=%s: want 0-1s", c.Linger)
	if !c.Budget.Off {
		p.Check(c.Budget.Requests >= 1, "NAC_BUDGET_REQUESTS=%d: want at least 1", c.Budget.Requests)
		p.Check(c.Budget.Window >= time.Second, "NAC_BUDGET_WINDOW=%s: want at least 1s", c.Budget.Window)
		// A request waits for execution time only up to the whole window's.
		p.Check(c.Budget.ExecutionTime >= time.Second && c.Budget.ExecutionTime <= 1000*c.Budget.Window,
			"NAC_BUDGET_EXECUTION_TIME=%s: want at least 1s and at most 1000 times NAC_BUDGET_WINDOW", c.Budget.ExecutionTime)
		p.Check(c.Budget.Concurrent >= 1 && c.Budget.Concurrent <= 1000, "NAC_BUDGET_CONCURRENT=%d: want 1-1000", c.Budget.Concurrent)
	}
	p.Check(c.RequestTimeout > 0, "NAC_DATAVERSE_TIMEOUT: must be positive")
	p.Check(c.Workers >= 1 && c.Workers <= 52, "NAC_WORKERS=%d: want 1-52", c.Workers)
	p.Check(c.HandleTimeout > c.RequestTimeout && c.HandleTimeout < 30*time.Second, "NAC_HANDLE_TIMEOUT=%s: want more than NAC_DATAVERSE_TIMEOUT and under 30s", c.HandleTimeout)
	// A write the client gave up on may still reach the row a little
	// later: the lease covers the whole batch and one request more.
	c.Sync.Validate(p)
	p.Check(c.LeaseTTL >= c.HandleTimeout+c.RequestTimeout, "NAC_LEASE_TTL=%s: want at least NAC_HANDLE_TIMEOUT plus NAC_DATAVERSE_TIMEOUT (%s)", c.LeaseTTL, c.HandleTimeout+c.RequestTimeout)
}
