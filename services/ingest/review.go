package ingest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"unicode"

	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/problem"
)

// ReviewBody is an admin's review of a candidate below the threshold; the
// body may be left out when X-Nac-Actor names the reviewer.
type ReviewBody struct {
	// Reviewer is who reviews, recorded on the decision and in the audit trail.
	Reviewer string `json:"reviewer"`
}

// maxReviewer bounds the reviewer's name (bytes), as the validator and
// X-Nac-Actor elsewhere do.
const maxReviewer = 100

// review publishes an approval or rejection of the contact's candidate
// evidence as an admin event: the validator applies it to the evidence
// the evaluation holds now, and audits it.
func (s *Service) review(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ids, ok := guids(w, r, "org", "contact")
		if !ok || s.explainOff(w, r) {
			return
		}
		var in ReviewBody
		var bad []problem.FieldProblem
		if r.ContentLength != 0 || r.Header.Get("Content-Type") != "" {
			body, release, refused := s.readBody(w, r, adminMaxBodyBytes)
			if refused != "" {
				return
			}
			defer release()
			in, bad = parseReview(body)
		}
		if in.Reviewer == "" && len(bad) == 0 {
			in.Reviewer = r.Header.Get(HeaderActor)
		}
		if len(bad) == 0 {
			bad = checkReviewer(in.Reviewer)
		}
		if len(bad) > 0 {
			p := problem.New(http.StatusBadRequest, "invalid-body", "not a valid review")
			p.Errors = bad
			problem.Write(w, r, p)
			return
		}
		org, contact := ids[0], ids[1]
		rec, err := s.explain.Get(r.Context(), org, contact)
		if err != nil {
			s.unavailable(w, r, "read the evaluation", err)
			return
		}
		switch {
		case rec == nil:
			problem.Write(w, r, problem.New(http.StatusNotFound, "not-found",
				"contact "+contact+" of organization "+org+" has not been evaluated"))
			return
		case !rec.GetCandidate():
			problem.Write(w, r, problem.New(http.StatusConflict, "not-a-candidate",
				"contact "+contact+" is not below the threshold (its evaluation says "+rec.GetResult().GetReason()+"): only candidates are reviewed"))
			return
		}
		id := uuid.NewString()
		ch := &eventsv1.ReviewAction{EventId: id, OrganizationId: org, ContactId: contact, Action: action,
			Reviewer: in.Reviewer, EvidenceDigest: rec.GetEvidenceDigest(), RequestedAt: timestamppb.New(s.now())}
		s.publishAdmin(w, r, bus.AdminReviewSubject(org, contact), id, ch)
	}
}

func parseReview(body []byte) (ReviewBody, []problem.FieldProblem) {
	var in ReviewBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, []problem.FieldProblem{{Field: "/", Reason: "not a review object: " + err.Error()}}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return in, []problem.FieldProblem{{Field: "/", Reason: "data after the review object"}}
	}
	return in, nil
}

// checkReviewer refuses a reviewer the validator would refuse.
func checkReviewer(v string) []problem.FieldProblem {
	switch {
	case strings.TrimSpace(v) == "":
		return []problem.FieldProblem{{Field: "/reviewer", Reason: "required: who reviews (the body's reviewer, or " + HeaderActor + ")"}}
	case len(v) > maxReviewer:
		return []problem.FieldProblem{{Field: "/reviewer", Reason: "at most 100 bytes"}}
	case strings.ContainsFunc(v, func(c rune) bool { return !unicode.IsPrint(c) }):
		return []problem.FieldProblem{{Field: "/reviewer", Reason: "want printable characters only"}}
	}
	return nil
}
