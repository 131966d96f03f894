package dataversetest

import (
	"cmp"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// changeTracking is what the stand-in keeps for change tracking: the
// tombstones of deleted rows, the tables without tracking, and when delta
// tokens expire. Guarded by Server.mu.
type changeTracking struct {
	// tombstones[set][id] is the version at which the row was deleted.
	tombstones map[string]map[string]int64
	untracked  map[string]bool // by logical name
	// expiredBelow: tokens of an older version are expired (a test knob).
	expiredBelow int64
	// readLatency delays every collection page and row read.
	readLatency time.Duration
	reads       int // collection pages and row reads answered
}

// ExpiredTokenMessage is Dataverse's answer to a delta token older than the
// organization keeps changes for.
const ExpiredTokenMessage = "Version stamp associated with the client has expired. Please perform a full sync."

// SetChangeTracking switches change tracking of a table (a logical name)
// on or off; every table starts with it on.
func (s *Server) SetChangeTracking(table string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ct.untracked == nil {
		s.ct.untracked = map[string]bool{}
	}
	s.ct.untracked[table] = !on
}

// ExpireDeltaTokens makes every delta token issued so far expired, as when
// its age passes the organization's ExpireChangeTrackingInDays.
func (s *Server) ExpireDeltaTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ct.expiredBelow = s.version + 1
}

// SetReadLatency delays every answer to a collection page or a row read by
// d, as a real environment's pages take their time.
func (s *Server) SetReadLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ct.readLatency = d
}

// Reads counts the collection pages and row reads answered so far.
func (s *Server) Reads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ct.reads
}

func (s *Server) readLatency() {
	s.mu.Lock()
	d := s.ct.readLatency
	s.ct.reads++
	s.mu.Unlock()
	if d > 0 {
		time.Sleep(d)
	}
}

func (s *Server) tombstoneLocked(set, id string) {
	if customizationSets[set] {
		return
	}
	if s.ct.tombstones == nil {
		s.ct.tombstones = map[string]map[string]int64{}
	}
	if s.ct.tombstones[set] == nil {
		s.ct.tombstones[set] = map[string]int64{}
	}
	s.ct.tombstones[set][id] = s.version
}

// trackedDefs are the table definitions with tracking as switched.
func (s *Server) trackedDefs() map[string]*entityDef {
	defs := entityDefs()
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, d := range defs {
		d.changeTracking = !s.ct.untracked[name]
	}
	return defs
}

var trackChangesRE = regexp.MustCompile(`(^|[,\s])odata\.track-changes($|[,\s])`)

// tracked reports whether a collection read asks for change tracking: the
// initial read (Prefer: odata.track-changes) or a delta ($deltatoken).
func tracked(r *http.Request) bool {
	return trackChangesRE.MatchString(r.Header.Get("Prefer")) || r.URL.Query().Has("$deltatoken")
}

// deltaToken is "<version>!<UTC time>", the shape Dataverse's tokens have.
func deltaToken(version int64, at time.Time) string {
	return strconv.FormatInt(version, 10) + "!" + at.UTC().Format("01/02/2006 15:04:05")
}

func parseDeltaToken(tok string) (int64, bool) {
	v, _, ok := strings.Cut(tok, "!")
	n, err := strconv.ParseInt(v, 10, 64)
	return n, ok && err == nil && n >= 0
}

// trackedList answers a change-tracking read of set: every row (with the
// delta link on the last page) or, with $deltatoken, the rows changed since
// the token first and then the tombstones of rows deleted since.
func (s *Server) trackedList(w http.ResponseWriter, r *http.Request, set string) {
	q := r.URL.Query()
	for k := range q {
		switch k {
		case "$select", "$skiptoken", "$deltatoken":
		case "$filter", "$orderby", "$expand", "$top":
			odataError(w, http.StatusBadRequest, "0x80060888", fmt.Sprintf("The \"%s\" query parameter isn't supported when Change Tracking is enabled.", k))
			return
		default:
			odataError(w, http.StatusBadRequest, "0x80060888", fmt.Sprintf("The query parameter %s is not supported by the stand-in.", k))
			return
		}
	}
	table := tableOf(set)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.defs[table] == nil {
		notFound(w, set)
		return
	}
	if s.ct.untracked[table] {
		// The message is [unconfirmed]; that the read is refused is Dataverse's rule.
		odataError(w, http.StatusBadRequest, "0x80043b1d", fmt.Sprintf("Change tracking is not enabled for the entity %s.", table))
		return
	}
	since := int64(-1)
	if tok := q.Get("$deltatoken"); tok != "" {
		v, ok := parseDeltaToken(tok)
		if !ok {
			odataError(w, http.StatusBadRequest, "0x80060888", "Invalid $deltatoken.")
			return
		}
		if v < s.ct.expiredBelow {
			odataError(w, http.StatusBadRequest, "0x80044352", ExpiredTokenMessage)
			return
		}
		since = v
	}
	// The snapshot a read of several pages belongs to rides in its
	// skiptoken, so its delta link covers every change made while paging.
	from, snapshot := 0, s.version
	if tok := q.Get("$skiptoken"); tok != "" {
		off, snap, ok := strings.Cut(tok, "!")
		n, err1 := strconv.Atoi(off)
		v, err2 := strconv.ParseInt(snap, 10, 64)
		if !ok || err1 != nil || err2 != nil || n < 0 {
			odataError(w, http.StatusBadRequest, "0x80060888", "Invalid $skiptoken.")
			return
		}
		from, snapshot = n, v
	}
	sel := selectOf(r)
	for _, col := range sel {
		if !s.hasAttrLocked(table, strings.TrimSuffix(strings.TrimPrefix(col, "_"), "_value")) {
			odataError(w, http.StatusBadRequest, "0x0", fmt.Sprintf("Could not find a property named '%s' on type 'Microsoft.Dynamics.CRM.%s'.", col, table))
			return
		}
	}
	type change struct {
		id      string
		version int64
		deleted bool
	}
	var changes []change
	for id := range s.rows[set] {
		if v := s.versions[set+"/"+id]; v > since {
			changes = append(changes, change{id: id, version: v})
		}
	}
	if since >= 0 {
		for id, v := range s.ct.tombstones[set] {
			if v > since {
				changes = append(changes, change{id: id, version: v, deleted: true})
			}
		}
	}
	// New and updated rows first, then deletes; each in a stable order.
	slices.SortFunc(changes, func(a, b change) int {
		if a.deleted != b.deleted {
			if a.deleted {
				return 1
			}
			return -1
		}
		if since < 0 {
			return strings.Compare(a.id, b.id)
		}
		return cmp.Or(cmp.Compare(a.version, b.version), strings.Compare(a.id, b.id))
	})
	size := 5000
	if m := maxPageRE.FindStringSubmatch(r.Header.Get("Prefer")); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil && n > 0 && n <= 5000 {
			size = n
		}
	}
	from = min(from, len(changes))
	end := min(from+size, len(changes))
	page := make([]map[string]any, 0, end-from)
	for _, c := range changes[from:end] {
		if c.deleted {
			page = append(page, map[string]any{
				"@odata.context": dataverse.APIPath + "/$metadata#" + set + "/$deletedEntity", "id": c.id, "reason": "deleted",
			})
			continue
		}
		page = append(page, rowOut(set, c.id, maps.Clone(s.rows[set][c.id]), c.version, sel))
	}
	applied := "odata.track-changes"
	if m := maxPageRE.FindStringSubmatch(r.Header.Get("Prefer")); m != nil {
		applied += ",odata.maxpagesize=" + m[1]
	}
	w.Header().Set("Preference-Applied", applied)
	out := map[string]any{"@odata.context": dataverse.APIPath + "/$metadata#" + set, "value": page}
	link := url.Values{}
	if len(sel) > 0 {
		link.Set("$select", strings.Join(sel, ","))
	}
	if end < len(changes) {
		if since >= 0 {
			link.Set("$deltatoken", q.Get("$deltatoken"))
		}
		link.Set("$skiptoken", strconv.Itoa(end)+"!"+strconv.FormatInt(snapshot, 10))
		out["@odata.nextLink"] = "http://" + r.Host + dataverse.APIPath + "/" + set + "?" + link.Encode()
	} else {
		link.Set("$deltatoken", deltaToken(snapshot, time.Now()))
		out["@odata.deltaLink"] = "http://" + r.Host + dataverse.APIPath + "/" + set + "?" + link.Encode()
	}
	writeJSON(w, http.StatusOK, out)
}

var countNamesRE = regexp.MustCompile(`'([a-z][a-z0-9_]*)'`)

// totalRecordCount answers RetrieveTotalRecordCount(EntityNames=[...]).
func (s *Server) totalRecordCount(w http.ResponseWriter, rest string) {
	names := countNamesRE.FindAllStringSubmatch(rest, -1)
	if len(names) == 0 {
		odataError(w, http.StatusBadRequest, "0x80060888", "EntityNames: want a list of table names")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var keys []string
	var values []float64
	for _, m := range names {
		if s.defs[m[1]] == nil {
			odataError(w, http.StatusBadRequest, "0x80040217", fmt.Sprintf("The entity with a name = '%s' was not found in the MetadataCache.", m[1]))
			return
		}
		keys = append(keys, m[1])
		values = append(values, float64(len(s.rows[setOf(m[1])])))
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.context":              dataverse.APIPath + "/$metadata#Microsoft.Dynamics.CRM.RetrieveTotalRecordCountResponse",
		"EntityRecordCountCollection": map[string]any{"Count": len(keys), "IsReadOnly": false, "Keys": keys, "Values": values},
	})
}
