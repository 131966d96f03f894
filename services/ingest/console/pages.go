package console

import (
	"cmp"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/orgs"
	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
)

// pageSize is how many rows a list page shows.
const pageSize = 50

type homeData struct {
	Orgs  []string
	Error string
}

// home lists the organizations an admin set up, and opens any other.
func (c *Console) home(w http.ResponseWriter, r *http.Request) {
	if org := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("org"))); org != "" {
		if dataverse.IsGUID(org) {
			http.Redirect(w, r, Base+"/orgs/"+org+"/", http.StatusSeeOther)
			return
		}
		c.render(w, r, http.StatusBadRequest, "home", page{Title: "Organizations", Data: homeData{Error: "An organization is named by its GUID."}})
		return
	}
	list, err := c.opts.Orgs.Organizations(r.Context())
	if err != nil {
		c.unavailable(w, r, "the organizations", err)
		return
	}
	c.render(w, r, http.StatusOK, "home", page{Title: "Organizations", Data: homeData{Orgs: list}})
}

type statusData struct {
	Settings      orgs.Settings
	SettingsSet   bool
	SyncUsers     []string
	Job           *syncjobs.Status
	Budget        *Budget
	BudgetMissing string
}

// status is an organization's state: data validation, settings, sync
// users, the last sync job and its progress, the request budget.
func (c *Console) status(w http.ResponseWriter, r *http.Request) {
	org, ctx := orgOf(r), r.Context()
	var d statusData
	var err error
	if d.Settings, d.SettingsSet, err = c.opts.Orgs.Settings(ctx, org); err != nil {
		c.unavailable(w, r, "the settings", err)
		return
	}
	if d.SyncUsers, err = c.opts.Orgs.SyncUsers(ctx, org); err != nil {
		c.unavailable(w, r, "the sync users", err)
		return
	}
	if c.opts.Sync != nil {
		st, found, err := c.opts.Sync.Status(ctx, org)
		if err != nil {
			c.unavailable(w, r, "the sync status", err)
			return
		}
		if found {
			d.Job = &st
		}
	}
	switch {
	case c.opts.Budgets == nil:
		d.BudgetMissing = "The writer keeps the request budget in nac_budgets per environment and application user, keyed by a hash of both, which ingest does not hold: it cannot tell which budget is this organization's."
	default:
		b, found, err := c.opts.Budgets.Budget(ctx, org)
		if err != nil {
			c.unavailable(w, r, "the request budget", err)
			return
		}
		if found {
			d.Budget = &b
		} else {
			d.BudgetMissing = "No request was spent for this organization yet."
		}
	}
	c.render(w, r, http.StatusOK, "status", page{Title: "Status", Org: org, Tab: "status", Data: d})
}

type listData struct {
	List      string
	Heading   string
	Missing   string // why the list is not available
	Rows      []ContactRow
	Next      string
	Cursor    string
	CanReview bool
}

var listHeadings = map[string]string{
	ListFlagged:   "Flagged contacts",
	ListAtRisk:    "Opportunities at risk",
	ListCandidate: "Review queue: candidates below the threshold",
}

// list shows one page of a list.
func (c *Console) list(list string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		org := orgOf(r)
		d := listData{List: list, Heading: listHeadings[list], Cursor: r.URL.Query().Get("after"),
			CanReview: list == ListCandidate && c.opts.Reviewer != nil}
		if c.opts.Lists == nil {
			d.Missing = "This ingest has no reader of the validator's evaluations (the admin API's explain and list endpoints)."
		} else {
			p, err := c.opts.Lists.List(r.Context(), org, list, d.Cursor, pageSize)
			if err != nil {
				c.unavailable(w, r, "the list", err)
				return
			}
			d.Rows, d.Next = p.Rows, p.Next
		}
		c.render(w, r, http.StatusOK, "list", page{Title: d.Heading, Org: org, Tab: list, Notice: notice(r), Data: d})
	}
}

// review approves or rejects a candidate, then shows the queue again.
func (c *Console) review(w http.ResponseWriter, r *http.Request) {
	if !c.checkForm(w, r) {
		return
	}
	org, contact := orgOf(r), strings.ToLower(chi.URLParam(r, "contact"))
	action := r.PostForm.Get("action")
	switch {
	case c.opts.Reviewer == nil:
		c.fail(w, r, http.StatusNotFound, "Reviews are not available here.")
		return
	case !dataverse.IsGUID(contact):
		c.fail(w, r, http.StatusBadRequest, "The contact is named by its GUID.")
		return
	case action != "approve" && action != "reject":
		c.fail(w, r, http.StatusBadRequest, "A review approves or rejects.")
		return
	}
	s, _ := sessionOf(r)
	err := c.opts.Reviewer.Review(r.Context(), org, contact, action == "approve", s.actor())
	var refused *Refused
	switch {
	case errors.As(err, &refused):
		c.fail(w, r, refused.Status, refused.Detail)
		return
	case err != nil:
		c.unavailable(w, r, "the review", err)
		return
	}
	c.opts.Log.Info("console review", "org", org, "contact", contact, "action", action, "token", s.Token)
	http.Redirect(w, r, Base+"/orgs/"+org+"/review?done="+action, http.StatusSeeOther)
}

// explainGo opens the explain page of the contact a form names.
func (c *Console) explainGo(w http.ResponseWriter, r *http.Request) {
	contact := strings.ToLower(strings.TrimSpace(r.URL.Query().Get("contact")))
	if !dataverse.IsGUID(contact) {
		c.fail(w, r, http.StatusBadRequest, "The contact is named by its GUID.")
		return
	}
	http.Redirect(w, r, Base+"/orgs/"+orgOf(r)+"/contacts/"+contact, http.StatusSeeOther)
}

