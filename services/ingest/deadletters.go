package ingest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"unicode"

	"github.com/go-chi/chi/v5"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/deadletters"
	"github.com/notatcompany/notatcompany/services/shared/problem"
)

// DeadLetterAdmin lists, shows, redrives and discards dead letters;
// *deadletters.Store is one.
type DeadLetterAdmin interface {
	List(ctx context.Context, f deadletters.Filter, after uint64, limit int) (deadletters.Page, error)
	Get(ctx context.Context, seq uint64) (deadletters.Detail, error)
	Redrive(ctx context.Context, seq uint64, who deadletters.Actor) (deadletters.Outcome, error)
	Discard(ctx context.Context, seq uint64, who deadletters.Actor) (deadletters.Outcome, error)
	RedriveAll(ctx context.Context, b deadletters.Bulk, who deadletters.Actor) (deadletters.BulkResult, error)
	DiscardAll(ctx context.Context, b deadletters.Bulk, who deadletters.Actor) (deadletters.BulkResult, error)
}

// deadLetterRoutes are the dead letter endpoints of the admin API.
func (s *Service) deadLetterRoutes(r chi.Router) {
	r.Get("/deadletters", s.listDeadLetters)
	r.Get("/orgs/{org}/deadletters", s.listDeadLetters)
	r.Post("/deadletters/redrive", s.bulkDeadLetters(deadletters.ActionRedrive))
	r.Post("/deadletters/discard", s.bulkDeadLetters(deadletters.ActionDiscard))
	r.Get("/deadletters/{seq}", s.getDeadLetter)
	r.Post("/deadletters/{seq}/redrive", s.actOnDeadLetter(deadletters.ActionRedrive))
	r.Delete("/deadletters/{seq}", s.actOnDeadLetter(deadletters.ActionDiscard))
}

// HeaderActor names the admin acting, for the audit trail: what they say,
// the admin API having shared tokens and no accounts.
const HeaderActor = "X-Nac-Actor"

var consumerRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// deadLettersOn answers 404 when this ingest has no dead letter store.
func (s *Service) deadLettersOn(w http.ResponseWriter, r *http.Request) bool {
	if s.deadLetters == nil {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "dead letters are not available here"))
		return false
	}
	return true
}

func (s *Service) listDeadLetters(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var bad []problem.FieldProblem
	f := deadletters.Filter{Consumer: q.Get("consumer"), Organization: strings.ToLower(q.Get("org"))}
	if path := chi.URLParam(r, "org"); path != "" {
		f.Organization = strings.ToLower(path)
		if !dataverse.IsGUID(f.Organization) {
			bad = append(bad, problem.FieldProblem{Field: "org", Reason: "not a GUID"})
		}
	} else if f.Organization != "" && !dataverse.IsGUID(f.Organization) {
		bad = append(bad, problem.FieldProblem{Field: "org", Reason: "not a GUID"})
	}
	if f.Consumer != "" && !consumerRE.MatchString(f.Consumer) {
		bad = append(bad, problem.FieldProblem{Field: "consumer", Reason: "not a consumer name (lower-case letters, digits, '-' or '_')"})
	}
	after, ok := uintParam(q.Get("after"), 0, 1<<63)
	if !ok {
		bad = append(bad, problem.FieldProblem{Field: "after", Reason: "want a stream sequence (0 or more)"})
	}
	limit, ok := uintParam(q.Get("limit"), 1, deadletters.MaxLimit)
	if !ok {
		bad = append(bad, problem.FieldProblem{Field: "limit", Reason: "want 1-" + strconv.Itoa(deadletters.MaxLimit)})
	}
	if len(bad) > 0 {
		p := problem.New(http.StatusBadRequest, "invalid-query", "not a valid dead letter query")
		p.Errors = bad
		problem.Write(w, r, p)
		return
	}
	if !s.deadLettersOn(w, r) {
		return
	}
	page, err := s.deadLetters.List(r.Context(), f, after, int(limit))
	if err != nil {
		s.unavailable(w, r, "read dead letters", err)
		return
	}
	writeJSON(w, http.StatusOK, page)
}

// uintParam reads an optional unsigned query parameter within [lo, hi].
func uintParam(v string, lo, hi uint64) (uint64, bool) {
	if v == "" {
		return 0, true
	}
	n, err := strconv.ParseUint(v, 10, 64)
	return n, err == nil && n >= lo && n <= hi
}

// sequence reads the {seq} path parameter, answering 400 itself.
func sequence(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	seq, err := strconv.ParseUint(chi.URLParam(r, "seq"), 10, 64)
	if err != nil || seq == 0 {
		p := problem.New(http.StatusBadRequest, "invalid-path", "the path names a dead letter by its sequence")
		p.Errors = []problem.FieldProblem{{Field: "seq", Reason: "want a stream sequence (1 or more)"}}
		problem.Write(w, r, p)
		return 0, false
	}
	return seq, true
}

