package dataversetest

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/fetchxml"
)

// fetch answers GET <set>?fetchXml=… and GET <set>?savedQuery=<id>: the
// query is executed as the calling user, so eq-userid is who asks.
func (s *Server) fetch(w http.ResponseWriter, r *http.Request, set string) {
	caller, ok := s.caller(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	doc := q.Get("fetchXml")
	table := tableOf(set)
	s.mu.Lock()
	defer s.mu.Unlock()
	if id := q.Get("savedQuery"); id != "" {
		if !dataverse.IsGUID(id) {
			odataError(w, http.StatusBadRequest, "0x80040203", fmt.Sprintf("savedQuery %q is not a GUID.", id))
			return
		}
		view, ok := s.rows["savedqueries"][strings.ToLower(id)]
		if !ok {
			odataError(w, http.StatusNotFound, "0x80040217", fmt.Sprintf("savedquery With Id = %s Does Not Exist", strings.ToLower(id)))
			return
		}
		if str(view, "returnedtypecode") != table {
			odataError(w, http.StatusBadRequest, "0x80040203", fmt.Sprintf("The view %s returns %s, not %s.", id, str(view, "returnedtypecode"), table))
			return
		}
		doc = str(view, "fetchxml")
	}
	f, err := fetchxml.Parse(doc)
	if err != nil {
		odataError(w, http.StatusBadRequest, "0x80041103", err.Error())
		return
	}
	if f.Entity.Name != table {
		odataError(w, http.StatusBadRequest, "0x80040203", fmt.Sprintf("The fetchXml queries %s, not %s.", f.Entity.Name, table))
		return
	}
	for _, u := range f.Uses() {
		if !s.hasAttrLocked(u.Table, u.Attribute) {
			odataError(w, http.StatusBadRequest, "0x80041103", fmt.Sprintf("'%s' entity doesn't contain attribute with Name = '%s' and NameMapping = 'Logical'.", u.Table, u.Attribute))
			return
		}
	}
	rows := (&fetchRun{s: s, caller: caller}).run(f)
	s.page(w, r, set, rows)
}

// fetchRun executes one query; s.mu is held.
type fetchRun struct {
	s      *Server
	caller string
	anon   int
}

// combo is one joined result: alias ("" the queried entity) → row, nil
// for an outer link that matched nothing.
type combo map[string]map[string]any

func (x *fetchRun) rowsOf(table string) []map[string]any {
	set := setOf(table)
	var out []map[string]any
	for _, id := range slices.Sorted(maps.Keys(x.s.rows[set])) {
		row := maps.Clone(x.s.rows[set][id])
		row[idColumn(set)] = id
		row["@version"] = x.s.versions[set+"/"+id]
		out = append(out, row)
	}
	return out
}

func (x *fetchRun) run(f *fetchxml.Fetch) []map[string]any {
	var results []combo
	for _, base := range x.rowsOf(f.Entity.Name) {
		combos := []combo{{"": base}}
		for i := range f.Entity.Links {
			combos = x.join(combos, "", &f.Entity.Links[i])
		}
		for _, c := range combos {
			if x.all(f.Entity.Filters, c, "") {
				results = append(results, c)
			}
		}
	}
	for i := len(f.Entity.Orders) - 1; i >= 0; i-- {
		o := f.Entity.Orders[i]
		slices.SortStableFunc(results, func(a, b combo) int {
			c := orderValues(value(a[""], o.Attribute), value(b[""], o.Attribute))
			if o.Descending {
				return -c
			}
			return c
		})
	}
	var out []map[string]any
	seen := map[string]bool{}
	for _, c := range results {
		row := x.project(f, c)
		if f.Distinct {
			key, _ := json.Marshal(row)
			if seen[string(key)] {
				continue
			}
			seen[string(key)] = true
		}
		out = append(out, row)
		if f.Top > 0 && len(out) == f.Top {
			break
		}
	}
	return out
}

func orderValues(a, b any) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return -1
	case b == nil:
		return 1
	}
	c, _ := compare(a, b)
	return c
}

// join extends each combo with the rows of link l joined to alias parent.
func (x *fetchRun) join(combos []combo, parent string, l *fetchxml.Link) []combo {
	alias := l.Alias
	if alias == "" {
		x.anon++
		alias = fmt.Sprintf("#%d", x.anon)
	}
	var out []combo
	for _, c := range combos {
		var matched []combo
		for _, cand := range x.matches(c[parent], l) {
			next := maps.Clone(c)
			next[alias] = cand
			sub := []combo{next}
			for i := range l.Links {
				sub = x.join(sub, alias, &l.Links[i])
			}
			for _, n := range sub {
				if x.all(l.Filters, n, alias) {
					matched = append(matched, n)
				}
			}
		}
		switch {
		case len(matched) > 0:
			out = append(out, matched...)
		case l.Type == "outer":
			next := maps.Clone(c)
			next[alias] = nil
			out = append(out, next)
		}
	}
	return out
}