type explainData struct {
	Contact string
	Missing string
	E       *Explanation
}

// explain shows why a contact is where it is.
func (c *Console) explain(w http.ResponseWriter, r *http.Request) {
	org, contact := orgOf(r), strings.ToLower(chi.URLParam(r, "contact"))
	if !dataverse.IsGUID(contact) {
		c.fail(w, r, http.StatusBadRequest, "The contact is named by its GUID.")
		return
	}
	d := explainData{Contact: contact}
	status := http.StatusOK
	if c.opts.Explainer == nil {
		d.Missing = "Not available: this ingest has no reader of the validator's evaluations (the admin API's explain endpoint)."
	} else {
		e, err := c.opts.Explainer.Explain(r.Context(), org, contact)
		switch {
		case errors.Is(err, ErrNotFound) || err == nil && e == nil:
			d.Missing, status = "The validator has not evaluated this contact (yet).", http.StatusNotFound
		case err != nil:
			c.unavailable(w, r, "the explanation", err)
			return
		default:
			d.E = e
		}
	}
	c.render(w, r, status, "explain", page{Title: "Contact " + contact, Org: org, Tab: "explain", Data: d})
}

type deadLetterData struct {
	Missing string
	Letters []DeadLetter
	Next    uint64
	After   uint64
	Action  string // where the redrive forms post, without the sequence
}

// deadLetters lists the dead letters of an organization, or all of them.
func (c *Console) deadLetters(w http.ResponseWriter, r *http.Request) {
	org := orgOf(r)
	after, err := strconv.ParseUint(cmp.Or(r.URL.Query().Get("after"), "0"), 10, 64)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, "after is a stream sequence.")
		return
	}
	d := deadLetterData{After: after, Action: Base + "/deadletters/"}
	if org != "" {
		d.Action = Base + "/orgs/" + org + "/deadletters/"
	}
	if c.opts.DeadLetters == nil {
		d.Missing = "This ingest has no reader of the dead letter stream (the admin API's dead letter endpoints)."
	} else {
		p, err := c.opts.DeadLetters.List(r.Context(), org, after, pageSize)
		if err != nil {
			c.unavailable(w, r, "the dead letters", err)
			return
		}
		d.Letters, d.Next = p.Letters, p.Next
	}
	c.render(w, r, http.StatusOK, "deadletters", page{Title: "Dead letters", Org: org, Tab: "deadletters", Notice: notice(r), Data: d})
}

// redrive sends a dead letter back to where it came from.
func (c *Console) redrive(w http.ResponseWriter, r *http.Request) {
	if !c.checkForm(w, r) {
		return
	}
	org := orgOf(r)
	seq, err := strconv.ParseUint(chi.URLParam(r, "seq"), 10, 64)
	switch {
	case c.opts.DeadLetters == nil:
		c.fail(w, r, http.StatusNotFound, "Dead letters are not available here.")
		return
	case err != nil || seq == 0:
		c.fail(w, r, http.StatusBadRequest, "A dead letter is named by its sequence.")
		return
	}
	s, _ := sessionOf(r)
	outcome, err := c.opts.DeadLetters.Redrive(r.Context(), seq, s.actor())
	if errors.Is(err, ErrNotFound) {
		outcome, err = "gone", nil
	}
	if err != nil {
		c.unavailable(w, r, "the redrive", err)
		return
	}
	back := Base + "/deadletters"
	if org != "" {
		back = Base + "/orgs/" + org + "/deadletters"
	}
	http.Redirect(w, r, back+"?done="+noticeCode(outcome), http.StatusSeeOther)
}

// notices are the fixed messages a redirect after a form may ask for.
var notices = map[string]string{
	"approve":    "Approved: the validator flags the contact with reason reviewed.",
	"reject":     "Rejected: the contact stays at No Feedback until the evidence changes.",
	"redriven":   "Redriven: the message is back on its subject.",
	"superseded": "Not redriven: a newer message is on its subject; discard this one through the admin API.",
	"no_origin":  "Not redriven: the dead letter names no origin.",
	"gone":       "That dead letter is gone already (redriven or discarded).",
	"other":      "Done.",
}

func noticeCode(outcome string) string {
	if _, ok := notices[outcome]; ok {
		return outcome
	}
	return "other"
}

func notice(r *http.Request) string { return notices[r.URL.Query().Get("done")] }

// funcs are the templates' helpers.
var funcs = map[string]any{
	"flagName": func(v int) string {
		switch v {
		case 0:
			return "No Feedback"
		case 1:
			return "Not at Company"
		case 2:
			return "Ignore"
		}
		return "unknown"
	},
	"pct": func(v float64) string { return strconv.FormatFloat(v*100, 'f', 0, 64) + "%" },
	"ms": func(ms int64) string {
		if ms == 0 {
			return "–"
		}
		return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"when": func(t time.Time) string {
		if t.IsZero() {
			return "–"
		}
		return t.UTC().Format("2006-01-02 15:04:05 UTC")
	},
	"progress": func(t syncjobs.Table) int {
		if t.Done {
			return 100
		}
		if t.Total <= 0 {
			return 0
		}
		return min(100, t.Rows*100/t.Total)
	},
	"threshold": func(v float64) string {
		if v == 0 {
			return "the service default"
		}
		return strconv.FormatFloat(v, 'f', 2, 64)
	},
	"via": func(v string) string {
		switch v {
		case "contact_owner":
			return "the contact's owner"
		case "account_owner":
			return "the account's owner"
		case "opportunity_owner":
			return "an opportunity's owner"
		}
		return v
	},
	"short": func(id string) string {
		if len(id) > 8 {
			return id[:8] + "…"
		}
		return id
	},
}
