package dataversetest

import (
	"fmt"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// entityDef is a table's definition, as EntityDefinitions reports it.
type entityDef struct {
	logical, primaryID, primaryName string
	otc                             int
	changeTracking                  bool
	// attrs are the standard columns by logical name → AttributeType.
	attrs map[string]string
}

// entityDefs are the tables the stand-in knows the definition of.
func entityDefs() map[string]*entityDef {
	common := map[string]string{"createdon": "DateTime", "modifiedon": "DateTime", "createdby": "Lookup",
		"modifiedby": "Lookup", "versionnumber": "BigInt"}
	owned := map[string]string{"ownerid": "Owner", "statecode": "State", "statuscode": "Status"}
	def := func(logical, primaryName string, otc int, attrs map[string]string, sets ...map[string]string) *entityDef {
		d := &entityDef{logical: logical, primaryID: logical + "id", primaryName: primaryName, otc: otc,
			changeTracking: true, attrs: map[string]string{logical + "id": "Uniqueidentifier"}}
		maps.Copy(d.attrs, common)
		for _, s := range sets {
			maps.Copy(d.attrs, s)
		}
		maps.Copy(d.attrs, attrs)
		return d
	}
	return map[string]*entityDef{
		"account": def("account", "name", 1, map[string]string{"name": "String", "websiteurl": "String",
			"emailaddress1": "String", "telephone1": "String", "primarycontactid": "Lookup", "parentaccountid": "Lookup"}, owned),
		"contact": def("contact", "fullname", 2, map[string]string{"firstname": "String", "lastname": "String",
			"fullname": "String", "jobtitle": "String", "emailaddress1": "String", "emailaddress2": "String",
			"emailaddress3": "String", "address1_country": "String", "parentcustomerid": "Customer",
			"telephone1": "String"}, owned),
		"opportunity": def("opportunity", "name", 3, map[string]string{"name": "String", "parentcontactid": "Lookup",
			"parentaccountid": "Lookup", "customerid": "Customer", "estimatedvalue": "Money",
			"estimatedclosedate": "DateTime"}, owned),
		// A connection links two records, each end in a role; Dataverse
		// sets each end's object type code from its lookup.
		"connection": def("connection", "name", 3234, map[string]string{"name": "String", "record1id": "Lookup",
			"record2id": "Lookup", "record1objecttypecode": "Picklist", "record2objecttypecode": "Picklist",
			"record1roleid": "Lookup", "record2roleid": "Lookup"}, owned),
		"connectionrole": def("connectionrole", "name", 3231, map[string]string{"name": "String", "category": "Picklist"},
			map[string]string{"statecode": "State", "statuscode": "Status"}),
		"systemuser": def("systemuser", "fullname", 8, map[string]string{"fullname": "String", "isdisabled": "Boolean",
			"internalemailaddress": "String", "azureactivedirectoryobjectid": "Uniqueidentifier",
			"applicationid": "Uniqueidentifier", "businessunitid": "Lookup"}),
	}
}

// attribute is a column created through the API.
type attribute struct {
	entity, logical, schema, typ, metadataID string
	options                                  []option
	body                                     map[string]any // as posted, for reads
}

type option struct {
	Value int
	Label any
}

// attrType is the type of a column of table: standard or created; "" when
// the column is unknown.
func (s *Server) attrTypeLocked(table, col string) string {
	if a := s.ext.attrs[table][col]; a != nil {
		return a.typ
	}
	if d := s.defs[table]; d != nil {
		return d.attrs[col]
	}
	return ""
}

// hasAttrLocked reports whether table has column col.
func (s *Server) hasAttrLocked(table, col string) bool { return s.attrTypeLocked(table, col) != "" }

// checkOptionsLocked refuses a value of a created choice column that is
// not one of its options.
func (s *Server) checkOptionsLocked(table string, cols map[string]any) error {
	for col, v := range cols {
		a := s.ext.attrs[table][col]
		if a == nil || a.typ != "Picklist" || v == nil {
			continue
		}
		n, ok := number(v)
		if !ok || !slices.ContainsFunc(a.options, func(o option) bool { return float64(o.Value) == n }) {
			return fmt.Errorf("A validation error occurred. The value %v of '%s' on record of type '%s' is outside the valid range.", v, col, table)
		}
	}
	return nil
}

type metadataPath struct {
	entity, entityID string
	attrs            bool
	attr, attrID     string
	cast             string
}

func (s *Server) metadata(w http.ResponseWriter, r *http.Request, p metadataPath) {
	defs := s.trackedDefs()
	if p.entity == "" && p.entityID == "" {
		if p.attrs || r.Method != http.MethodGet {
			notFound(w, "EntityDefinitions")
			return
		}
		var out []map[string]any
		for _, name := range slices.Sorted(maps.Keys(defs)) {
			out = append(out, entityJSON(defs[name]))
		}
		s.metadataList(w, r, "EntityDefinitions", out)
		return
	}
	var d *entityDef
	for _, cand := range defs {
		if cand.logical == p.entity || strings.EqualFold(fixedID("entity "+cand.logical), p.entityID) {
			d = cand
		}
	}
	if d == nil {
		odataError(w, http.StatusNotFound, "0x80060888", fmt.Sprintf("Could not find an entity with name or id '%s%s'.", p.entity, p.entityID))
		return
	}
	if !p.attrs {
		if r.Method != http.MethodGet {
			methodNotAllowed(w)
			return
		}
		writeJSON(w, http.StatusOK, project(entityJSON(d), selectOf(r)))
		return
	}
	if p.attr == "" && p.attrID == "" {
		switch r.Method {
		case http.MethodGet:
			s.mu.Lock()
			out := s.attributesJSONLocked(d)
			s.mu.Unlock()
			s.metadataList(w, r, "EntityDefinitions('"+d.logical+"')/Attributes", out)
		case http.MethodPost:
			s.createAttribute(w, r, d)
		default:
			methodNotAllowed(w)
		}
		return
	}
	if r.Method != http.MethodGet {
		methodNotAllowed(w)
		return
	}
	s.mu.Lock()
	var found map[string]any
	for _, a := range s.attributesJSONLocked(d) {
		if a["LogicalName"] == p.attr || strings.EqualFold(fmt.Sprint(a["MetadataId"]), p.attrID) {
			found = a
		}
	}
	s.mu.Unlock()
	if found == nil || (p.cast != "" && found["@odata.type"] != "#Microsoft.Dynamics.CRM."+p.cast) {
		odataError(w, http.StatusNotFound, "0x80041102", fmt.Sprintf("Could not find attribute '%s%s' of entity '%s'.", p.attr, p.attrID, d.logical))
		return
	}
	out := project(found, selectOf(r))
	if strings.Contains(r.URL.Query().Get("$expand"), "OptionSet") {
		out["OptionSet"] = found["OptionSet"]
	}
	writeJSON(w, http.StatusOK, out)
}

// metadataList writes a metadata collection with $select and a $filter.
func (s *Server) metadataList(w http.ResponseWriter, r *http.Request, ctx string, items []map[string]any) {
	var filter *odataFilter
	if f := r.URL.Query().Get("$filter"); f != "" {
		var err error
		if filter, err = parseFilter(f); err != nil {
			odataError(w, http.StatusBadRequest, "0x80060888", err.Error())
			return
		}
	}
	out := []map[string]any{}
	for _, it := range items {
		if filter == nil || filter.match(it) {
			out = append(out, project(it, selectOf(r)))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": dataverse.APIPath + "/$metadata#" + ctx, "value": out})
}

func project(item map[string]any, sel []string) map[string]any {
	if len(sel) == 0 {
		return maps.Clone(item)
	}
	out := map[string]any{}
	if t, ok := item["@odata.type"]; ok {
		out["@odata.type"] = t
	}
	for _, k := range sel {
		out[k] = item[k]
	}
	out["MetadataId"] = item["MetadataId"]
	return out
}

func entityJSON(d *entityDef) map[string]any {
	return map[string]any{
		"LogicalName": d.logical, "SchemaName": strings.ToUpper(d.logical[:1]) + d.logical[1:],
		"EntitySetName": setOf(d.logical), "MetadataId": fixedID("entity " + d.logical), "ObjectTypeCode": float64(d.otc),
		"PrimaryIdAttribute": d.primaryID, "PrimaryNameAttribute": d.primaryName,
		"ChangeTrackingEnabled": d.changeTracking, "CanChangeTrackingBeEnabled": map[string]any{"Value": true},
		"IsCustomEntity": false, "IsManaged": true,
	}
}

func (s *Server) attributesJSONLocked(d *entityDef) []map[string]any {
	var out []map[string]any
	for _, name := range slices.Sorted(maps.Keys(d.attrs)) {
		typ := d.attrs[name]
		out = append(out, map[string]any{
			"@odata.type": "#Microsoft.Dynamics.CRM." + metadataType(typ), "LogicalName": name, "AttributeType": typ,
			"MetadataId": fixedID("attribute " + d.logical + "." + name), "IsManaged": true, "IsCustomAttribute": false,
		})
	}
	for _, name := range slices.Sorted(maps.Keys(s.ext.attrs[d.logical])) {
		a := s.ext.attrs[d.logical][name]
		item := maps.Clone(a.body)
		item["@odata.type"] = "#Microsoft.Dynamics.CRM." + metadataType(a.typ)
		item["LogicalName"], item["SchemaName"], item["AttributeType"] = a.logical, a.schema, a.typ
		item["MetadataId"], item["IsManaged"], item["IsCustomAttribute"] = a.metadataID, false, true
		if a.typ == "Picklist" {
			var opts []map[string]any
			for _, o := range a.options {
				opts = append(opts, map[string]any{"Value": float64(o.Value), "Label": o.Label})
			}
			item["OptionSet"] = map[string]any{"Name": d.logical + "_" + a.logical, "IsGlobal": false, "OptionSetType": "Picklist", "Options": opts}
		}
		out = append(out, item)
	}
	return out
}

func metadataType(attrType string) string {
	switch attrType {
	case "Customer", "Owner":
		return "LookupAttributeMetadata"
	case "Uniqueidentifier":
		return "UniqueIdentifierAttributeMetadata"
	}
	return attrType + "AttributeMetadata"
}

var (
	schemaRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9]*)_[A-Za-z0-9_]+$`)
	// creatable are the column types POST …/Attributes takes here.
	creatable = map[string]string{
		"Microsoft.Dynamics.CRM.PicklistAttributeMetadata": "Picklist", "Microsoft.Dynamics.CRM.StringAttributeMetadata": "String",
		"Microsoft.Dynamics.CRM.MemoAttributeMetadata": "Memo", "Microsoft.Dynamics.CRM.DateTimeAttributeMetadata": "DateTime",
		"Microsoft.Dynamics.CRM.DecimalAttributeMetadata": "Decimal", "Microsoft.Dynamics.CRM.IntegerAttributeMetadata": "Integer",
		"Microsoft.Dynamics.CRM.BooleanAttributeMetadata": "Boolean",
	}
)

// createAttribute answers POST EntityDefinitions(…)/Attributes.
func (s *Server) createAttribute(w http.ResponseWriter, r *http.Request, d *entityDef) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	bad := func(code, format string, args ...any) {
		odataError(w, http.StatusBadRequest, code, fmt.Sprintf(format, args...))
	}
	odataType, _ := body["@odata.type"].(string)
	typ := creatable[strings.TrimPrefix(odataType, "#")]
	if typ == "" {
		bad("0x80048d19", "The @odata.type %q is not a column type the stand-in creates.", odataType)
		return
	}
	schema, _ := body["SchemaName"].(string)
	m := schemaRE.FindStringSubmatch(schema)
	if m == nil {
		bad("0x80044150", "SchemaName %q: want <prefix>_<Name>.", schema)
		return
	}
	if !hasLabel(body["DisplayName"]) {
		bad("0x80044150", "DisplayName needs at least one LocalizedLabel.")
		return
	}
	if _, ok := body["RequiredLevel"].(map[string]any); !ok {
		bad("0x80044150", "RequiredLevel is required.")
		return
	}
	var opts []option
	if typ == "Picklist" {
		set, _ := body["OptionSet"].(map[string]any)
		raw, _ := set["Options"].([]any)
		if len(raw) == 0 {
			bad("0x80044150", "A choice column needs OptionSet.Options.")
			return
		}
		for i, o := range raw {
			om, _ := o.(map[string]any)
			v, isNum := om["Value"].(float64)
			if !isNum || v != float64(int(v)) || !hasLabel(om["Label"]) {
				bad("0x80044150", "OptionSet.Options[%d]: want an integer Value and a Label.", i)
				return
			}
			if slices.ContainsFunc(opts, func(x option) bool { return x.Value == int(v) }) {
				bad("0x80044150", "OptionSet.Options[%d]: value %d is listed twice.", i, int(v))
				return
			}
			opts = append(opts, option{Value: int(v), Label: om["Label"]})
		}
	}
	logical := strings.ToLower(schema)
	solution := r.Header.Get("MSCRM.SolutionUniqueName")
	s.mu.Lock()
	defer s.mu.Unlock()
	prefix := "new" // the default solution's publisher
	if solution != "" {
		sol := s.solutionLocked(solution)
		if sol == nil {
			bad("0x8004f003", "The solution %s was not found.", solution)
			return
		}
		pub := s.rows["publishers"][fmt.Sprint(sol["_publisherid_value"])]
		prefix, _ = pub["customizationprefix"].(string)
	}
	if !strings.EqualFold(m[1], prefix) {
		bad("0x80044150", "The schema name %s does not start with the publisher's customization prefix %s_.", schema, prefix)
		return
	}
	if s.hasAttrLocked(d.logical, logical) {
		bad("0x80044363", "The schema name %s for type Attribute is not unique.", schema)
		return
	}
	a := &attribute{entity: d.logical, logical: logical, schema: schema, typ: typ,
		metadataID: newID(), options: opts, body: map[string]any{}}
	for _, k := range []string{"DisplayName", "Description", "RequiredLevel", "MaxLength", "Format", "Precision", "MinValue", "MaxValue", "IsAuditEnabled"} {
		if v, ok := body[k]; ok {
			a.body[k] = v
		}
	}
	if s.ext.attrs[d.logical] == nil {
		s.ext.attrs[d.logical] = map[string]*attribute{}
	}
	s.ext.attrs[d.logical][logical] = a
	if solution != "" {
		s.ext.components = append(s.ext.components, Component{Solution: solution, Kind: "attribute", ID: a.metadataID})
	}
	w.Header().Set("OData-EntityId", "http://"+r.Host+dataverse.APIPath+"/EntityDefinitions(LogicalName='"+d.logical+"')/Attributes("+a.metadataID+")")
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(http.StatusNoContent)
}

func hasLabel(v any) bool {
	m, _ := v.(map[string]any)
	labels, _ := m["LocalizedLabels"].([]any)
	for _, l := range labels {
		lm, _ := l.(map[string]any)
		if s, _ := lm["Label"].(string); s != "" {
			return true
		}
	}
	return false
}
