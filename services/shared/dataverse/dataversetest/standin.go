// Package dataversetest is an in-memory stand-in for the Dataverse Web API,
// the way net/http/httptest stands in for a real server: it speaks the same
// protocol (OAuth2 client credentials, OData GET and PATCH, $batch) so the
// writer and the devstack run unchanged against it. It is for tests, demos
// and benchmarks, never for production.
package dataversetest

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// Options of a stand-in.
type Options struct {
	// ClientID and ClientSecret are the only credentials the token endpoint
	// accepts; when ClientID is empty, API calls need no token.
	ClientID     string
	ClientSecret string
	// TokenLifetime of issued tokens (default one hour).
	TokenLifetime time.Duration
	// AnonymousReads lets a GET through without a token, so a person can
	// read a flag back with curl in the devstack. Writes always need one.
	AnonymousReads bool
	// Limits, when set, are enforced the way Dataverse's service protection
	// limits are: 429 with Retry-After beyond them.
	Limits *Limits
	// Faults, when set, is asked for a fault for every API request that no
	// injected fault answers (a zero Fault serves normally): random faults.
	Faults func() Fault
	// OnChange, when set, is called with a business row (not a
	// customization) as it is after a PATCH, POST or DELETE (nil: deleted),
	// before the change is applied and answered, under the server's lock;
	// an error answers 503 and leaves the row as it was. A Journal makes
	// the changes durable here.
	OnChange func(entitySet, id string, row map[string]any) error
	// Durable, when set, is called without the server's lock before a
	// request that may have changed rows (any but GET and HEAD) is
	// answered: what OnChange was handed must then be durable. An error
	// answers 503 instead.
	Durable func() error
	// OnMissingRow, when set, is told of every PATCH (direct or in a
	// batch) answered 404 because the row does not exist: the writer
	// records such a write as obsolete, and whoever runs the stand-in
	// should hear of it too. It is called without the server's lock.
	OnMissingRow func(entitySet, id string)
}

// Received is one operation the stand-in answered.
type Received struct {
	At        time.Time
	EntitySet string
	ID        string
	Status    int
}

// Server is the stand-in. Its zero value is not usable; call New.
type Server struct {
	opts Options
	// defs are the built-in table definitions, read-only (trackedDefs
	// copies them to switch tracking).
	defs map[string]*entityDef

	mu       sync.Mutex
	rows     map[string]map[string]map[string]any // entity set → id → columns
	versions map[string]int64                     // entity set/id → row version
	version  int64
	tokens   map[string]time.Time // issued token → expiry
	patches  int                  // PATCH operations applied (direct or in a batch)
	requests int                  // HTTP requests to the API
	tokenReq int                  // tokens issued

	faults     []Fault
	rowFaults  []Fault
	writing    map[string]int         // entity set/id → PATCHes in progress
	overlaps   int                    // PATCHes begun while another of the same row was in progress
	limits     map[string]*userLimits // user → use of the limits (limits.go)
	limitStats LimitStats
	throttled  int        // 429s answered
	missing    int        // PATCHes answered 404: no such row
	received   []Received // every PATCH operation answered

	ext extension      // metadata, customizations and webhooks (extension.go)
	ct  changeTracking // deltas and tombstones (changes.go)
}

// New returns an empty stand-in.
func New(opts Options) *Server {
	if opts.TokenLifetime == 0 {
		opts.TokenLifetime = time.Hour
	}
	return &Server{opts: opts, defs: entityDefs(), rows: map[string]map[string]map[string]any{},
		versions: map[string]int64{}, tokens: map[string]time.Time{}, writing: map[string]int{}, limits: map[string]*userLimits{}}
}

// TokenPath is where the stand-in issues tokens.
const TokenPath = "/oauth2/v2.0/token"

// Handler serves the token endpoint and the Web API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+TokenPath, s.token)
	mux.Handle(dataverse.APIPath+"/", s.durably(http.HandlerFunc(s.api)))
	return mux
}

// durably answers a request that may change rows only once Options.Durable
// says its changes are kept.
func (s *Server) durably(h http.Handler) http.Handler {
	if s.opts.Durable == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			h.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if err := s.opts.Durable(); err != nil {
			odataError(w, http.StatusServiceUnavailable, "0x80044151", "The change could not be made durable: "+err.Error())
			return
		}
		maps.Copy(w.Header(), rec.Header())
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	})
}

// Seed puts a row as if it existed in Dynamics.
func (s *Server) Seed(entitySet, id string, columns map[string]any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.upsert(entitySet, strings.ToLower(id), columns)
}

// Row returns a copy of a row's columns.
func (s *Server) Row(entitySet, id string) (map[string]any, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	row, ok := s.rows[entitySet][strings.ToLower(id)]
	return maps.Clone(row), ok
}

// Received returns every PATCH operation answered so far, in order.
func (s *Server) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.received)
}

// Patches counts the PATCH operations applied so far.
func (s *Server) Patches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.patches
}

// MissingRowPatches counts the PATCHes answered 404 because the row does
// not exist.
func (s *Server) MissingRowPatches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.missing
}

// odataError writes Dataverse's error shape.
func odataError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

var keyRE = regexp.MustCompile(`^([a-z_]+)\(([0-9a-fA-F-]{36})\)$`)

