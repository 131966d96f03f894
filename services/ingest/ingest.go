package ingest

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/ingest/remotecontext"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/problem"
)

// Service handles the public webhook endpoints.
type Service struct {
	cfg        Config
	admin      AdminReader // nil: no admin API
	syncStatus SyncStatusReader
	explain    ExplainReader // nil: no explain, lists or reviews
	creds      atomic.Pointer[credentials]
	inflight   *semaphore.Weighted // request body bytes held at once
	challenges *clientLimiter
	logKey     []byte // keys the hashes that stand for subjects in logs
	pub        bus.RawPublisher
	log        *slog.Logger
	metrics    *metrics
	now        func() time.Time

	// deadLetters serves the admin API's dead letters; nil: not here.
	deadLetters DeadLetterAdmin
}

// New returns the ingest service publishing through pub; it serves the
// admin API reading through admin, or none when admin is nil.
func New(cfg Config, pub bus.RawPublisher, admin AdminReader, syncStatus SyncStatusReader, log *slog.Logger, reg prometheus.Registerer) *Service {
	s := &Service{
		cfg: cfg, pub: pub, admin: admin, syncStatus: syncStatus, log: log, metrics: newMetrics(reg), now: time.Now,
		inflight:   semaphore.NewWeighted(int64(cfg.MaxInflightBytes)),
		challenges: newClientLimiter(challengeRate, challengeBurst, challengeClients),
		logKey:     make([]byte, 32),
	}
	_, _ = rand.Read(s.logKey) // never fails (crypto/rand)
	s.creds.Store(newCredentials(&cfg))
	return s
}

// Routes is the public HTTP API.
func (s *Service) Routes() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Post("/webhooks/dataverse", s.dataverseWebhook)
	r.Get("/webhooks/profile", s.profileChallenge)
	r.Post("/webhooks/profile", s.profileWebhook)
	r.Get("/webhooks/profile/{source}", s.profileChallenge)
	r.Post("/webhooks/profile/{source}", s.profileWebhook)
	r.Route("/admin", s.adminRoutes)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "no such endpoint"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		problem.Write(w, r, problem.New(http.StatusMethodNotAllowed, "method-not-allowed", r.Method+" is not allowed here"))
	})
	return r
}

