package demoorg

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/crmschema"
)

// loaded is what one run put into the organization, by the cast's keys.
type loaded struct {
	accounts      map[string]string // account key → accountid
	accountNames  map[string]string // accountid → name
	contacts      []string          // contactid, in the cast's order
	opportunities []string          // opportunityid, in the list's order
}

// prepareUsers makes the demo's users exist in the CRM and its sellers,
// and only they, sync users of the organization, reading it back.
func (d *demo) prepareUsers(ctx context.Context) error {
	for _, u := range users {
		_, ok, err := d.crm.get(ctx, "systemusers", u.id, "fullname")
		if err != nil {
			return err
		}
		if !ok {
			if _, err := d.crm.create(ctx, "systemusers", map[string]any{"systemuserid": u.id, "fullname": u.name, "isdisabled": false}, user{}); err != nil {
				return err
			}
		}
		method := http.MethodPut
		if !u.sync {
			method = http.MethodDelete
		}
		if err := d.ingest.admin(ctx, method, d.orgPath("/sync-users/"+u.id), nil, nil); err != nil {
			return err
		}
	}
	// Admin changes are events: the answer says stored, the read shows
	// them once the validator applied them.
	var listed []string
	err := poll(ctx, d.cfg.Timeout, 100*time.Millisecond, "the sync users read back", func() (bool, error) {
		var res struct{ SyncUsers []string }
		if err := d.ingest.admin(ctx, http.MethodGet, d.orgPath("/sync-users"), nil, &res); err != nil {
			return false, err
		}
		listed = res.SyncUsers
		for _, u := range users {
			if slices.Contains(listed, u.id) != u.sync {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	var names []string
	for _, u := range users {
		if u.sync {
			names = append(names, u.name)
		}
	}
	d.printf("  sync users     %s (read back from GET /admin/orgs/{org}/sync-users: %d listed); %s is not one\n",
		strings.Join(names, ", "), len(listed), outsider.name)
	return d.switchOn(ctx)
}

// switchOn switches data validation on for the organization when it is off
// (the devstack starts with it on; someone may have switched it off).
func (d *demo) switchOn(ctx context.Context) error {
	var st struct {
		DataValidation     bool     `json:"dataValidation"`
		ReflagAfterIgnore  bool     `json:"reflagAfterIgnore"`
		KeepPersonOverride bool     `json:"keepPersonOverride"`
		Threshold          *float64 `json:"confidenceThreshold"`
	}
	if err := d.ingest.admin(ctx, http.MethodGet, d.orgPath("/settings"), nil, &st); err != nil {
		return err
	}
	if st.DataValidation {
		d.printf("  settings       data validation on\n")
		return nil
	}
	body := map[string]any{"dataValidation": true, "reflagAfterIgnore": st.ReflagAfterIgnore, "keepPersonOverride": st.KeepPersonOverride}
	if st.Threshold != nil {
		body["confidenceThreshold"] = *st.Threshold
	}
	if err := d.ingest.admin(ctx, http.MethodPut, d.orgPath("/settings"), body, nil); err != nil {
		return err
	}
	err := poll(ctx, d.cfg.Timeout, 100*time.Millisecond, "data validation switched on", func() (bool, error) {
		err := d.ingest.admin(ctx, http.MethodGet, d.orgPath("/settings"), nil, &st)
		return st.DataValidation, err
	})
	if err == nil {
		d.printf("  settings       data validation switched on (PUT /admin/orgs/{org}/settings, read back)\n")
	}
	return err
}

// loadCRM creates the accounts, contacts and opportunities through the
// Web API, each as its owner: every create raises the webhook the devstack
// registered, as a seller's edit in Dynamics does.
func (d *demo) loadCRM(ctx context.Context) (*loaded, error) {
	l := &loaded{accounts: map[string]string{}, accountNames: map[string]string{}}
	for _, a := range accounts {
		id, err := d.crm.create(ctx, "accounts", map[string]any{"name": a.name(), "websiteurl": a.website()}, a.owner)
		if err != nil {
			return nil, err
		}
		l.accounts[a.key], l.accountNames[id] = id, a.name()
	}
	flag := crmschema.DefaultFlagColumn
	byName := map[string]string{}
	for _, p := range cast {
		cols := map[string]any{"firstname": p.first, "lastname": p.last, "jobtitle": p.title, "emailaddress1": p.email(d.run),
			"parentcustomerid_account@odata.bind": "/accounts(" + l.accounts[p.account] + ")"}
		if p.kind == CaseIgnore {
			// The seller knows better and said so before any decision of ours.
			cols[flag] = 2
		}
		id, err := d.crm.create(ctx, "contacts", cols, p.ownedBy())
		if err != nil {
			return nil, err
		}
		l.contacts = append(l.contacts, id)
		byName[p.name()] = id
	}
	for _, o := range opportunities {
		id, err := d.crm.create(ctx, "opportunities", map[string]any{"name": o.name,
			"parentcontactid@odata.bind":    "/contacts(" + byName[o.contact] + ")",
			"customerid_account@odata.bind": "/accounts(" + l.accounts[o.account] + ")"}, o.owner)
		if err != nil {
			return nil, err
		}
		l.opportunities = append(l.opportunities, id)
	}
	d.printf("  CRM            %d accounts, %d contacts, %d opportunities created through the stand-in's Web API, each as its owner\n",
		len(accounts), len(cast), len(opportunities))
	return l, nil
}

// feed posts the company pages, then the profiles, to the signed feed.
func (d *demo) feed(ctx context.Context, events []event, what string) error {
	for len(events) > 0 {
		n := min(len(events), 100) // the most one request may carry
		if err := d.ingest.postEvents(ctx, events[:n]); err != nil {
			return err
		}
		events = events[n:]
	}
	d.printf("  profile feed   %s\n", what)
	return nil
}

func (d *demo) orgPath(rest string) string { return "/admin/orgs/" + d.org + rest }

func (d *demo) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }
