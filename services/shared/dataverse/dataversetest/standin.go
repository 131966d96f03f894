// Package dataversetest is an in-memory stand-in for the Dataverse Web API,
// the way net/http/httptest stands in for a real server: it speaks the same
// protocol (OAuth2 client credentials, OData GET and PATCH, $batch) so the
// writer and the devstack run unchanged against it. It is for tests, demos
// and benchmarks, never for production.
package dataversetest

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
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
}

// Limits are service protection limits. Each operation of a $batch counts.
type Limits struct {
	Requests   int           // operations per Window (Dataverse: 6000)
	Window     time.Duration // sliding window (Dataverse: 5 minutes)
	Concurrent int           // operations in progress at once (Dataverse: 52)
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

	mu       sync.Mutex
	rows     map[string]map[string]map[string]any // entity set → id → columns
	versions map[string]int64                     // entity set/id → row version
	version  int64
	tokens   map[string]time.Time // issued token → expiry
	patches  int                  // PATCH operations applied (direct or in a batch)
	requests int                  // HTTP requests to the API
	tokenReq int                  // tokens issued

	faults    []Fault
	rowFaults []Fault
	writing   map[string]int // entity set/id → PATCHes in progress
	overlaps  int            // PATCHes begun while another of the same row was in progress
	window    []time.Time    // when each operation in the limit window came
	inflight  int
	throttled int        // 429s answered
	received  []Received // every PATCH operation answered

	ext extension // metadata, customizations and webhooks (extension.go)
}

// New returns an empty stand-in.
func New(opts Options) *Server {
	if opts.TokenLifetime == 0 {
		opts.TokenLifetime = time.Hour
	}
	return &Server{opts: opts, rows: map[string]map[string]map[string]any{},
		versions: map[string]int64{}, tokens: map[string]time.Time{}, writing: map[string]int{}}
}

// TokenPath is where the stand-in issues tokens.
const TokenPath = "/oauth2/v2.0/token"

// Handler serves the token endpoint and the Web API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+TokenPath, s.token)
	mux.HandleFunc(dataverse.APIPath+"/", s.api)
	return mux
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

// Throttled counts the 429 answers given so far (faults and limits).
func (s *Server) Throttled() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.throttled
}

// TokensIssued counts the access tokens issued so far.
func (s *Server) TokensIssued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tokenReq
}

// Received returns every PATCH operation answered so far, in order.
func (s *Server) Received() []Received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.received)
}

// ExpireTokens makes every token issued so far invalid, as if it expired.
func (s *Server) ExpireTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

// Patches counts the PATCH operations applied so far.
func (s *Server) Patches() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.patches
}

// Snapshot is the stand-in's data, to persist across devstack restarts.
type Snapshot struct {
	Rows map[string]map[string]map[string]any `json:"rows"`
}

// Snapshot returns a copy of every row.
func (s *Server) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{Rows: map[string]map[string]map[string]any{}}
	for set, rows := range s.rows {
		snap.Rows[set] = map[string]map[string]any{}
		for id, cols := range rows {
			snap.Rows[set][id] = maps.Clone(cols)
		}
	}
	return snap
}

// Restore loads rows from a snapshot.
func (s *Server) Restore(snap Snapshot) {
	for set, rows := range snap.Rows {
		for id, cols := range rows {
			s.Seed(set, id, cols)
		}
	}
}

// persistLocked hands the row as it will be after cols (nil cols: after a
// delete) to OnChange. When that fails it answers 503 and returns false.
// Customization rows are left out: provisioning declares them again at
// every start.
func (s *Server) persistLocked(w http.ResponseWriter, set, id string, cols map[string]any) bool {
	if s.opts.OnChange == nil || customizationSets[set] {
		return true
	}
	var after map[string]any
	if cols != nil {
		after = maps.Clone(s.rows[set][id])
		if after == nil {
			after = map[string]any{idColumn(set): id}
		}
		maps.Copy(after, cols)
	}
	if err := s.opts.OnChange(set, id, after); err != nil {
		odataError(w, http.StatusServiceUnavailable, "0x80044151", "The change could not be stored: "+err.Error())
		return false
	}
	return true
}

func (s *Server) upsert(set, id string, cols map[string]any) {
	if s.rows[set] == nil {
		s.rows[set] = map[string]map[string]any{}
	}
	row := s.rows[set][id]
	if row == nil {
		row = map[string]any{idColumn(set): id}
		s.rows[set][id] = row
	}
	maps.Copy(row, cols)
	s.version++
	s.versions[set+"/"+id] = s.version
}

// idColumn is the primary key column of an entity set:
// contacts → contactid, opportunities → opportunityid.
func idColumn(set string) string {
	switch {
	case strings.HasSuffix(set, "ies"):
		return strings.TrimSuffix(set, "ies") + "yid"
	case strings.HasSuffix(set, "s"):
		return strings.TrimSuffix(set, "s") + "id"
	}
	return set + "id"
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	}
	if r.PostForm.Get("grant_type") != "client_credentials" {
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "want client_credentials")
		return
	}
	if subtle.ConstantTimeCompare([]byte(id), []byte(s.opts.ClientID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.ClientSecret)) != 1 {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
		return
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	tok := hex.EncodeToString(b)
	s.mu.Lock()
	s.tokens[tok] = time.Now().Add(s.opts.TokenLifetime)
	s.tokenReq++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"token_type": "Bearer", "expires_in": int(s.opts.TokenLifetime.Seconds()), "access_token": tok,
	})
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

func (s *Server) authorized(r *http.Request) bool {
	if s.opts.ClientID == "" {
		return true
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, found := s.tokens[tok]
	return found && time.Now().Before(exp)
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
	if !s.admit(w, 1) {
		return
	}
	defer s.release(1)
	s.serveOne(w, r, rest)
}

// admit enforces the limits for n operations; false means answered 429.
func (s *Server) admit(w http.ResponseWriter, n int) bool {
	lim := s.opts.Limits
	if lim == nil {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	cut := 0
	for cut < len(s.window) && now.Sub(s.window[cut]) >= lim.Window {
		cut++
	}
	s.window = s.window[cut:]
	var retry time.Duration
	switch {
	case len(s.window)+n > lim.Requests:
		// Wait until enough operations have left the window.
		oldest := s.window[min(len(s.window)-1, len(s.window)+n-lim.Requests-1)]
		retry = lim.Window - now.Sub(oldest)
		w.Header().Set("x-ms-ratelimit-time-remaining-xrm-requests", "0")
	case s.inflight+n > lim.Concurrent:
		retry = time.Second
	default:
		for range n {
			s.window = append(s.window, now)
		}
		s.inflight += n
		w.Header().Set("x-ms-ratelimit-burst-remaining-xrm-requests", strconv.Itoa(lim.Requests-len(s.window)))
		return true
	}
	s.throttled++
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int((retry+time.Second-1)/time.Second))))
	odataError(w, http.StatusTooManyRequests, "0x80072321", "Number of requests exceeded the limit of service protection limits.")
	return false
}

func (s *Server) release(n int) {
	if s.opts.Limits == nil {
		return
	}
	s.mu.Lock()
	s.inflight -= n
	s.mu.Unlock()
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
		s.mu.Unlock()
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