// Accepted is the answer to a webhook that was taken.
type Accepted struct {
	Outcome string `json:"outcome"` // accepted, ignored, loop
	EventID string `json:"eventId,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// dataverseWebhook takes a RemoteExecutionContext posted by a Dataverse
// service endpoint (WebhookKey, HttpHeader or HttpQueryString auth).
func (s *Service) dataverseWebhook(w http.ResponseWriter, r *http.Request) {
	auth := s.creds.Load().dataverse
	// Authenticated before anything is read: the key is in the query or a
	// header.
	g := auth.authenticate(r)
	if g.empty() {
		s.metrics.request("dataverse", "", "", "unauthorized")
		problem.Write(w, r, problem.New(http.StatusUnauthorized, "unauthorized", "missing or wrong webhook key"))
		return
	}
	body, release, refused := s.readBody(w, r, s.cfg.DataverseMaxBodyBytes)
	if refused != "" {
		s.metrics.request("dataverse", "", "", refused)
		return
	}
	defer release()
	s.metrics.bodyBytes.WithLabelValues("dataverse").Observe(float64(len(body)))
	rec, err := remotecontext.ParseHeader(body, remotecontext.Options{
		SizeExceeded: r.Header.Get("x-ms-dynamics-msg-size-exceeded") != "",
		ReceivedAt:   s.now(),
	})
	if err != nil {
		s.metrics.request("dataverse", "", "", "invalid")
		problem.Write(w, r, invalidBody("not a usable RemoteExecutionContext", err))
		return
	}
	ch := rec.Header()
	if !auth.allows(g, ch.OrganizationId) {
		s.metrics.request("dataverse", "", "", "unauthorized")
		problem.Write(w, r, problem.New(http.StatusUnauthorized, "unauthorized",
			"the key is not valid for organization "+ch.OrganizationId))
		return
	}
	table := ch.Table
	if ch.Operation == eventsv1.Operation_OPERATION_UNSPECIFIED {
		// A step registered on a message that changes no row (Retrieve)
		// or one this service does not know: acknowledged, never published.
		kind := "other"
		if s.relevant(ch) {
			kind = table
		}
		s.metrics.request("dataverse", kind, "other", "unsupported_message")
		writeJSON(w, http.StatusAccepted, Accepted{Outcome: "ignored"})
		return
	}
	// The echo of our own write to a table of ours is dropped on its
	// header: its Target and images, most of the body, are never read.
	if slices.Contains(s.cfg.Tables, ch.Table) && dataverse.IsGUID(ch.RowId) && s.causedByUs(ch) {
		s.metrics.request("dataverse", ch.Table, ch.MessageName, "loop")
		writeJSON(w, http.StatusAccepted, Accepted{Outcome: "loop"})
		return
	}
	if ch, err = rec.Change(); err != nil {
		s.metrics.request("dataverse", "", "", "invalid")
		problem.Write(w, r, invalidBody("not a usable RemoteExecutionContext", err))
		return
	}
	table = ch.Table // the Target's, when it names another
	if !s.relevant(ch) {
		s.metrics.request("dataverse", "other", ch.MessageName, "ignored")
		writeJSON(w, http.StatusAccepted, Accepted{Outcome: "ignored"})
		return
	}
	if s.causedByUs(ch) {
		s.metrics.request("dataverse", table, ch.MessageName, "loop")
		writeJSON(w, http.StatusAccepted, Accepted{Outcome: "loop"})
		return
	}
	data, err := proto.Marshal(ch)
	if err != nil {
		problem.Write(w, r, problem.New(http.StatusInternalServerError, "internal", "encoding the change failed"))
		return
	}
	subject := bus.CRMSubject(ch.OrganizationId, ch.Table, ch.RowId)
	if !s.publish(w, r, "dataverse", subject, ch.EventId, data) {
		s.metrics.request("dataverse", table, ch.MessageName, "unavailable")
		return
	}
	s.metrics.request("dataverse", table, ch.MessageName, "accepted")
	writeJSON(w, http.StatusAccepted, Accepted{Outcome: "accepted", EventID: ch.EventId})
}

// relevant reports whether the change touches a configured table: its own,
// or for Associate and Disassociate, a related row's.
func (s *Service) relevant(ch *eventsv1.CrmChange) bool {
	if slices.Contains(s.cfg.Tables, ch.GetTable()) {
		return true
	}
	for _, ref := range ch.GetRelated() {
		if slices.Contains(s.cfg.Tables, ref.GetTable()) {
			return true
		}
	}
	return false
}

// causedByUs recognizes the webhooks our own writer's changes cause, so they
// never start another round: the write's ?tag= came back, or our
// application user made the change. A change of the flag column alone is
// not taken for ours: a seller who sets it to No Feedback or Not at
// Company by hand is heard (the validator records it and restores our
// decision or keeps theirs, as the organization's rule says). An echo of
// our own write that lost its tag still starts no round: it carries the
// value we decided, and the validator publishes only what differs.
func (s *Service) causedByUs(ch *eventsv1.CrmChange) bool {
	return (s.cfg.WriteTag != "" && ch.GetTag() == s.cfg.WriteTag) ||
		(s.cfg.AppUserID != "" && ch.GetInitiatingUserId() == strings.ToLower(s.cfg.AppUserID))
}

// publish stores data, answering 503 itself when JetStream does not confirm.
func (s *Service) publish(w http.ResponseWriter, r *http.Request, endpoint, subject, msgID string, data []byte) bool {
	start := time.Now()
	err := s.pub.Publish(r.Context(), subject, msgID, data, nil)
	s.metrics.publish.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
	if err != nil {
		// Subjects carry member ids (base64 of what may be an email):
		// logs get a keyed hash that correlates lines and identifies no one.
		ref := s.logRef(subject)
		s.log.Error("publish failed; answering 503", "endpoint", endpoint, "subject", ref,
			"err", strings.ReplaceAll(err.Error(), subject, ref))
		w.Header().Set("Retry-After", "5")
		problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "unavailable",
			"the event could not be stored; retry later"))
		return false
	}
	return true
}

// logRef stands for subject in logs: its stream's part (nac.profile.member)
// and a hash keyed per process, so equal subjects match within a process's
// logs and no id can be recovered or confirmed from them.
func (s *Service) logRef(subject string) string {
	mac := hmac.New(sha256.New, s.logKey)
	mac.Write([]byte(subject))
	parts := strings.SplitN(subject, ".", 4)
	return strings.Join(parts[:min(3, len(parts))], ".") + ".#" + hex.EncodeToString(mac.Sum(nil)[:8])
}

// invalidBody is a 400 listing every field problem in err.
func invalidBody(detail string, err error) problem.Details {
	p := problem.New(http.StatusBadRequest, "invalid-body", detail)
	p.Errors = fieldProblems(err)
	return p
}

func fieldProblems(err error) []problem.FieldProblem {
	var out []problem.FieldProblem
	var walk func(error)
	walk = func(err error) {
		if joined, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range joined.Unwrap() {
				walk(e)
			}
			return
		}
		var fe *problem.FieldError
		if errors.As(err, &fe) {
			out = append(out, problem.FieldProblem{Field: fe.Field, Reason: fe.Reason})
			return
		}
		out = append(out, problem.FieldProblem{Field: "/", Reason: err.Error()})
	}
	walk(err)
	return out
}
