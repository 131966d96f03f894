package ingest

import (
	"context"
	"net/http"

	"github.com/go-chi/chi/v5"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/evaluations"
	"github.com/notatcompany/notatcompany/services/shared/problem"
)

// ExplainReader reads what the validator keeps of each contact's latest
// evaluation, its decisions, and the audit trail (shared/evaluations).
type ExplainReader interface {
	Get(ctx context.Context, org, contact string) (*eventsv1.Evaluation, error)
	GetMany(ctx context.Context, org string, contacts []string) ([]*eventsv1.Evaluation, error)
	LastDecision(ctx context.Context, org, contact string) (*eventsv1.Decision, error)
	OpenEvidence(ctx context.Context, d *eventsv1.Decision) (*eventsv1.Evidence, bool, error)
	Page(ctx context.Context, org, index, cursor string, limit int) ([]evaluations.Ref, string, error)
	History(ctx context.Context, org, contact string, o evaluations.HistoryOptions) (evaluations.History, error)
}

// SetExplainReader serves explain, the lists and the review queue from r.
func (s *Service) SetExplainReader(r ExplainReader) { s.explain = r }

func (s *Service) explainRoutes(r chi.Router) {
	r.Get("/orgs/{org}/contacts/{contact}", s.explainContact)
	r.Get("/orgs/{org}/flagged", s.listIndex(evaluations.IndexFlagged))
	r.Get("/orgs/{org}/at-risk", s.listIndex(evaluations.IndexAtRisk))
	r.Get("/orgs/{org}/candidates", s.listIndex(evaluations.IndexCandidate))
	r.Post("/orgs/{org}/candidates/{contact}/approve", s.review("approve"))
	r.Post("/orgs/{org}/candidates/{contact}/reject", s.review("reject"))
}

// explainOff answers when no reader is wired: it reports whether it did.
func (s *Service) explainOff(w http.ResponseWriter, r *http.Request) bool {
	if s.explain != nil {
		return false
	}
	problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "explain is not available here"))
	return true
}

func (s *Service) explainContact(w http.ResponseWriter, r *http.Request) {
	ids, ok := guids(w, r, "org", "contact")
	if !ok || s.explainOff(w, r) {
		return
	}
	org, contact := ids[0], ids[1]
	ctx := r.Context()
	rec, err := s.explain.Get(ctx, org, contact)
	if err != nil {
		s.unavailable(w, r, "read the evaluation", err)
		return
	}
	last, err := s.explain.LastDecision(ctx, org, contact)
	if err != nil {
		s.unavailable(w, r, "read the last decision", err)
		return
	}
	if rec == nil && last == nil {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found",
			"contact "+contact+" of organization "+org+" has not been evaluated"))
		return
	}
	hist, err := s.explain.History(ctx, org, contact, evaluations.DefaultHistory(s.now()))
	if err != nil {
		s.unavailable(w, r, "read the audit trail", err)
		return
	}
	out := Explanation{OrganizationID: org, ContactID: contact, LastDecision: decisionView(last), History: historyView(hist)}
	if rec != nil {
		ev, erased, err := s.explain.OpenEvidence(ctx, rec.GetResult())
		if err != nil {
			s.unavailable(w, r, "open the evidence", err)
			return
		}
		out.Evaluation = evaluationView(rec, ev, erased)
	}
	lw := lastWrite(hist)
	out.LastWrite = writeView(lw)
	out.Dynamics = dynamicsValue(rec, lw)
	out.Summary = summary(out.Evaluation)
	writeJSON(w, http.StatusOK, out)
}
