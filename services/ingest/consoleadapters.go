package ingest

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/notatcompany/notatcompany/services/ingest/console"
	"github.com/notatcompany/notatcompany/services/shared/deadletters"
	"github.com/notatcompany/notatcompany/services/shared/problem"
)

// The console's readers over the admin API's own.

// consoleDeadLetters is the console's view of the dead letter store the
// admin API uses: the same list, the same redrive, audited the same way.
type consoleDeadLetters struct{ store DeadLetterAdmin }

func (d consoleDeadLetters) List(ctx context.Context, org string, after uint64, limit int) (console.DeadLetterPage, error) {
	p, err := d.store.List(ctx, deadletters.Filter{Organization: org}, after, limit)
	if err != nil {
		return console.DeadLetterPage{}, err
	}
	out := console.DeadLetterPage{Next: p.Next}
	for _, l := range p.DeadLetters {
		out.Letters = append(out.Letters, console.DeadLetter{Sequence: l.Sequence, Consumer: l.Consumer, Kind: l.Kind, Reason: l.Reason,
			OriginSubject: l.OriginSubject, Deliveries: l.Deliveries, At: l.DeadLetteredAt})
	}
	return out, nil
}

// Redrive answers what became of the dead letter: redriven, or not
// because a newer message is on its subject or it names no origin.
func (d consoleDeadLetters) Redrive(ctx context.Context, seq uint64, who console.Actor) (string, error) {
	out, err := d.store.Redrive(ctx, seq, deadletters.Actor{Name: who.Name, TokenFingerprint: who.TokenFingerprint})
	switch {
	case errors.Is(err, deadletters.ErrNotFound):
		return "", console.ErrNotFound
	case errors.Is(err, deadletters.ErrSuperseded):
		return deadletters.OutcomeSuperseded, nil
	case errors.Is(err, deadletters.ErrNoOrigin):
		return deadletters.OutcomeNoOrigin, nil
	case err != nil:
		return "", err
	}
	return out.Outcome, nil
}

// consoleAdmin reads the lists and the explanations, and reviews, through
// the admin API's own handlers, in process: what the console shows and
// does is what the admin API answers, refusals included.
type consoleAdmin struct {
	api    http.Handler
	tokens func() []string
}

// call runs one admin API request and decodes a 2xx answer into out; a
// 4xx is returned as a *console.Refused with the problem's detail.
func (a consoleAdmin) call(ctx context.Context, method, path string, header http.Header, out any) error {
	tokens := a.tokens()
	if len(tokens) == 0 {
		return errors.New("no admin token")
	}
	// A request of its own: the console's carries its router's state,
	// which the API's router would take for its own. It ends with ctx.
	own, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer context.AfterFunc(ctx, cancel)()
	req, err := http.NewRequestWithContext(own, method, path, nil)
	if err != nil {
		return err
	}
	maps.Copy(req.Header, header)
	req.Header.Set("Authorization", "Bearer "+tokens[0])
	rec := newRecorder()
	a.api.ServeHTTP(rec, req)
	switch {
	case rec.status/100 == 2:
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
			return fmt.Errorf("%s %s: decode the answer: %w", method, path, err)
		}
		return nil
	case rec.status/100 == 4:
		var p problem.Details
		_ = json.Unmarshal(rec.body.Bytes(), &p)
		return &console.Refused{Status: rec.status, Detail: cmp.Or(p.Detail, http.StatusText(rec.status))}
	}
	return fmt.Errorf("%s %s: %d %s", method, path, rec.status, bytes.TrimSpace(rec.body.Bytes()))
}

// adminLists are the admin API's list paths by the console's list names.
var adminLists = map[string]string{console.ListFlagged: "flagged", console.ListAtRisk: "at-risk", console.ListCandidate: "candidates"}

func (a consoleAdmin) List(ctx context.Context, org, list, cursor string, limit int) (console.ContactPage, error) {
	q := url.Values{"limit": {strconv.Itoa(limit)}}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	var page ListPage
	if err := a.call(ctx, http.MethodGet, "/admin/orgs/"+org+"/"+adminLists[list]+"?"+q.Encode(), nil, &page); err != nil {
		return console.ContactPage{}, err
	}
	out := console.ContactPage{Next: page.Next}
	for _, it := range page.Items {
		row := console.ContactRow{Contact: it.ContactID, Account: it.AccountID, Opportunity: it.OpportunityID, Owner: it.OwnerID,
			Reason: it.Reason, Confidence: it.Confidence, Threshold: it.Threshold}
		if it.EvaluatedAt != nil {
			row.EvaluatedAt = *it.EvaluatedAt
		}
		if it.Evidence != nil && it.Evidence.CurrentPosition != nil {
			row.SuggestedCompany = it.Evidence.CurrentPosition.CompanyName
		}
		out.Rows = append(out.Rows, row)
	}
	return out, nil
}

func (a consoleAdmin) Review(ctx context.Context, org, contact string, approve bool, who console.Actor) error {
	action := "reject"
	if approve {
		action = "approve"
	}
	return a.call(ctx, http.MethodPost, "/admin/orgs/"+org+"/candidates/"+contact+"/"+action, http.Header{HeaderActor: {who.Name}}, nil)
}

