package ingest

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/go-chi/chi/v5"

	"google.golang.org/protobuf/proto"

	"github.com/notatcompany/notatcompany/services/ingest/profilefeed"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/problem"
)

// profileSigner returns the secrets that sign requests to this route and
// the source they must come from ("" for the shared route: any source).
// ok is false, with the answer written, for an unknown source.
func (s *Service) profileSigner(w http.ResponseWriter, r *http.Request) (secrets []string, source string, ok bool) {
	creds := s.creds.Load()
	source = chi.URLParam(r, "source")
	if source == "" {
		if len(creds.profileSecrets) == 0 {
			problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "no shared profile secret: post to /webhooks/profile/{source}"))
			return nil, "", false
		}
		return creds.profileSecrets, "", true
	}
	for _, src := range creds.profileSources {
		if src.Name == source {
			return src.Secrets, source, true
		}
	}
	problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "unknown profile source "+strconv.Quote(source)))
	return nil, "", false
}

// profileChallenge answers the source's endpoint validation:
// GET ?challengeCode=X → {"challengeCode":X,"challengeResponse":HMAC(X)}.
// The answer is an HMAC under the secret that signs bodies, so only codes
// of the shape a source sends are answered (none can be a body), and each
// client address may ask only now and then.
func (s *Service) profileChallenge(w http.ResponseWriter, r *http.Request) {
	if s.rateLimited(w, r, s.challenges) {
		s.metrics.request("profile_challenge", "", "", "rate_limited")
		return
	}
	secrets, _, ok := s.profileSigner(w, r)
	if !ok {
		return
	}
	code := r.URL.Query().Get("challengeCode")
	if err := profilefeed.CheckChallengeCode(code); err != nil {
		s.metrics.request("profile_challenge", "", "", "invalid")
		p := problem.New(http.StatusBadRequest, "invalid-query", "challengeCode is required, in the shape a source sends")
		p.Errors = []problem.FieldProblem{{Field: "challengeCode", Reason: err.Error()}}
		problem.Write(w, r, p)
		return
	}
	s.metrics.request("profile_challenge", "", "", "answered")
	writeJSON(w, http.StatusOK, map[string]string{
		"challengeCode":     code,
		"challengeResponse": profilefeed.Sign(secrets[0], []byte(code)),
	})
}

// EventResult is the outcome of one event of a batch.
type EventResult struct {
	Index  int                    `json:"index"`
	ID     string                 `json:"id,omitempty"`
	Status string                 `json:"status"` // accepted or refused
	Errors []problem.FieldProblem `json:"errors,omitempty"`
}

// BatchResult answers a batch: each event accepted or refused on its own.
type BatchResult struct {
	Accepted int           `json:"accepted"`
	Refused  int           `json:"refused"`
	Results  []EventResult `json:"results"`
}

// profileWebhook takes one signed event or an array of them.
func (s *Service) profileWebhook(w http.ResponseWriter, r *http.Request) {
	secrets, source, ok := s.profileSigner(w, r)
	if !ok {
		s.metrics.request("profile", "", "", "unknown_source")
		return
	}
	if !checkJSON(w, r) {
		s.metrics.request("profile", "", "", "unsupported_media_type")
		return
	}
	// An unsigned request is refused before its body is read.
	if !profilefeed.WellFormedSignature(r.Header.Get("X-LI-Signature")) {
		s.metrics.request("profile", "", "", "unauthorized")
		problem.Write(w, r, badSignature())
		return
	}
	body, release, refused := s.readBody(w, r, s.cfg.ProfileMaxBodyBytes)
	if refused != "" {
		s.metrics.request("profile", "", "", refused)
		return
	}
	defer release()
	if !profilefeed.Verify(secrets, body, r.Header.Get("X-LI-Signature")) {
		s.metrics.request("profile", "", "", "unauthorized")
		problem.Write(w, r, badSignature())
		return
	}
	s.metrics.bodyBytes.WithLabelValues("profile").Observe(float64(len(body)))
	raws, isBatch, err := profilefeed.SplitBatch(body)
	if err != nil {
		s.metrics.request("profile", "", "", "invalid")
		problem.Write(w, r, invalidBody("not an event or a batch of events", err))
		return
	}
	received := s.now()
	result := BatchResult{Results: make([]EventResult, 0, len(raws))}
	for i, raw := range raws {
		res := EventResult{Index: i}
		ev, err := profilefeed.Decode(raw, received)
		if err == nil && source != "" && sourceOf(ev) != source {
			err = &problem.FieldError{Field: "/source", Reason: "must be " + strconv.Quote(source) + ", the source whose secret signed the request"}
		}
		if err != nil {
			res.Status, res.Errors = "refused", fieldProblems(err)
			res.ID = peekID(raw)
			result.Refused++
			result.Results = append(result.Results, res)
			s.metrics.request("profile", "", "", "invalid")
			continue
		}
		res.ID = ev.ID
		subject, msg := profileSubject(ev)
		data, err := proto.Marshal(msg)
		if err != nil {
			problem.Write(w, r, problem.New(http.StatusInternalServerError, "internal", "encoding the event failed"))
			return
		}
		// A failed publish fails the whole request: the source retries it,
		// and deduplication makes the events already stored harmless.
		if !s.publish(w, r, "profile", subject, "profile."+bus.Token(sourceOf(ev))+"."+ev.ID, data) {
			s.metrics.request("profile", ev.Type, "", "unavailable")
			return
		}
		s.metrics.request("profile", ev.Type, "", "accepted")
		res.Status = "accepted"
		result.Accepted++
		result.Results = append(result.Results, res)
	}
	if !isBatch {
		if result.Refused > 0 {
			p := problem.New(http.StatusBadRequest, "invalid-event", "the event was refused")
			p.Errors = result.Results[0].Errors
			problem.Write(w, r, p)
			return
		}
		writeJSON(w, http.StatusAccepted, Accepted{Outcome: "accepted", EventID: result.Results[0].ID})
		return
	}
	status := http.StatusOK
	if result.Accepted == 0 {
		status = http.StatusBadRequest
	}
	writeJSON(w, status, result)
}

func badSignature() problem.Details {
	return problem.New(http.StatusUnauthorized, "bad-signature",
		"X-LI-Signature is missing or is not the HMAC-SHA256 of the body")
}

func profileSubject(ev *profilefeed.Event) (string, proto.Message) {
	switch {
	case ev.Profile != nil:
		return bus.ProfileMemberSubject(ev.Profile.MemberId), ev.Profile
	case ev.Company != nil:
		return bus.ProfileCompanySubject(ev.Company.CompanyId), ev.Company
	default:
		return bus.ProfileErasureSubject(ev.Erasure.MemberId), ev.Erasure
	}
}

func sourceOf(ev *profilefeed.Event) string {
	switch {
	case ev.Profile != nil:
		return ev.Profile.Source
	case ev.Company != nil:
		return ev.Company.Source
	default:
		return ev.Erasure.Source
	}
}

// peekID returns the id of a refused event, when it has one, for the answer.
func peekID(raw json.RawMessage) string {
	var env struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(raw, &env)
	if len(env.ID) > 200 {
		return ""
	}
	return env.ID
}