// matches are the rows of l's table whose From equals parent's To.
func (x *fetchRun) matches(parent map[string]any, l *fetchxml.Link) []map[string]any {
	if parent == nil {
		return nil
	}
	key := value(parent, l.To)
	if key == nil {
		return nil
	}
	var out []map[string]any
	for _, row := range x.rowsOf(l.Name) {
		if v := value(row, l.From); v != nil {
			if c, ok := compare(v, key); ok && c == 0 {
				out = append(out, row)
			}
		}
	}
	return out
}

func (x *fetchRun) all(filters []fetchxml.Filter, c combo, self string) bool {
	for i := range filters {
		if !x.filter(&filters[i], c, self) {
			return false
		}
	}
	return true
}

func (x *fetchRun) filter(f *fetchxml.Filter, c combo, self string) bool {
	var results []bool
	for _, cond := range f.Conditions {
		results = append(results, x.condition(cond, c, self))
	}
	for i := range f.Filters {
		results = append(results, x.filter(&f.Filters[i], c, self))
	}
	for i := range f.Any {
		l := &f.Any[i]
		probe := x.join([]combo{{"": c[self]}}, "", l)
		results = append(results, len(probe) > 0)
	}
	if f.Or {
		return slices.Contains(results, true) || len(results) == 0
	}
	return !slices.Contains(results, false)
}

func (x *fetchRun) condition(cond fetchxml.Condition, c combo, self string) bool {
	alias := self
	if cond.EntityName != "" {
		alias = cond.EntityName
	}
	v := value(c[alias], cond.Attribute)
	switch cond.Operator {
	case "null":
		return v == nil
	case "not-null":
		return v != nil
	case "eq-userid", "ne-userid":
		s, _ := v.(string)
		eq := v != nil && strings.EqualFold(s, x.caller)
		return v != nil && eq == (cond.Operator == "eq-userid")
	}
	if v == nil {
		return false
	}
	cmp, ok := compare(v, cond.Value)
	if !ok {
		return false
	}
	if cond.Operator == "eq" {
		return cmp == 0
	}
	return cmp != 0
}

// value reads a column of a row: a plain column, or a lookup stored as
// _x_value.
func value(row map[string]any, col string) any {
	if row == nil {
		return nil
	}
	if v, ok := row[col]; ok {
		return v
	}
	return row["_"+col+"_value"]
}

// project renders a result row the way the Web API returns fetch results.
func (x *fetchRun) project(f *fetchxml.Fetch, c combo) map[string]any {
	base := c[""]
	table := f.Entity.Name
	out := map[string]any{"@odata.etag": fmt.Sprintf(`W/"%d"`, base["@version"])}
	put := func(prefix, table string, row map[string]any, col string) {
		if isLookup(x.s.attrTypeLocked(table, col)) {
			key := prefix + "_" + col + "_value"
			out[key] = value(row, col)
			if ann, ok := row["_"+col+"_value"+lookupAnnotation]; ok {
				out[key+lookupAnnotation] = ann
			} else if t, ok := lookupTargets[col]; ok && out[key] != nil {
				out[key+lookupAnnotation] = t
			}
			return
		}
		out[prefix+col] = value(row, col)
	}
	if f.Entity.All {
		for k, v := range base {
			if !strings.HasPrefix(k, "@") {
				out[k] = v
			}
		}
	}
	for _, a := range f.Entity.Attributes {
		put("", table, base, a)
	}
	for i := range f.Entity.Links {
		l := &f.Entity.Links[i]
		for _, a := range l.Attributes {
			prefix := l.Alias
			if prefix == "" {
				prefix = l.Name
			}
			put(prefix+".", l.Name, c[l.Alias], a)
		}
	}
	out[idColumn(setOf(table))] = base[idColumn(setOf(table))]
	return out
}

func isLookup(typ string) bool { return typ == "Lookup" || typ == "Customer" || typ == "Owner" }

// layoutCells returns the cell names of a view's layoutxml grid.
func layoutCells(doc string) ([]string, error) {
	var g struct {
		Rows []struct {
			Cells []struct {
				Name string `xml:"name,attr"`
			} `xml:"cell"`
		} `xml:"row"`
	}
	if err := xmlUnmarshal(doc, "grid", &g); err != nil {
		return nil, err
	}
	var cells []string
	for _, r := range g.Rows {
		for _, c := range r.Cells {
			if c.Name == "" {
				return nil, fmt.Errorf("a cell without a name")
			}
			cells = append(cells, c.Name)
		}
	}
	if len(cells) == 0 {
		return nil, fmt.Errorf("want <grid><row><cell name=\"…\"/></row></grid>")
	}
	return cells, nil
}

// xmlUnmarshal decodes doc into v, whose root element must be root.
func xmlUnmarshal(doc, root string, v any) error {
	var probe struct{ XMLName xml.Name }
	if err := xml.Unmarshal([]byte(doc), &probe); err != nil {
		return fmt.Errorf("not XML: %v", err)
	}
	if probe.XMLName.Local != root {
		return fmt.Errorf("the root element must be %s", root)
	}
	return xml.Unmarshal([]byte(doc), v)
}
