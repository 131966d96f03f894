package demoorg

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/notatcompany/notatcompany/services/nacctl/provision"
	"github.com/notatcompany/notatcompany/services/shared/crmschema"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

var evidence = crmschema.EvidenceColumns(crmschema.DefaultPrefix)

// readTable reads the run's contacts back from the stand-in, as a person
// would look at them in Dynamics.
func (d *demo) readTable(ctx context.Context, l *loaded) (Table, error) {
	flag := crmschema.DefaultFlagColumn
	var t Table
	for i, id := range l.contacts {
		row, ok, err := d.crm.get(ctx, "contacts", id, "firstname", "lastname", "_parentcustomerid_value", flag, evidence.Reason, evidence.SuggestedCompany)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("contact %s (%s) is gone from the stand-in", id, cast[i].name())
		}
		account, err := d.accountName(ctx, l, str(row, "_parentcustomerid_value"))
		if err != nil {
			return nil, err
		}
		v, _ := row[flag].(float64)
		t = append(t, Row{Contact: strings.TrimSpace(str(row, "firstname") + " " + str(row, "lastname")), Account: account,
			Case: cast[i].kind, Flag: int(v), Reason: str(row, evidence.Reason), SuggestedCompany: str(row, evidence.SuggestedCompany)})
	}
	return t, nil
}

func (d *demo) accountName(ctx context.Context, l *loaded, id string) (string, error) {
	if id == "" {
		return "", nil
	}
	if name, ok := l.accountNames[id]; ok {
		return name, nil
	}
	row, _, err := d.crm.get(ctx, "accounts", id, "name")
	if err != nil {
		return "", err
	}
	l.accountNames[id] = str(row, "name")
	return l.accountNames[id], nil
}

// unexpected lists the rows that are not yet as their case expects: the
// flag, and for Not at Company the reason beside it; no reason otherwise.
func unexpected(t Table) []string {
	var out []string
	for _, r := range t {
		want := r.Case.expected()
		switch {
		case r.Flag != want:
			out = append(out, fmt.Sprintf("%s: flag %d, want %d (%s)", r.Contact, r.Flag, want, r.Case))
		case want == 1 && r.Reason == "":
			out = append(out, fmt.Sprintf("%s: flagged without a reason", r.Contact))
		case want != 1 && r.Reason != "":
			out = append(out, fmt.Sprintf("%s: a reason without the flag", r.Contact))
		}
	}
	return out
}

// settle polls the run's contacts until each is as its case expects and
// nothing changed for the quiet period, telling how far the pipeline got.
// On a timeout the table as it stands comes back with the error.
func (d *demo) settle(ctx context.Context, l *loaded) (Table, error) {
	d.printf("  waiting        for the pipeline (polling the stand-in's rows); contacts flagged so far:")
	deadline := time.Now().Add(d.cfg.Timeout)
	var last Table
	changed := time.Now()
	for {
		t, err := d.readTable(ctx, l)
		if err != nil {
			d.printf("\n")
			return nil, err
		}
		if !slices.Equal(t, last) {
			last, changed = t, time.Now()
			d.printf(" %d", t.Counts()[1])
		}
		missing := unexpected(t)
		if len(missing) == 0 && time.Since(changed) >= d.cfg.Quiet {
			d.printf(", settled\n")
			return t, nil
		}
		if time.Now().After(deadline) {
			d.printf("\n")
			if len(missing) == 0 {
				return t, fmt.Errorf("the demo's rows kept changing for %s", d.cfg.Timeout)
			}
			return t, fmt.Errorf("%w after %s: %s", errUnexpected, d.cfg.Timeout, strings.Join(missing, "; "))
		}
		select {
		case <-ctx.Done():
			d.printf("\n")
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// opportunities lists the run's opportunities and whether the provisioned
// view of opportunities at risk shows each.
func (d *demo) opportunities(ctx context.Context, l *loaded) ([]OpportunityRow, error) {
	ids, err := provision.ViewIDs(ctx, d.crm.c, crmschema.DefaultFlagColumn)
	if err != nil {
		return nil, fmt.Errorf("the provisioned views: %w", err)
	}
	var view string
	for _, v := range provision.Views(crmschema.DefaultFlagColumn) {
		if v.Table == "opportunity" && strings.HasPrefix(v.Name, "All ") {
			view = ids[v.Name]
		}
	}
	if view == "" {
		return nil, fmt.Errorf("the view of all opportunities at risk is not provisioned")
	}
	res, _ := dataverse.Set("opportunities")
	rows, err := d.crm.c.List(ctx, res, map[string][]string{"savedQuery": {view}}, nil, 0)
	if err != nil {
		return nil, fmt.Errorf("run the view of opportunities at risk: %w", err)
	}
	atRisk := map[string]bool{}
	for _, r := range rows {
		atRisk[str(r, "opportunityid")] = true
	}
	var out []OpportunityRow
	for i, o := range opportunities {
		out = append(out, OpportunityRow{Opportunity: o.name, Account: accountByKey(o.account).name(), Contact: o.contact,
			AtRisk: atRisk[l.opportunities[i]]})
	}
	return out, nil
}

// reverse has the seller move a leaver to the account of the company they
// joined, and waits for the flag and its evidence to clear.
func (d *demo) reverse(ctx context.Context, l *loaded, t Table) (Reversal, error) {
	i := slices.IndexFunc(cast, func(p person) bool { return p.name() == reversalOf })
	p := cast[i]
	to := accountOfCompany(p.to)
	rev := Reversal{Before: t[i], To: to.name()}
	d.printf("\nreversal: %s's seller moves the contact to the account %s, where the profile says they work now\n", p.name(), to.name())
	start := time.Now()
	err := d.crm.update(ctx, "contacts", l.contacts[i], map[string]any{
		"parentcustomerid_account@odata.bind": "/accounts(" + l.accounts[to.key] + ")"}, p.ownedBy())
	if err != nil {
		return rev, err
	}
	err = poll(ctx, d.cfg.Timeout, 100*time.Millisecond, "the flag of "+p.name()+" cleared", func() (bool, error) {
		now, err := d.readTable(ctx, l)
		if err != nil {
			return false, err
		}
		rev.After = now[i]
		return rev.After.Flag == 0 && rev.After.Reason == "" && rev.After.SuggestedCompany == "", nil
	})
	rev.Took = time.Since(start)
	d.printf("  before  %s  %d %s  %s\n", rev.Before.Account, rev.Before.Flag, FlagName(rev.Before.Flag), dash(rev.Before.Reason))
	d.printf("  after   %s  %d %s  %s  (%s later)\n", rev.After.Account, rev.After.Flag, FlagName(rev.After.Flag), dash(rev.After.Reason),
		rev.Took.Round(10*time.Millisecond))
	return rev, err
}

func accountOfCompany(companyID string) account {
	for _, a := range accounts {
		if a.company == companyID {
			return a
		}
	}
	return account{}
}

func str(row map[string]any, col string) string {
	s, _ := row[col].(string)
	return s
}
