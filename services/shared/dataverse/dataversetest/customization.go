package dataversetest

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/notatcompany/notatcompany/services/shared/dataverse/fetchxml"
)

// validationError is a refused customization write.
type validationError struct {
	code, msg string
}

func (e *validationError) Error() string { return e.msg }

func invalid(code, format string, args ...any) error {
	return &validationError{code: code, msg: fmt.Sprintf(format, args...)}
}

func writeValidation(w http.ResponseWriter, err error) {
	var ve *validationError
	if errors.As(err, &ve) {
		odataError(w, http.StatusBadRequest, ve.code, ve.msg)
		return
	}
	odataError(w, http.StatusBadRequest, "0x80040203", err.Error())
}

// validator checks a customization write of the row id (old is the stored
// row, nil on create) and may set defaults in cols. s.mu is held.
type validator func(s *Server, id string, old, cols map[string]any) error

var validators = map[string]validator{
	"publishers":                     validatePublisher,
	"solutions":                      validateSolution,
	"savedqueries":                   validateSavedQuery,
	"serviceendpoints":               validateServiceEndpoint,
	"sdkmessageprocessingsteps":      validateStep,
	"sdkmessageprocessingstepimages": validateImage,
	"sdkmessages":                    readOnly,
	"sdkmessagefilters":              readOnly,
	"asyncoperations":                readOnly,
}

func readOnly(*Server, string, map[string]any, map[string]any) error {
	return invalid("0x80040220", "The stand-in keeps this table read-only.")
}

// merged is the row a write would leave.
func merged(old, cols map[string]any) map[string]any {
	m := map[string]any{}
	for k, v := range old {
		m[k] = v
	}
	for k, v := range cols {
		m[k] = v
	}
	return m
}

func str(row map[string]any, col string) string { s, _ := row[col].(string); return s }

func intOf(row map[string]any, col string) (int, bool) {
	n, ok := number(row[col])
	if !ok || n != float64(int(n)) {
		return 0, false
	}
	return int(n), true
}

func require(row map[string]any, cols ...string) error {
	for _, c := range cols {
		if v, ok := row[c]; !ok || v == nil || v == "" {
			return invalid("0x80040200", "The required field '%s' is missing.", c)
		}
	}
	return nil
}

// unique refuses a second row of set with the same value in col.
func (s *Server) uniqueLocked(set, col, id string, row map[string]any) error {
	for other, r := range s.rows[set] {
		if other != id && strings.EqualFold(str(r, col), str(row, col)) {
			return invalid("0x80040237", "A record with the same %s (%s) already exists.", col, str(row, col))
		}
	}
	return nil
}

func (s *Server) solutionLocked(unique string) map[string]any {
	for _, r := range s.rows["solutions"] {
		if strings.EqualFold(str(r, "uniquename"), unique) {
			return r
		}
	}
	return nil
}

func validatePublisher(s *Server, id string, old, cols map[string]any) error {
	row := merged(old, cols)
	if err := require(row, "uniquename", "friendlyname", "customizationprefix"); err != nil {
		return err
	}
	if p := str(row, "customizationprefix"); len(p) < 2 || len(p) > 8 || strings.ToLower(p) != p || strings.HasPrefix(p, "mscrm") {
		return invalid("0x80044150", "customizationprefix %q: want 2-8 lower-case letters and digits, not mscrm.", p)
	}
	if v, ok := intOf(row, "customizationoptionvalueprefix"); ok && (v < 10000 || v > 99999) {
		return invalid("0x80044150", "customizationoptionvalueprefix %d: want 10000-99999.", v)
	}
	return s.uniqueLocked("publishers", "uniquename", id, row)
}

func validateSolution(s *Server, id string, old, cols map[string]any) error {
	row := merged(old, cols)
	if err := require(row, "uniquename", "friendlyname", "version", "_publisherid_value"); err != nil {
		return err
	}
	if old == nil {
		cols["ismanaged"] = false
	}
	return s.uniqueLocked("solutions", "uniquename", id, row)
}

