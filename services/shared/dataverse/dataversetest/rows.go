package dataversetest

import (
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// lookupAnnotation is the annotation naming a lookup's target table.
const lookupAnnotation = "@Microsoft.Dynamics.CRM.lookuplogicalname"

var bindRE = regexp.MustCompile(`^/?([a-z][a-z0-9_]*)\(([0-9a-fA-F-]{36})\)$`)

// lookupTargets are the target tables of the standard single-target
// lookups, for rows that were seeded without an annotation.
var lookupTargets = map[string]string{
	"ownerid": "systemuser", "parentcustomerid": "account", "customerid": "account",
	"parentcontactid": "contact", "parentaccountid": "account", "modifiedby": "systemuser",
	"createdby": "systemuser", "sdkmessageid": "sdkmessage", "sdkmessagefilterid": "sdkmessagefilter",
	"sdkmessageprocessingstepid": "sdkmessageprocessingstep", "publisherid": "publisher",
	"eventhandler": "serviceendpoint", "businessunitid": "businessunit",
	"record1roleid": "connectionrole", "record2roleid": "connectionrole",
}

// normalizeWrite checks the columns of a write of set and turns
// "nav@odata.bind": "/set(id)" into the stored lookup "_attr_value" with
// its target table, as Dataverse does: a navigation property of a
// polymorphic lookup names its target (parentcustomerid_account), lower
// case only. The error is a 400's message.
func (s *Server) normalizeWrite(set string, cols map[string]any) (map[string]any, error) {
	s.mu.Lock()
	err := s.checkOptionsLocked(tableOf(set), cols)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	out := map[string]any{}
	for k, v := range cols {
		nav, isBind := strings.CutSuffix(k, "@odata.bind")
		if !isBind {
			out[k] = v
			continue
		}
		if nav != strings.ToLower(nav) {
			return nil, fmt.Errorf("An undeclared property '%s' which only has property annotations in the payload but no property value was found in the payload. In OData, only declared navigation properties and declared named streams can be represented as properties without values.", nav)
		}
		ref, ok := v.(string)
		if i := strings.Index(ref, dataverse.APIPath+"/"); i >= 0 {
			ref = ref[i+len(dataverse.APIPath):] // an absolute URL
		}
		m := bindRE.FindStringSubmatch(ref)
		if !ok || m == nil {
			return nil, fmt.Errorf("the value of %s must be a URL like /contacts(<id>)", k)
		}
		target, id := tableOf(m[1]), strings.ToLower(m[2])
		s.mu.Lock()
		_, exists := s.rows[m[1]][id]
		s.mu.Unlock()
		if !exists {
			return nil, fmt.Errorf("%s With Id = %s Does Not Exist", target, id)
		}
		attr := strings.TrimSuffix(nav, "_"+target)
		out["_"+attr+"_value"] = id
		out["_"+attr+"_value"+lookupAnnotation] = target
		if set == "connections" && (attr == "record1id" || attr == "record2id") {
			if d := s.defs[target]; d != nil {
				out[strings.TrimSuffix(attr, "id")+"objecttypecode"] = float64(d.otc)
			}
		}
	}
	return out, nil
}

// readWrite reads the body of a write to set (as sent, and as stored),
// and who makes it, answering the error itself when one is wrong.
func (s *Server) readWrite(w http.ResponseWriter, r *http.Request, set string) (body, cols map[string]any, caller string, ok bool) {
	if body, ok = decodeBody(w, r); !ok {
		return nil, nil, "", false
	}
	if caller, ok = s.caller(w, r); !ok {
		return nil, nil, "", false
	}
	cols, err := s.normalizeWrite(set, body)
	if err != nil {
		odataError(w, http.StatusBadRequest, "0x80048d19", err.Error())
		return nil, nil, "", false
	}
	return body, cols, caller, true
}

// changedColumns are the logical names of the columns a write sets.
func changedColumns(cols map[string]any) []string {
	var out []string
	for k := range cols {
		if strings.Contains(k, "@") || k == "modifiedon" || k == "modifiedby" {
			continue
		}
		if a, ok := strings.CutPrefix(k, "_"); ok && strings.HasSuffix(a, "_value") {
			k = strings.TrimSuffix(a, "_value")
		}
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// stamp sets the system columns of a write by caller at now.
func stamp(cols map[string]any, caller string, now time.Time, create bool) {
	on := now.UTC().Truncate(time.Second).Format(time.RFC3339)
	cols["modifiedon"] = on
	cols["_modifiedby_value"] = caller
	if create {
		cols["createdon"] = on
		cols["_createdby_value"] = caller
	}
}

// create answers POST <set>.
func (s *Server) create(w http.ResponseWriter, r *http.Request, set string) {
	if set == "EntityDefinitions" {
		notFound(w, set)
		return
	}
	body, cols, caller, ok := s.readWrite(w, r, set)
	if !ok {
		return
	}
	idCol := idColumn(set)
	id, _ := cols[idCol].(string)
	if id == "" {
		id = uuid.NewString()
	}
	id = strings.ToLower(id)
	delete(cols, idCol)
	solution := r.Header.Get("MSCRM.SolutionUniqueName")
	now := time.Now()

	s.mu.Lock()
	if _, exists := s.rows[set][id]; exists {
		s.mu.Unlock()
		odataError(w, http.StatusPreconditionFailed, "0x80040237", "A record with matching key values already exists.")
		return
	}
	if solution != "" && s.solutionLocked(solution) == nil {
		s.mu.Unlock()
		odataError(w, http.StatusBadRequest, "0x8004f003", fmt.Sprintf("The solution %s was not found.", solution))
		return
	}
	if v := validators[set]; v != nil {
		if err := v(s, id, nil, cols); err != nil {
			s.mu.Unlock()
			writeValidation(w, err)
			return
		}
	} else if !customizationSets[set] {
		if _, owned := cols["_ownerid_value"]; !owned && ownedTables[set] {
			cols["_ownerid_value"], cols["_ownerid_value"+lookupAnnotation] = caller, "systemuser"
		}
		if _, ok := cols["statecode"]; !ok && ownedTables[set] {
			cols["statecode"], cols["statuscode"] = float64(0), float64(1)
		}
	}
	if err := s.checkOptionsLocked(tableOf(set), cols); err != nil {
		s.mu.Unlock()
		odataError(w, http.StatusBadRequest, "0x80040203", err.Error())
		return
	}
	stamp(cols, caller, now, true)
	if !s.persistLocked(w, set, id, cols) {
		s.mu.Unlock()
		return
	}
	s.upsert(set, id, cols)
	if solution != "" {
		s.ext.components = append(s.ext.components, Component{Solution: solution, Kind: set, ID: id})
	}
	row := maps.Clone(s.rows[set][id])
	version := s.versions[set+"/"+id]
	if !customizationSets[set] {
		s.raiseLocked(r, "Create", set, id, nil, row, changedColumns(body), caller, now)
	}
	s.mu.Unlock()

	loc := "http://" + r.Host + dataverse.APIPath + "/" + set + "(" + id + ")"
	w.Header().Set("OData-EntityId", loc)
	if strings.Contains(r.Header.Get("Prefer"), "return=representation") {
		w.Header().Set("Preference-Applied", "return=representation")
		out := rowOut(set, id, row, version, selectOf(r))
		out["@odata.context"] = dataverse.APIPath + "/$metadata#" + set + "/$entity"
		writeJSON(w, http.StatusCreated, out)
		return
	}
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(http.StatusNoContent)
}

// ownedTables are the user-owned tables whose new rows belong to the caller.
var ownedTables = map[string]bool{"contacts": true, "accounts": true, "opportunities": true, "connections": true}

func selectOf(r *http.Request) []string {
	sel := r.URL.Query().Get("$select")
	if sel == "" {
		return nil
	}
	return strings.Split(sel, ",")
}

// delete answers DELETE <set>(<id>).
func (s *Server) delete(w http.ResponseWriter, r *http.Request, set, id string) {
	caller, ok := s.caller(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	row, exists := s.rows[set][id]
	if !exists {
		s.mu.Unlock()
		odataError(w, http.StatusNotFound, "0x80040217", fmt.Sprintf("%s With Id = %s Does Not Exist", tableOf(set), id))
		return
	}
	if set == "serviceendpoints" {
		for _, step := range s.rows["sdkmessageprocessingsteps"] {
			if step["_eventhandler_value"] == id {
				s.mu.Unlock()
				// The code is [unconfirmed]; the rule (steps go first) is Dataverse's.
				odataError(w, http.StatusBadRequest, "0x80040227", "The object you tried to delete is associated with another object and cannot be deleted.")
				return
			}
		}
		delete(s.ext.authValues, id)
	}
	if set == "sdkmessageprocessingsteps" {
		for imgID, img := range s.rows["sdkmessageprocessingstepimages"] {
			if img["_sdkmessageprocessingstepid_value"] == id {
				delete(s.rows["sdkmessageprocessingstepimages"], imgID)
			}
		}
	}
	if !s.persistLocked(w, set, id, nil) {
		s.mu.Unlock()
		return
	}
	delete(s.rows[set], id)
	s.version++
	s.tombstoneLocked(set, id)
	if !customizationSets[set] {
		s.raiseLocked(r, "Delete", set, id, row, nil, nil, caller, time.Now())
	}
	s.mu.Unlock()
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(http.StatusNoContent)
}

// patchCustomization answers PATCH of a customization row: validated as a
// whole, as Dataverse validates the record it would store.
func (s *Server) patchCustomization(w http.ResponseWriter, r *http.Request, set, id string) {
	_, cols, caller, ok := s.readWrite(w, r, set)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old, exists := s.rows[set][id]
	if !exists {
		odataError(w, http.StatusNotFound, "0x80040217", fmt.Sprintf("%s With Id = %s Does Not Exist", tableOf(set), id))
		return
	}
	if v := validators[set]; v != nil {
		if err := v(s, id, old, cols); err != nil {
			writeValidation(w, err)
			return
		}
	}
	stamp(cols, caller, time.Now(), false)
	s.upsert(set, id, cols)
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(http.StatusNoContent)
}

// list answers GET <set>: $select, $filter, $top, Prefer
// odata.maxpagesize with $skiptoken, fetchXml and savedQuery.
func (s *Server) list(w http.ResponseWriter, r *http.Request, set string) {
	q := r.URL.Query()
	if q.Has("fetchXml") || q.Has("savedQuery") {
		s.fetch(w, r, set)
		return
	}
	s.readLatency()
	if tracked(r) {
		s.trackedList(w, r, set)
		return
	}
	for k := range q {
		switch k {
		case "$select", "$filter", "$top", "$skiptoken":
		default:
			odataError(w, http.StatusBadRequest, "0x80060888", fmt.Sprintf("The query parameter %s is not supported by the stand-in.", k))
			return
		}
	}
	var filter *odataFilter
	if f := q.Get("$filter"); f != "" {
		var err error
		if filter, err = parseFilter(f); err != nil {
			odataError(w, http.StatusBadRequest, "0x80060888", err.Error())
			return
		}
	}
	top := -1
	if t := q.Get("$top"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			odataError(w, http.StatusBadRequest, "0x80060888", fmt.Sprintf("Invalid value '%s' for $top query option.", t))
			return
		}
		top = n
	}
	sel := selectOf(r)
	s.mu.Lock()
	if _, known := s.rows[set]; !known && !customizationSets[set] && s.defs[tableOf(set)] == nil {
		s.mu.Unlock()
		notFound(w, set)
		return
	}
	ids := slices.Sorted(maps.Keys(s.rows[set]))
	var rows []map[string]any
	for _, id := range ids {
		row := s.rows[set][id]
		full := maps.Clone(row)
		full[idColumn(set)] = id
		if filter != nil && !filter.match(full) {
			continue
		}
		rows = append(rows, rowOut(set, id, row, s.versions[set+"/"+id], sel))
	}
	s.mu.Unlock()
	if top >= 0 && len(rows) > top {
		rows = rows[:top]
	}
	s.page(w, r, set, rows)
}

// page writes a collection, paged by Prefer: odata.maxpagesize.
func (s *Server) page(w http.ResponseWriter, r *http.Request, set string, rows []map[string]any) {
	size := 5000
	if m := maxPageRE.FindStringSubmatch(r.Header.Get("Prefer")); m != nil {
		if n, err := strconv.Atoi(m[1]); err == nil && n > 0 && n <= 5000 {
			size = n
			w.Header().Set("Preference-Applied", "odata.maxpagesize="+m[1])
		}
	}
	from := 0
	if tok := r.URL.Query().Get("$skiptoken"); tok != "" {
		n, err := strconv.Atoi(tok)
		if err != nil || n < 0 {
			odataError(w, http.StatusBadRequest, "0x80060888", "Invalid $skiptoken.")
			return
		}
		from = min(n, len(rows))
	}
	out := map[string]any{"@odata.context": dataverse.APIPath + "/$metadata#" + set}
	end := min(from+size, len(rows))
	page := rows[from:end]
	if page == nil {
		page = []map[string]any{}
	}
	out["value"] = page
	if end < len(rows) {
		next := *r.URL
		q := next.Query()
		q.Set("$skiptoken", strconv.Itoa(end))
		next.RawQuery = q.Encode()
		out["@odata.nextLink"] = "http://" + r.Host + next.RequestURI()
	}
	writeJSON(w, http.StatusOK, out)
}

var maxPageRE = regexp.MustCompile(`odata\.maxpagesize=(\d+)`)