func (a consoleAdmin) Explain(ctx context.Context, org, contact string) (*console.Explanation, error) {
	var x Explanation
	err := a.call(ctx, http.MethodGet, "/admin/orgs/"+org+"/contacts/"+contact, nil, &x)
	var refused *console.Refused
	if errors.As(err, &refused) && refused.Status == http.StatusNotFound {
		return nil, console.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return explanationOf(x), nil
}

// explanationOf puts the admin API's explanation in the console's words.
func explanationOf(x Explanation) *console.Explanation {
	e := &console.Explanation{Contact: x.ContactID, Summary: x.Summary, Dynamics: x.Dynamics.Value, DynamicsSource: x.Dynamics.Source,
		HistoryComplete: x.History.Complete}
	if x.Dynamics.At != nil {
		e.DynamicsAt = *x.Dynamics.At
	}
	if v := x.Evaluation; v != nil {
		ev := v.Evidence
		e.Evaluated, e.Account, e.Value, e.Reason, e.Confidence, e.Threshold = true, v.AccountID, v.Value, v.Reason, v.Confidence, v.Threshold
		if v.EvaluatedAt != nil {
			e.EvaluatedAt = *v.EvaluatedAt
		}
		e.Candidate, e.Reviewer, e.CRMFlag, e.Erased = v.Candidate, v.Reviewer, v.CRMFlag.Value, v.EvidenceErased
		if r := v.Review; r != nil {
			e.Review = strings.TrimSpace(r.Action + " by " + r.Reviewer + ": " + cmp.Or(r.Outcome, "requested"))
		}
		e.InScope, e.ScopeVia, e.ScopeUser = v.Scope.InScope, v.Scope.Via, v.Scope.UserID
		for _, c := range v.Scope.Checks {
			e.Checks = append(e.Checks, console.ScopeCheck{Via: c.Via, User: c.UserID, Row: c.RowID, SyncUser: c.SyncUser})
		}
		e.MemberMatch, e.MemberConfidence = ev.MemberMatch, ev.MemberConfidence
		e.CompanyName, e.CompanyMatch, e.CompanyConfidence = ev.CompanyName, ev.CompanyMatch, ev.CompanyConfidence
		e.Ended, e.Current = consolePosition(ev.EndedPosition), consolePosition(ev.CurrentPosition)
		e.ProfileSource, e.MatchWeight = ev.ProfileSource, ev.MatchWeight
		if ev.ProfileObservedAt != nil {
			e.ProfileObservedAt = *ev.ProfileObservedAt
		}
		for _, f := range ev.Features {
			e.Features = append(e.Features, console.Feature{Name: f.Name, Level: f.Level, Weight: f.Weight})
		}
		for _, o := range v.OpenOpportunities {
			e.Opportunities = append(e.Opportunities, o.OpportunityID)
		}
	}
	for _, h := range x.History.Entries {
		e.History = append(e.History, console.HistoryEntry{At: h.At, Kind: h.Kind, Detail: historyDetail(h)})
	}
	return e
}

func consolePosition(p *PositionView) *console.Position {
	if p == nil {
		return nil
	}
	ym := func(y *YearMonthView) string {
		if y == nil {
			return ""
		}
		return yearMonth(*y)
	}
	return &console.Position{Company: p.CompanyName, Title: p.Title, Start: ym(p.Start), End: ym(p.End)}
}

// historyDetail is one audit record in words.
func historyDetail(h HistoryEntryView) string {
	switch {
	case h.Decision != nil:
		d := h.Decision
		s := fmt.Sprintf("decided %s (%d → %d), %s, confidence %.2f", flagLabel(d.Value), d.Previous, d.Value, d.Reason, d.Confidence)
		if d.Reviewer != "" {
			s += ", approved by " + d.Reviewer
		}
		return s
	case h.Write != nil:
		w := h.Write
		s := fmt.Sprintf("%s %s (%d)", w.Outcome, flagLabel(w.Value), w.Value)
		if w.HTTPStatus != 0 {
			s += fmt.Sprintf(", HTTP %d", w.HTTPStatus)
		}
		return s
	case h.Override != nil:
		o := h.Override
		return fmt.Sprintf("a person set %s (%d) over our %d: %s, found by %s", flagLabel(o.Value), o.Value, o.Decided, o.Action, o.FoundBy)
	case h.Review != nil:
		r := h.Review
		return strings.TrimSpace(r.Action + " by " + r.Reviewer + ": " + r.Outcome)
	}
	return ""
}

func flagLabel(v int) string {
	switch v {
	case 0:
		return "No Feedback"
	case 1:
		return "Not at Company"
	case 2:
		return "Ignore"
	}
	return "unknown"
}

// recorder is the answer of an in-process admin API request.
type recorder struct {
	header http.Header
	body   bytes.Buffer
	status int
}

func newRecorder() *recorder { return &recorder{header: http.Header{}} }

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(b)
}
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}
