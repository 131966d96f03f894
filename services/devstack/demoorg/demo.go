// Package demoorg loads a demo organization into a running devstack and
// shows what notatcompany made of it: `make demo`. Everything goes through
// the paths a customer's organization uses: the Dataverse stand-in's Web
// API (OAuth2 client credentials; its registered webhooks carry each change
// to ingest), the signed profile feed, and the admin API for sync users.
// Every run creates people, accounts and opportunities of its own, so a
// second run prints the same table as the first.
package demoorg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
)

// Config of one demo run.
type Config struct {
	APIURL     string // ingest's public API, http://127.0.0.1:8080
	StandinURL string // the stand-in's root, http://127.0.0.1:8081
	// ClientID and ClientSecret are the stand-in's application user.
	ClientID, ClientSecret string
	AdminToken             string
	ProfileSecret          string
	// Timeout bounds each wait for the pipeline.
	Timeout time.Duration
	// Quiet is how long no demo row may change before the table counts as
	// final (a flag that should not be set would show within it).
	Quiet time.Duration
	// Now dates the profiles and positions (zero: the time of the run).
	Now time.Time
}

// Result is what a run found.
type Result struct {
	Run          string
	Organization string
	Contacts     Table
	// ContactIDs are the contacts' ids, in the table's order (fresh each
	// run, so not in the table).
	ContactIDs    []string
	Opportunities []OpportunityRow
	Reversal      Reversal
	// Settled is how long the pipeline took, from the first profile sent
	// to the table being final (the quiet period excluded).
	Settled time.Duration
}

// Reversal is a flag cleared again: the seller moved the contact to the
// account of the company they joined.
type Reversal struct {
	Before, After Row
	To            string // the account moved to
	Took          time.Duration
}

type demo struct {
	cfg    Config
	out    io.Writer
	crm    crm
	ingest ingest
	org    string
	run    string
}

// Run loads a fresh copy of the demo organization, waits until the
// pipeline has written what it will, prints the table and one reversal to
// out, and returns them. A table the demo did not expect is printed and
// returned with an error.
func Run(ctx context.Context, cfg Config, out io.Writer) (*Result, error) {
	if cfg.Now.IsZero() {
		cfg.Now = time.Now()
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Minute
	}
	if cfg.Quiet <= 0 {
		cfg.Quiet = 1500 * time.Millisecond
	}
	client, err := dataverse.New(ctx, cfg.StandinURL, dataverse.Credentials{TokenURL: cfg.StandinURL + dataversetest.TokenPath,
		ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret}, dataverse.Options{Timeout: 10 * time.Second})
	if err != nil {
		return nil, err
	}
	d := &demo{cfg: cfg, out: out, crm: crm{client}, run: newRunID(),
		ingest: ingest{base: cfg.APIURL, http: &http.Client{Timeout: 10 * time.Second}, adminToken: cfg.AdminToken, profileSecret: cfg.ProfileSecret}}
	if d.org, err = d.crm.whoAmI(ctx); err != nil {
		return nil, fmt.Errorf("the stand-in at %s does not answer (is make run going?): %w", cfg.StandinURL, err)
	}
	d.printf("demo run %s: organization %s (the stand-in's WhoAmI)\n", d.run, d.org)
	res := &Result{Run: d.run, Organization: d.org}

	if err := d.prepareUsers(ctx); err != nil {
		return nil, err
	}
	// The company pages first: a profile judged before its company's
	// parent is known would see a move to a subsidiary as a leave.
	if err := d.feed(ctx, companyEvents(d.run, cfg.Now), fmt.Sprintf("%d company pages (company.changed), signed with X-LI-Signature", len(companies))); err != nil {
		return nil, err
	}
	l, err := d.loadCRM(ctx)
	if err != nil {
		return nil, err
	}
	profiles := profileEvents(d.run, cfg.Now)
	start := time.Now()
	if err := d.feed(ctx, profiles, fmt.Sprintf("%d profiles (profile.changed), observed now, signed", len(profiles))); err != nil {
		return nil, err
	}
	res.ContactIDs = l.contacts
	table, waitErr := d.settle(ctx, l)
	res.Contacts, res.Settled = table, time.Since(start)-cfg.Quiet
	if table == nil {
		return nil, waitErr
	}
	d.printf("\n")
	table.Render(out)
	n := table.Counts()
	d.printf("\n%d contacts: %d Not at Company, %d No Feedback, %d Ignore; the pipeline took %s\n",
		len(table), n[1], n[0], n[2], res.Settled.Round(10*time.Millisecond))
	if waitErr != nil {
		return res, waitErr
	}
	if res.Opportunities, err = d.opportunities(ctx, l); err != nil {
		return res, err
	}
	d.printf("\n")
	RenderOpportunities(out, res.Opportunities)
	if res.Reversal, err = d.reverse(ctx, l, table); err != nil {
		return res, err
	}
	return res, nil
}

func newRunID() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// errUnexpected: the pipeline settled on something the demo did not expect.
var errUnexpected = errors.New("the demo did not end as expected")
