package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/orgs"
	"github.com/notatcompany/notatcompany/services/shared/problem"
	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
)

// AdminReader reads what admin changes led to, as the validator keeps it.
type AdminReader interface {
	SyncUsers(ctx context.Context, org string) ([]string, error)
	Settings(ctx context.Context, org string) (orgs.Settings, bool, error)
}

// SyncUsersResponse lists an organization's sync users.
type SyncUsersResponse struct {
	OrganizationID string   `json:"organizationId"`
	SyncUsers      []string `json:"syncUsers"`
}

// SettingsBody is an organization's settings as the admin API shows and takes them.
type SettingsBody struct {
	DataValidation      *bool    `json:"dataValidation"`
	ConfidenceThreshold *float64 `json:"confidenceThreshold,omitempty"`
	ReflagAfterIgnore   *bool    `json:"reflagAfterIgnore,omitempty"`
	// KeepPersonOverride keeps a person's 0 or 1 over our decision until
	// the evidence changes; false: our decision is written again.
	KeepPersonOverride *bool `json:"keepPersonOverride,omitempty"`
}

func (s *Service) adminRoutes(r chi.Router) {
	r.Use(s.adminAuth)
	r.Get("/orgs/{org}/sync-users", s.listSyncUsers)
	r.Put("/orgs/{org}/sync-users/{user}", s.setSyncUser(true))
	r.Delete("/orgs/{org}/sync-users/{user}", s.setSyncUser(false))
	r.Get("/orgs/{org}/settings", s.getSettings)
	r.Put("/orgs/{org}/settings", s.putSettings)
	r.Post("/orgs/{org}/backfill", s.requestSync(syncjobs.KindBackfill))
	r.Post("/orgs/{org}/sync", s.requestSync(syncjobs.KindSweep))
	r.Get("/orgs/{org}/sync-status", s.getSyncStatus)
	s.explainRoutes(r)
	s.deadLetterRoutes(r)
}

// adminAuth admits requests with the admin bearer token; without a token
// configured the admin API does not exist.
func (s *Service) adminAuth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tokens := s.creds.Load().adminTokens
		if len(tokens) == 0 || s.admin == nil {
			problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "the admin API is off: set NAC_ADMIN_TOKEN"))
			return
		}
		given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || !matches(tokens, given) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="notatcompany admin"`)
			problem.Write(w, r, problem.New(http.StatusUnauthorized, "unauthorized", "missing or wrong admin bearer token"))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// guids reads the named path parameters, answering 400 when one is not a GUID.
func guids(w http.ResponseWriter, r *http.Request, names ...string) ([]string, bool) {
	var vals []string
	var bad []problem.FieldProblem
	for _, n := range names {
		v := strings.ToLower(chi.URLParam(r, n))
		if !dataverse.IsGUID(v) {
			bad = append(bad, problem.FieldProblem{Field: n, Reason: "not a GUID"})
		}
		vals = append(vals, v)
	}
	if len(bad) > 0 {
		p := problem.New(http.StatusBadRequest, "invalid-path", "the path names an organization or user by GUID")
		p.Errors = bad
		problem.Write(w, r, p)
		return nil, false
	}
	return vals, true
}

func (s *Service) listSyncUsers(w http.ResponseWriter, r *http.Request) {
	ids, ok := guids(w, r, "org")
	if !ok {
		return
	}
	users, err := s.admin.SyncUsers(r.Context(), ids[0])
	if err != nil {
		s.unavailable(w, r, "read sync users", err)
		return
	}
	writeJSON(w, http.StatusOK, SyncUsersResponse{OrganizationID: ids[0], SyncUsers: users})
}

func (s *Service) setSyncUser(enabled bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ids, ok := guids(w, r, "org", "user")
		if !ok {
			return
		}
		id := uuid.NewString()
		ch := &eventsv1.SyncUserChange{EventId: id, OrganizationId: ids[0], UserId: ids[1], Enabled: enabled, ChangedAt: timestamppb.New(s.now())}
		s.publishAdmin(w, r, bus.AdminSyncUserSubject(ids[0], ids[1]), id, ch)
	}
}

func (s *Service) getSettings(w http.ResponseWriter, r *http.Request) {
	ids, ok := guids(w, r, "org")
	if !ok {
		return
	}
	st, _, err := s.admin.Settings(r.Context(), ids[0])
	if err != nil {
		s.unavailable(w, r, "read settings", err)
		return
	}
	writeJSON(w, http.StatusOK, SettingsBody{DataValidation: &st.DataValidation,
		ConfidenceThreshold: &st.Threshold, ReflagAfterIgnore: &st.ReflagAfterIgnore, KeepPersonOverride: &st.KeepPersonOverride})
}

func (s *Service) putSettings(w http.ResponseWriter, r *http.Request) {
	ids, ok := guids(w, r, "org")
	if !ok {
		return
	}
	body, release, refused := s.readBody(w, r, adminMaxBodyBytes)
	if refused != "" {
		return
	}
	defer release()
	var in SettingsBody
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var bad []problem.FieldProblem
	if err := dec.Decode(&in); err != nil {
		bad = append(bad, problem.FieldProblem{Field: "/", Reason: "not a settings object: " + err.Error()})
	} else if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		bad = append(bad, problem.FieldProblem{Field: "/", Reason: "data after the settings object"})
	} else {
		if in.DataValidation == nil {
			bad = append(bad, problem.FieldProblem{Field: "/dataValidation", Reason: "required"})
		}
		if t := in.ConfidenceThreshold; t != nil && (*t < 0 || *t > 1) {
			bad = append(bad, problem.FieldProblem{Field: "/confidenceThreshold", Reason: "want 0-1 (0: the service default)"})
		}
	}
	if len(bad) > 0 {
		p := problem.New(http.StatusBadRequest, "invalid-body", "not valid settings")
		p.Errors = bad
		problem.Write(w, r, p)
		return
	}
	id := uuid.NewString()
	ch := &eventsv1.OrgSettingsChange{EventId: id, OrganizationId: ids[0], DataValidation: *in.DataValidation,
		ChangedAt: timestamppb.New(s.now())}
	if in.ConfidenceThreshold != nil {
		ch.ConfidenceThreshold = *in.ConfidenceThreshold
	}
	if in.ReflagAfterIgnore != nil {
		ch.ReflagAfterIgnore = *in.ReflagAfterIgnore
	}
	if in.KeepPersonOverride != nil {
		ch.KeepPersonOverride = *in.KeepPersonOverride
	}
	s.publishAdmin(w, r, bus.AdminSettingsSubject(ids[0]), id, ch)
}

// publishAdmin stores an admin change and answers 202: the validator
// applies it shortly, and reads show it then.
func (s *Service) publishAdmin(w http.ResponseWriter, r *http.Request, subject, id string, m proto.Message) {
	data, err := proto.Marshal(m)
	if err != nil {
		problem.Write(w, r, problem.New(http.StatusInternalServerError, "internal", "encoding the change failed"))
		return
	}
	if !s.publish(w, r, "admin", subject, "admin."+id, data) {
		return
	}
	writeJSON(w, http.StatusAccepted, Accepted{Outcome: "accepted", EventID: id})
}

func (s *Service) unavailable(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.log.Error(what+" failed", "err", err)
	w.Header().Set("Retry-After", "5")
	problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "unavailable", what+" failed; retry later"))
}
