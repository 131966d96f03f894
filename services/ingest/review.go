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

// ReviewBody is an admin's review of a candidate below the threshold.
type ReviewBody struct {
	// Reviewer is who reviews, recorded on the decision and in the audit trail.
	Reviewer string `json:"reviewer"`
}

// maxReviewer bounds the reviewer's name, as the validator does.
const maxReviewer = 256

// review publishes an approval or rejection of the contact's candidate
// evidence as an admin event: the validator applies it to the evidence
// the evaluation holds now, and audits it.
func (s *Service) review(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ids, ok := guids(w, r, "org", "contact")
		if !ok || s.explainOff(w, r) {
			return
		}
		body, release, refused := s.readBody(w, r, adminMaxBodyBytes)
		if refused != "" {
			return
		}
		defer release()
		in, bad := parseReview(body)
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
	switch {
	case strings.TrimSpace(in.Reviewer) == "":
		return in, []problem.FieldProblem{{Field: "/reviewer", Reason: "required: who reviews"}}
	case len(in.Reviewer) > maxReviewer:
		return in, []problem.FieldProblem{{Field: "/reviewer", Reason: "at most 256 bytes"}}
	case strings.IndexFunc(in.Reviewer, unicode.IsControl) >= 0:
		return in, []problem.FieldProblem{{Field: "/reviewer", Reason: "contains a control character"}}
	}
	return in, nil
}