func validateSavedQuery(s *Server, id string, old, cols map[string]any) error {
	if old == nil {
		delete(cols, "statecode") // not valid for create [unconfirmed: ignored or refused]
	}
	row := merged(old, cols)
	if err := require(row, "name", "returnedtypecode", "fetchxml", "layoutxml"); err != nil {
		return err
	}
	if qt, ok := intOf(row, "querytype"); !ok || qt != 0 {
		return invalid("0x80040203", "querytype must be 0 (a public view).")
	}
	table := str(row, "returnedtypecode")
	if s.defs[table] == nil {
		return invalid("0x80040203", "returnedtypecode %q is not a table.", table)
	}
	f, err := fetchxml.Parse(str(row, "fetchxml"))
	if err != nil {
		return invalid("0x80041103", "%v", err)
	}
	if f.Entity.Name != table {
		return invalid("0x80040203", "The fetchxml queries %s, the view returns %s.", f.Entity.Name, table)
	}
	selected := map[string]bool{}
	for _, a := range f.Entity.Attributes {
		selected[a] = true
	}
	for _, u := range f.Uses() {
		if !s.hasAttrLocked(u.Table, u.Attribute) {
			return invalid("0x80041103", "'%s' entity doesn't contain attribute with Name = '%s' and NameMapping = 'Logical'.", u.Table, u.Attribute)
		}
	}
	cells, err := layoutCells(str(row, "layoutxml"))
	if err != nil {
		return invalid("0x80040203", "layoutxml: %v", err)
	}
	for _, c := range cells {
		if !selected[c] && !f.Entity.All {
			return invalid("0x80040203", "layoutxml cell %s is not an attribute of the fetchxml.", c)
		}
	}
	if old == nil {
		cols["statecode"], cols["statuscode"] = float64(0), float64(1)
		cols["ismanaged"], cols["iscustomizable"] = false, map[string]any{"Value": true}
		if _, ok := cols["isdefault"]; !ok {
			cols["isdefault"] = false
		}
	}
	return nil
}