func (s *Service) getDeadLetter(w http.ResponseWriter, r *http.Request) {
	seq, ok := sequence(w, r)
	if !ok || !s.deadLettersOn(w, r) {
		return
	}
	d, err := s.deadLetters.Get(r.Context(), seq)
	if s.deadLetterFailed(w, r, "read dead letter", err) {
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// actOnDeadLetter redrives or discards one dead letter.
func (s *Service) actOnDeadLetter(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		seq, ok := sequence(w, r)
		if !ok {
			return
		}
		who, ok := actor(w, r)
		if !ok || !s.deadLettersOn(w, r) {
			return
		}
		var out deadletters.Outcome
		var err error
		if action == deadletters.ActionRedrive {
			out, err = s.deadLetters.Redrive(r.Context(), seq, who)
		} else {
			out, err = s.deadLetters.Discard(r.Context(), seq, who)
		}
		if s.deadLetterFailed(w, r, action+" dead letter", err) {
			return
		}
		writeJSON(w, http.StatusOK, out)
	}
}

// deadLetterFailed answers err, if any: 404, 409 for a dead letter that
// cannot be redriven, 503 otherwise.
func (s *Service) deadLetterFailed(w http.ResponseWriter, r *http.Request, what string, err error) bool {
	switch {
	case err == nil:
		return false
	case errors.Is(err, deadletters.ErrNotFound):
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", err.Error()))
	case errors.Is(err, deadletters.ErrSuperseded), errors.Is(err, deadletters.ErrNoOrigin):
		s.log.Info("dead letter not redriven", "sequence", chi.URLParam(r, "seq"), "reason", errorCode(err))
		problem.Write(w, r, problem.New(http.StatusConflict, "conflict", err.Error()+"; discard it instead"))
	default:
		s.unavailable(w, r, what, err)
	}
	return true
}

func errorCode(err error) string {
	if errors.Is(err, deadletters.ErrSuperseded) {
		return deadletters.OutcomeSuperseded
	}
	return deadletters.OutcomeNoOrigin
}

// BulkDeadLetters is the body of a bulk redrive or discard: which dead
// letters (a consumer's, an organization's, or all of them, said so), and
// how far.
type BulkDeadLetters struct {
	Consumer       string `json:"consumer,omitempty"`
	OrganizationID string `json:"organizationId,omitempty"`
	All            bool   `json:"all,omitempty"`
	After          uint64 `json:"after,omitempty"`
	UpTo           uint64 `json:"upTo,omitempty"`
	Limit          int    `json:"limit,omitempty"`
}

func (s *Service) bulkDeadLetters(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		who, ok := actor(w, r)
		if !ok {
			return
		}
		body, release, refused := s.readBody(w, r, adminMaxBodyBytes)
		if refused != "" {
			return
		}
		defer release()
		in, bad := parseBulk(body)
		if len(bad) > 0 {
			p := problem.New(http.StatusBadRequest, "invalid-body", "not a valid dead letter selection")
			p.Errors = bad
			problem.Write(w, r, p)
			return
		}
		if !s.deadLettersOn(w, r) {
			return
		}
		b := deadletters.Bulk{Filter: deadletters.Filter{Consumer: in.Consumer, Organization: in.OrganizationID},
			After: in.After, UpTo: in.UpTo, Limit: in.Limit}
		var res deadletters.BulkResult
		var err error
		if action == deadletters.ActionRedrive {
			res, err = s.deadLetters.RedriveAll(r.Context(), b, who)
		} else {
			res, err = s.deadLetters.DiscardAll(r.Context(), b, who)
		}
		if err != nil {
			s.unavailable(w, r, action+" dead letters", err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	}
}

func parseBulk(body []byte) (BulkDeadLetters, []problem.FieldProblem) {
	var in BulkDeadLetters
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		return in, []problem.FieldProblem{{Field: "/", Reason: "not a selection object: " + err.Error()}}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return in, []problem.FieldProblem{{Field: "/", Reason: "data after the selection object"}}
	}
	var bad []problem.FieldProblem
	in.OrganizationID = strings.ToLower(in.OrganizationID)
	if in.Consumer != "" && !consumerRE.MatchString(in.Consumer) {
		bad = append(bad, problem.FieldProblem{Field: "/consumer", Reason: "not a consumer name (lower-case letters, digits, '-' or '_')"})
	}
	if in.OrganizationID != "" && !dataverse.IsGUID(in.OrganizationID) {
		bad = append(bad, problem.FieldProblem{Field: "/organizationId", Reason: "not a GUID"})
	}
	if in.Consumer == "" && in.OrganizationID == "" && !in.All {
		bad = append(bad, problem.FieldProblem{Field: "/all", Reason: "name a consumer or an organizationId, or set all to true for every dead letter"})
	}
	if in.Limit < 0 || in.Limit > deadletters.MaxLimit {
		bad = append(bad, problem.FieldProblem{Field: "/limit", Reason: "want 1-" + strconv.Itoa(deadletters.MaxLimit) + " (0: " + strconv.Itoa(deadletters.DefaultLimit) + ")"})
	}
	if in.UpTo > 0 && in.UpTo <= in.After {
		bad = append(bad, problem.FieldProblem{Field: "/upTo", Reason: "want more than after"})
	}
	return in, bad
}

// actor is who a request says acts (X-Nac-Actor, optional) and the
// fingerprint of the admin token it authenticated with, answering 400
// itself for an unusable name.
func actor(w http.ResponseWriter, r *http.Request) (deadletters.Actor, bool) {
	name := r.Header.Get(HeaderActor)
	if len(name) > 100 || strings.ContainsFunc(name, func(c rune) bool { return !unicode.IsPrint(c) }) {
		p := problem.New(http.StatusBadRequest, "invalid-header", "not a usable admin name")
		p.Errors = []problem.FieldProblem{{Field: HeaderActor, Reason: "want at most 100 printable characters"}}
		problem.Write(w, r, p)
		return deadletters.Actor{}, false
	}
	token, _ := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return deadletters.Actor{Name: name, TokenFingerprint: tokenFingerprint(token)}, true
}

// tokenFingerprint tells the admin tokens apart in the audit trail (the
// new and the old one while rotating) and says nothing about them.
func tokenFingerprint(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:4])
}
