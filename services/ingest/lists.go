package ingest

import (
	"encoding/base64"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"time"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/evaluations"
	"github.com/notatcompany/notatcompany/services/shared/problem"
)

// Page sizes of the lists.
const (
	defaultPageLimit = 50
	maxPageLimit     = evaluations.MaxPage
)

// ListItem is one entry of the flagged, candidates or at-risk list.
type ListItem struct {
	ContactID   string     `json:"contactId"`
	Value       int        `json:"value"`
	Reason      string     `json:"reason"`
	Confidence  float64    `json:"confidence"`
	Threshold   float64    `json:"threshold"`
	EvaluatedAt *time.Time `json:"evaluatedAt,omitempty"`
	AccountID   string     `json:"accountId,omitempty"`
	Reviewer    string     `json:"reviewer,omitempty"`
	// EvidenceDigest is what a review of a candidate refers to.
	EvidenceDigest string `json:"evidenceDigest,omitempty"`
	// Of the at-risk list: the opportunity, and the contact's evidence.
	OpportunityID string `json:"opportunityId,omitempty"`
	OwnerID       string `json:"ownerId,omitempty"`
	// Links are how the opportunity links the contact (its contact, its
	// customer, or a stakeholder connection).
	Links          []OpportunityLinkView `json:"links,omitempty"`
	Evidence       *EvidenceView         `json:"evidence,omitempty"`
	EvidenceErased bool                  `json:"evidenceErased,omitempty"`
}

// ListPage is one page of a list; next, when set, is the cursor of the next.
type ListPage struct {
	OrganizationID string     `json:"organizationId"`
	Items          []ListItem `json:"items"`
	Next           string     `json:"next,omitempty"`
}

// cursorRE is the shape of an index position: a stream sequence.
var cursorRE = regexp.MustCompile(`^[1-9][0-9]{0,19}$`)

// pageParams reads limit and cursor, answering 400 naming the one that is wrong.
func pageParams(w http.ResponseWriter, r *http.Request) (limit int, cursor string, ok bool) {
	q := r.URL.Query()
	var bad []problem.FieldProblem
	limit = defaultPageLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageLimit {
			bad = append(bad, problem.FieldProblem{Field: "limit", Reason: "want an integer 1-" + strconv.Itoa(maxPageLimit)})
		}
		limit = n
	}
	if v := q.Get("cursor"); v != "" {
		raw, err := base64.RawURLEncoding.DecodeString(v)
		if err != nil || !cursorRE.Match(raw) {
			bad = append(bad, problem.FieldProblem{Field: "cursor", Reason: "not a cursor this list gave"})
		}
		cursor = string(raw)
	}
	if len(bad) > 0 {
		p := problem.New(http.StatusBadRequest, "invalid-query", "not a valid page request")
		p.Errors = bad
		problem.Write(w, r, p)
		return 0, "", false
	}
	return limit, cursor, true
}

// listIndex serves one index a page at a time: the index's keys, then the
// evaluations of the page's contacts, which confirm each entry (an entry
// the evaluation no longer backs is left out, so a page may hold fewer
// than limit items; next says whether more follow).
func (s *Service) listIndex(index string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ids, ok := guids(w, r, "org")
		if !ok || s.explainOff(w, r) {
			return
		}
		limit, cursor, ok := pageParams(w, r)
		if !ok {
			return
		}
		org, ctx := ids[0], r.Context()
		refs, next, err := s.explain.Page(ctx, org, index, cursor, limit)
		if err != nil {
			s.unavailable(w, r, "list "+index, err)
			return
		}
		contacts := make([]string, len(refs))
		for i, ref := range refs {
			contacts[i] = ref.Contact
		}
		recs, err := s.explain.GetMany(ctx, org, contacts)
		if err != nil {
			s.unavailable(w, r, "read the evaluations", err)
			return
		}
		page := ListPage{OrganizationID: org, Items: []ListItem{}}
		for i, ref := range refs {
			rec := recs[i]
			if !backs(index, ref, rec) {
				continue
			}
			item := listItem(ref, rec)
			// The evidence, for where the person went: one member key
			// read per item, and only for the page.
			{
				ev, erased, err := s.explain.OpenEvidence(ctx, rec.GetResult())
				if err != nil {
					s.unavailable(w, r, "open the evidence", err)
					return
				}
				view := evidenceView(ev)
				item.Evidence, item.EvidenceErased = &view, erased
			}
			page.Items = append(page.Items, item)
		}
		if next != "" {
			page.Next = base64.RawURLEncoding.EncodeToString([]byte(next))
		}
		writeJSON(w, http.StatusOK, page)
	}
}

// backs reports whether the evaluation still says what its index entry does.
func backs(index string, ref evaluations.Ref, rec *eventsv1.Evaluation) bool {
	flagged := rec.GetResult().GetValue() == eventsv1.Flag_FLAG_NOT_AT_COMPANY
	switch index {
	case evaluations.IndexFlagged:
		return flagged
	case evaluations.IndexCandidate:
		return rec.GetCandidate() && rec.GetReview() == nil
	case evaluations.IndexAtRisk:
		return flagged && slices.ContainsFunc(rec.GetOpenOpportunities(), func(o *eventsv1.OpportunityRef) bool {
			return o.GetOpportunityId() == ref.Opportunity
		})
	}
	return false
}

func listItem(ref evaluations.Ref, rec *eventsv1.Evaluation) ListItem {
	res := rec.GetResult()
	item := ListItem{ContactID: ref.Contact, Value: int(res.GetValue()), Reason: res.GetReason(), Confidence: res.GetConfidence(),
		Threshold: rec.GetThreshold(), EvaluatedAt: timeOf(res.GetDecidedAt()), AccountID: rec.GetAccountId(), Reviewer: res.GetReviewer()}
	if rec.GetCandidate() {
		item.EvidenceDigest = rec.GetEvidenceDigest()
	}
	if ref.Opportunity != "" {
		item.OpportunityID = ref.Opportunity
		for _, o := range rec.GetOpenOpportunities() {
			if o.GetOpportunityId() == ref.Opportunity {
				item.OwnerID, item.Links = o.GetOwnerId(), linkViews(o)
			}
		}
	}
	return item
}
