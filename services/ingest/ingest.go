package ingest

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"slices"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"

	"github.com/notatcompany/notatcompany/services/ingest/profilefeed"
	"github.com/notatcompany/notatcompany/services/ingest/remotecontext"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/problem"
)

// Publisher stores a message in JetStream; nil means stored.
type Publisher interface {
	Publish(ctx context.Context, subject, msgID string, data []byte, header nats.Header) error
}

// Service handles the public webhook endpoints.
type Service struct {
	cfg     Config
	pub     Publisher
	log     *slog.Logger
	metrics *metrics
	now     func() time.Time
}

// New returns the ingest service publishing through pub.
func New(cfg Config, pub Publisher, log *slog.Logger, reg prometheus.Registerer) *Service {
	return &Service{cfg: cfg, pub: pub, log: log, metrics: newMetrics(reg), now: time.Now}
}

// Routes is the public HTTP API.
func (s *Service) Routes() http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)
	r.Post("/webhooks/dataverse", s.dataverseWebhook)
	r.Get("/webhooks/profile", s.profileChallenge)
	r.Post("/webhooks/profile", s.profileWebhook)
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

// readBody reads the body within the limit, answering 413 or 400 itself.
func (s *Service) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "text/json") {
			problem.Write(w, r, problem.New(http.StatusUnsupportedMediaType, "unsupported-media-type",
				fmt.Sprintf("Content-Type %q: want application/json", ct)))
			return nil, false
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, int64(s.cfg.MaxBodyBytes)))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			problem.Write(w, r, problem.New(http.StatusRequestEntityTooLarge, "body-too-large",
				fmt.Sprintf("body exceeds %d bytes", s.cfg.MaxBodyBytes)))
			return nil, false
		}
		problem.Write(w, r, problem.New(http.StatusBadRequest, "invalid-body", "reading body: "+err.Error()))
		return nil, false
	}
	return body, true
}

// keyMatches compares given against every key in constant time.
func keyMatches(keys []string, given string) bool {
	ok := 0
	for _, k := range keys {
		ok |= subtle.ConstantTimeCompare([]byte(k), []byte(given))
	}
	return ok == 1 && given != ""
}

// dataverseWebhook takes a RemoteExecutionContext posted by a Dataverse
// service endpoint registered with WebhookKey authentication (?code=).
func (s *Service) dataverseWebhook(w http.ResponseWriter, r *http.Request) {
	if !keyMatches(s.cfg.DataverseKeys, r.URL.Query().Get("code")) {
		s.metrics.request("dataverse", "", "", "unauthorized")
		problem.Write(w, r, problem.New(http.StatusUnauthorized, "unauthorized", "missing or wrong webhook key (?code=)"))
		return
	}
	body, ok := s.readBody(w, r)
	if !ok {
		s.metrics.request("dataverse", "", "", "refused")
		return
	}
	s.metrics.bodyBytes.WithLabelValues("dataverse").Observe(float64(len(body)))
	ch, err := remotecontext.Parse(body, remotecontext.Options{
		SizeExceeded: r.Header.Get("x-ms-dynamics-msg-size-exceeded") != "",
		ReceivedAt:   s.now(),
	})
	if err != nil {
		s.metrics.request("dataverse", "", "", "invalid")
		problem.Write(w, r, invalidBody("not a usable RemoteExecutionContext", err))
		return
	}
	table := ch.Table
	if !slices.Contains(s.cfg.Tables, table) {
		s.metrics.request("dataverse", "other", ch.MessageName, "ignored")
		writeJSON(w, http.StatusAccepted, Accepted{Outcome: "ignored"})
		return
	}
	if s.causedByUs(ch.Tag, ch.InitiatingUserId) {
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

// causedByUs recognizes the webhooks our own writer's changes cause, so they
// never start another round.
func (s *Service) causedByUs(tag, initiatingUser string) bool {
	return (s.cfg.WriteTag != "" && tag == s.cfg.WriteTag) ||
		(s.cfg.AppUserID != "" && initiatingUser == s.cfg.AppUserID)
}

// publish stores data, answering 503 itself when JetStream does not confirm.
func (s *Service) publish(w http.ResponseWriter, r *http.Request, endpoint, subject, msgID string, data []byte) bool {
	start := time.Now()
	err := s.pub.Publish(r.Context(), subject, msgID, data, nil)
	s.metrics.publish.WithLabelValues(endpoint).Observe(time.Since(start).Seconds())
	if err != nil {
		s.log.Error("publish failed; answering 503", "endpoint", endpoint, "subject", subject, "err", err)
		w.Header().Set("Retry-After", "5")
		problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "unavailable",
			"the event could not be stored; retry later"))
		return false
	}
	return true
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
		var dv *remotecontext.FieldError
		var pf *profilefeed.FieldError
		switch {
		case errors.As(err, &dv):
			out = append(out, problem.FieldProblem{Field: dv.Field, Reason: dv.Reason})
		case errors.As(err, &pf):
			out = append(out, problem.FieldProblem{Field: pf.Field, Reason: pf.Reason})
		default:
			out = append(out, problem.FieldProblem{Field: "/", Reason: err.Error()})
		}
	}
	walk(err)
	return out
}