func validateServiceEndpoint(s *Server, id string, old, cols map[string]any) error {
	// authvalue is write-only: kept aside, never in the row, never returned.
	auth := s.ext.authValues[id]
	if v, ok := cols["authvalue"]; ok {
		auth, _ = v.(string)
		delete(cols, "authvalue")
	}
	row := merged(old, cols)
	if err := require(row, "name", "url", "contract"); err != nil {
		return err
	}
	contract, _ := intOf(row, "contract")
	if contract != 8 {
		return invalid("0x80040203", "contract %d: the stand-in has webhooks (8) only.", contract)
	}
	u, err := url.Parse(str(row, "url"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return invalid("0x80040203", "url %q: want an absolute http(s) URL.", str(row, "url"))
	}
	authType, _ := intOf(row, "authtype")
	if authType != 4 && authType != 5 && authType != 6 {
		return invalid("0x80040203", "authtype %d: a webhook takes 4 (WebhookKey), 5 (HttpHeader) or 6 (HttpQueryString).", authType)
	}
	if auth == "" {
		return invalid("0x80040200", "The required field 'authvalue' is missing.")
	}
	if authType != 4 {
		if _, err := parseSettings(auth); err != nil {
			return invalid("0x80040203", "authvalue: %v", err)
		}
	}
	if _, ok := row["messageformat"]; !ok {
		cols["messageformat"] = float64(2)
	}
	s.ext.authValues[id] = auth
	return nil
}

func validateStep(s *Server, id string, old, cols map[string]any) error {
	row := merged(old, cols)
	if err := require(row, "name", "stage", "mode", "_sdkmessageid_value", "_eventhandler_value"); err != nil {
		return err
	}
	stage, _ := intOf(row, "stage")
	mode, _ := intOf(row, "mode")
	if !slices.Contains([]int{10, 20, 40}, stage) || (mode != 0 && mode != 1) {
		return invalid("0x80040203", "stage %d / mode %d: want stage 10, 20 or 40 and mode 0 or 1.", stage, mode)
	}
	if mode == 1 && stage != 40 {
		return invalid("0x80040203", "An asynchronous step must be registered on the post-operation stage (40).")
	}
	if row["_eventhandler_value"+lookupAnnotation] != nil && row["_eventhandler_value"+lookupAnnotation] != "serviceendpoint" {
		return invalid("0x80040203", "eventhandler must be a serviceendpoint here.")
	}
	msg := s.rows["sdkmessages"][str(row, "_sdkmessageid_value")]
	var table string
	if f := str(row, "_sdkmessagefilterid_value"); f != "" {
		filter := s.rows["sdkmessagefilters"][f]
		if str(filter, "_sdkmessageid_value") != str(row, "_sdkmessageid_value") {
			return invalid("0x80040203", "The message filter %s is not of message %s.", f, str(msg, "name"))
		}
		table = str(filter, "primaryobjecttypecode")
	}
	for _, col := range strings.Split(str(row, "filteringattributes"), ",") {
		if col = strings.TrimSpace(col); col != "" && table != "" && !s.hasAttrLocked(table, col) {
			return invalid("0x80040203", "filteringattributes: %s has no column %s.", table, col)
		}
	}
	if old == nil {
		if _, ok := cols["statecode"]; !ok {
			cols["statecode"], cols["statuscode"] = float64(0), float64(1)
		}
	}
	if st, ok := cols["statecode"]; ok {
		n, _ := number(st)
		cols["statuscode"] = n + 1 // 0 Enabled/1, 1 Disabled/2
	}
	return nil
}

func validateImage(s *Server, id string, old, cols map[string]any) error {
	row := merged(old, cols)
	if err := require(row, "entityalias", "messagepropertyname", "_sdkmessageprocessingstepid_value"); err != nil {
		return err
	}
	step := s.rows["sdkmessageprocessingsteps"][str(row, "_sdkmessageprocessingstepid_value")]
	msg := str(s.rows["sdkmessages"][str(step, "_sdkmessageid_value")], "name")
	typ, ok := intOf(row, "imagetype")
	if !ok || typ < 0 || typ > 2 {
		return invalid("0x80040203", "imagetype: want 0 (pre), 1 (post) or 2 (both).")
	}
	prop := str(row, "messagepropertyname")
	want := map[string]string{"Create": "Id", "Update": "Target", "Delete": "Target", "SetState": "EntityMoniker", "Assign": "Target"}[msg]
	if prop != want {
		return invalid("0x8004416b", "Message property name '%s' is not valid on message %s.", prop, msg)
	}
	if (msg == "Create" && typ != 1) || (msg == "Delete" && typ != 0) {
		return invalid("0x80040203", "A %s step takes only a %s image.", msg, map[string]string{"Create": "post", "Delete": "pre"}[msg])
	}
	return nil
}

// seedMessages puts the SDK messages and filters a Dataverse organization
// has for the tables notatcompany registers, with fixed ids. s.mu is held.
func seedMessages(s *Server) {
	messages := []string{"Create", "Update", "Delete", "Assign", "SetState"}
	for _, m := range messages {
		id := fixedID("sdkmessage " + m)
		if _, ok := s.rows["sdkmessages"][id]; !ok {
			s.upsert("sdkmessages", id, map[string]any{"name": m})
		}
	}
	add := func(msg, table string) {
		id := fixedID("sdkmessagefilter " + msg + " " + table)
		if _, ok := s.rows["sdkmessagefilters"][id]; !ok {
			s.upsert("sdkmessagefilters", id, map[string]any{
				"_sdkmessageid_value": fixedID("sdkmessage " + msg), "_sdkmessageid_value" + lookupAnnotation: "sdkmessage",
				"primaryobjecttypecode": table, "secondaryobjecttypecode": "none", "iscustomprocessingstepallowed": true,
			})
		}
	}
	for _, table := range []string{"contact", "account", "opportunity", "connection"} {
		for _, m := range messages {
			add(m, table)
		}
	}
	add("Update", "systemuser") // users are disabled, not deleted
}

// parseSettings reads an HttpHeader / HttpQueryString authvalue:
// <settings><setting name="…" value="…"/></settings>.
func parseSettings(doc string) ([][2]string, error) {
	var x struct {
		Settings []struct {
			Name  string `xml:"name,attr"`
			Value string `xml:"value,attr"`
		} `xml:"setting"`
	}
	if err := xmlUnmarshal(doc, "settings", &x); err != nil {
		return nil, err
	}
	var out [][2]string
	for _, st := range x.Settings {
		if st.Name == "" {
			return nil, fmt.Errorf("a setting without a name")
		}
		out = append(out, [2]string{st.Name, st.Value})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("want <settings><setting name=\"…\" value=\"…\"/></settings>")
	}
	return out, nil
}