func (s *Server) api(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	s.mu.Unlock()
	if !s.authorized(r) && !(s.opts.AnonymousReads && r.Method == http.MethodGet) {
		w.Header().Set("WWW-Authenticate", `Bearer authorization_uri="`+TokenPath+`"`)
		odataError(w, http.StatusUnauthorized, "0x80072560", "The user is not a member of the organization.")
		return
	}
	fault := s.nextFault()
	rest := strings.TrimPrefix(r.URL.Path, dataverse.APIPath+"/")
	var parts []partRequest
	var writes []string // the rows this request patches
	if rest == "$batch" && r.Method == http.MethodPost {
		var ok bool
		if parts, ok = parseBatch(w, r); !ok {
			return
		}
		for _, p := range parts {
			if m := keyRE.FindStringSubmatch(strings.TrimPrefix(p.req.URL.Path, dataverse.APIPath+"/")); m != nil && p.req.Method == http.MethodPatch {
				writes = append(writes, m[1]+"/"+strings.ToLower(m[2]))
			}
		}
	} else if m := keyRE.FindStringSubmatch(rest); m != nil && r.Method == http.MethodPatch {
		writes = append(writes, m[1]+"/"+strings.ToLower(m[2]))
	}
	// The rows count as being written from now, through the delay: a
	// slow answer is a write still in progress.
	defer s.writingRows(writes)()
	if !applyFault(w, r, fault) {
		return
	}
	if parts != nil {
		s.batch(w, r, parts)
		return
	}
	adm, ok := s.admit(w, r, 1)
	if !ok {
		return
	}
	defer adm.release()
	if !s.execute(r) {
		return
	}
	adm.headers(w)
	s.serveOne(w, r, rest)
}

// serveOne answers a single GET or PATCH on "<set>(<id>)"; it is used for
// direct requests and for each part of a batch.
func (s *Server) serveOne(w http.ResponseWriter, r *http.Request, rest string) {
	if s.serveExtension(w, r, rest) {
		return
	}
	m := keyRE.FindStringSubmatch(rest)
	if m == nil {
		odataError(w, http.StatusNotFound, "0x8006088a", fmt.Sprintf("Resource not found for the segment '%s'.", rest))
		return
	}
	set, id := m[1], strings.ToLower(m[2])
	if f, ok := s.rowFault(id); ok && !applyFault(w, r, f) {
		return
	}
	switch r.Method {
	case http.MethodGet:
		s.readLatency()
		s.get(w, r, set, id)
	case http.MethodPatch:
		s.patch(w, r, set, id)
	default:
		odataError(w, http.StatusMethodNotAllowed, "0x80060888", "The HTTP method is not supported here.")
	}
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, set, id string) {
	s.mu.Lock()
	row, ok := s.rows[set][id]
	row = maps.Clone(row)
	version := s.versions[set+"/"+id]
	s.mu.Unlock()
	if !ok {
		odataError(w, http.StatusNotFound, "0x80040217", fmt.Sprintf("%s With Id = %s Does Not Exist", strings.TrimSuffix(set, "s"), id))
		return
	}
	out := map[string]any{
		"@odata.context": "/api/data/v9.2/$metadata#" + set + "/$entity",
		"@odata.etag":    fmt.Sprintf(`W/"%d"`, version),
	}
	if sel := r.URL.Query().Get("$select"); sel != "" {
		for _, col := range strings.Split(sel, ",") {
			out[col] = row[col] // a column never set reads as null
			if ann, ok := row[col+lookupAnnotation]; ok {
				out[col+lookupAnnotation] = ann
			}
		}
		if _, ok := out["versionnumber"]; ok {
			out["versionnumber"] = float64(version)
		}
		out[idColumn(set)] = id
	} else {
		maps.Copy(out, row)
	}
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	w.Header().Set("OData-Version", "4.0")
	_ = json.NewEncoder(w).Encode(out)
}

func (s *Server) patch(w http.ResponseWriter, r *http.Request, set, id string) {
	var cols map[string]any
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	if err := dec.Decode(&cols); err != nil {
		odataError(w, http.StatusBadRequest, "0x80048d19", "Error identified in Payload provided by the user: "+err.Error())
		return
	}
	cols, err := s.normalizeWrite(set, cols)
	if err != nil {
		odataError(w, http.StatusBadRequest, "0x80048d19", err.Error())
		return
	}
	s.mu.Lock()
	old, exists := s.rows[set][id]
	switch {
	case r.Header.Get("If-Match") == "*" && !exists:
		s.missing++
		s.mu.Unlock()
		if s.opts.OnMissingRow != nil {
			s.opts.OnMissingRow(set, id)
		}
		odataError(w, http.StatusNotFound, "0x80040217", fmt.Sprintf("%s With Id = %s Does Not Exist", strings.TrimSuffix(set, "s"), id))
		return
	case r.Header.Get("If-None-Match") == "*" && exists:
		s.mu.Unlock()
		odataError(w, http.StatusPreconditionFailed, "0x80060892", "A record with matching key values already exists.")
		return
	}
	before := maps.Clone(old)
	s.stampPatch(r, cols, !exists)
	if !s.persistLocked(w, set, id, cols) {
		s.mu.Unlock()
		return
	}
	s.upsert(set, id, cols)
	s.rowChanged(r, set, id, before, cols)
	s.patches++
	s.received = append(s.received, Received{At: time.Now(), EntitySet: set, ID: id, Status: http.StatusNoContent})
	s.mu.Unlock()
	w.Header().Set("OData-Version", "4.0")
	w.Header().Set("OData-EntityId", dataverse.APIPath+"/"+set+"("+id+")")
	w.WriteHeader(http.StatusNoContent)
}
