package dataversetest

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// extension is the state of what the stand-in learned beyond rows:
// identity, metadata, publishing, write-only secrets and the webhook
// emitter. It is guarded by Server.mu, except for the emitter, which has
// its own lock (never taken while waiting for Server.mu).
type extension struct {
	seeded   bool
	identity Identity
	// attrs are the custom columns created through the API, per table.
	attrs map[string]map[string]*attribute
	// authValues are the service endpoints' write-only authvalue.
	authValues map[string]string
	publishes  []Publish
	components []Component
	emitter    emitter
}

// Identity is who the stand-in's organization and callers are.
type Identity struct {
	OrganizationID   string
	OrganizationName string
	BusinessUnitID   string
	// AppUserID is the systemuser the OAuth2 client acts as.
	AppUserID string
}

// nsStandin derives the stand-in's fixed ids, so that a restored snapshot
// and the seeded rows agree.
var nsStandin = uuid.MustParse("5d1f4c8e-2b7a-4e0c-9a3d-6f8b1e2c4a7d")

func fixedID(name string) string { return uuid.NewSHA1(nsStandin, []byte(name)).String() }

// defaultIdentity is the identity of a stand-in no one configured.
func defaultIdentity() Identity {
	return Identity{
		OrganizationID: fixedID("organization"), OrganizationName: "standin",
		BusinessUnitID: fixedID("businessunit"), AppUserID: fixedID("application user"),
	}
}

// SetIdentity sets the organization and the application user the
// stand-in is; call it before serving. The application user is seeded as a
// systemuser row.
func (s *Server) SetIdentity(id Identity) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := defaultIdentity()
	if id.OrganizationID == "" {
		id.OrganizationID = d.OrganizationID
	}
	if id.OrganizationName == "" {
		id.OrganizationName = d.OrganizationName
	}
	if id.BusinessUnitID == "" {
		id.BusinessUnitID = d.BusinessUnitID
	}
	if id.AppUserID == "" {
		id.AppUserID = d.AppUserID
	}
	s.ext.identity = Identity{OrganizationID: strings.ToLower(id.OrganizationID), OrganizationName: id.OrganizationName,
		BusinessUnitID: strings.ToLower(id.BusinessUnitID), AppUserID: strings.ToLower(id.AppUserID)}
	s.ext.seeded = false
	s.seedLocked()
}

// Identity returns the stand-in's identity.
func (s *Server) Identity() Identity {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seedLocked()
	return s.ext.identity
}

// seedLocked fills what every Dataverse organization has: the identity,
// the application user and the SDK messages. s.mu is held.
func (s *Server) seedLocked() {
	if s.ext.seeded {
		return
	}
	s.ext.seeded = true
	if s.ext.identity.OrganizationID == "" {
		s.ext.identity = defaultIdentity()
	}
	if s.ext.attrs == nil {
		s.ext.attrs = map[string]map[string]*attribute{}
		s.ext.authValues = map[string]string{}
	}
	if _, ok := s.rows["systemusers"][s.ext.identity.AppUserID]; !ok {
		s.upsert("systemusers", s.ext.identity.AppUserID, map[string]any{
			"fullname": "# notatcompany", "isdisabled": false, "applicationid": s.opts.ClientID,
			"_businessunitid_value": s.ext.identity.BusinessUnitID,
		})
	}
	seedMessages(s)
}

// Publish is one PublishXml or PublishAllXml call.
type Publish struct {
	At       time.Time
	All      bool
	Entities []string
}

// Publishes returns every publish call answered so far, in order.
func (s *Server) Publishes() []Publish {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ext.publishes)
}

// Component is something created in a solution through the
// MSCRM.SolutionUniqueName header.
type Component struct {
	Solution string
	Kind     string // "attribute" or the entity set, e.g. "savedqueries"
	ID       string
}

// Components returns what went into which solution, in order.
func (s *Server) Components() []Component {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ext.components)
}

// AuthValue returns the authvalue a service endpoint was given, which the
// Web API never returns.
func (s *Server) AuthValue(endpointID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ext.authValues[strings.ToLower(endpointID)]
}

var (
	setRE     = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	rowKeyRE  = regexp.MustCompile(`^([a-z][a-z0-9_]*)\(([0-9a-fA-F-]{36})\)$`)
	entDefRE  = regexp.MustCompile(`^EntityDefinitions(?:\((?:LogicalName='([a-z][a-z0-9_]*)'|([0-9a-fA-F-]{36}))\))?(?:/Attributes(?:\((?:LogicalName='([a-z][a-z0-9_]*)'|([0-9a-fA-F-]{36}))\))?(/Microsoft\.Dynamics\.CRM\.([A-Za-z]+AttributeMetadata))?)?$`)
	actionSet = map[string]bool{"PublishXml": true, "PublishAllXml": true, "InsertOptionValue": true}
)

// customizationSets are the customization tables, written only through
// their own validation and never raising webhooks.
var customizationSets = map[string]bool{
	"publishers": true, "solutions": true, "savedqueries": true, "serviceendpoints": true,
	"sdkmessageprocessingsteps": true, "sdkmessageprocessingstepimages": true,
	"sdkmessages": true, "sdkmessagefilters": true, "asyncoperations": true,
}

// serveExtension answers the requests beyond GET and PATCH of a data row:
// collections, creates, deletes, customization rows, metadata, actions
// and functions. It reports false for what serveOne answers itself.
func (s *Server) serveExtension(w http.ResponseWriter, r *http.Request, rest string) bool {
	s.mu.Lock()
	s.seedLocked()
	s.mu.Unlock()
	switch {
	case rest == "WhoAmI" || rest == "WhoAmI()":
		if r.Method != http.MethodGet {
			return methodNotAllowed(w)
		}
		s.whoAmI(w, r)
	case strings.HasPrefix(rest, "RetrieveTotalRecordCount("):
		if r.Method != http.MethodGet {
			return methodNotAllowed(w)
		}
		s.totalRecordCount(w, rest)
	case actionSet[rest]:
		if r.Method != http.MethodPost {
			return methodNotAllowed(w)
		}
		s.action(w, r, rest)
	case strings.HasPrefix(rest, "EntityDefinitions"):
		m := entDefRE.FindStringSubmatch(rest)
		if m == nil {
			notFound(w, rest)
			return true
		}
		s.metadata(w, r, metadataPath{entity: m[1], entityID: m[2], attrs: strings.Contains(rest, "/Attributes"),
			attr: m[3], attrID: m[4], cast: m[6]})
	case setRE.MatchString(rest):
		switch r.Method {
		case http.MethodGet:
			s.list(w, r, rest)
		case http.MethodPost:
			s.create(w, r, rest)
		default:
			return methodNotAllowed(w)
		}
	default:
		m := rowKeyRE.FindStringSubmatch(rest)
		if m == nil {
			return false
		}
		set, id := m[1], strings.ToLower(m[2])
		switch {
		case r.Method == http.MethodDelete:
			s.delete(w, r, set, id)
		case r.Method == http.MethodPatch && customizationSets[set]:
			s.patchCustomization(w, r, set, id)
		default:
			return false
		}
	}
	return true
}

func methodNotAllowed(w http.ResponseWriter) bool {
	odataError(w, http.StatusMethodNotAllowed, "0x80060888", "The HTTP method is not supported here.")
	return true
}

func notFound(w http.ResponseWriter, rest string) {
	odataError(w, http.StatusNotFound, "0x8006088a", fmt.Sprintf("Resource not found for the segment '%s'.", rest))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	w.Header().Set("OData-Version", "4.0")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decodeBody reads a JSON object body; false means answered 400.
func decodeBody(w http.ResponseWriter, r *http.Request) (map[string]any, bool) {
	var body map[string]any
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<20))
	if err := dec.Decode(&body); err != nil || body == nil {
		msg := "a JSON object is required"
		if err != nil {
			msg = err.Error()
		}
		odataError(w, http.StatusBadRequest, "0x80048d19", "Error identified in Payload provided by the user: "+msg)
		return nil, false
	}
	return body, true
}

// caller is the systemuser a request acts as: the application user, or
// the user it impersonates with MSCRMCallerID (a systemuserid) or
// CallerObjectId (an Entra object id). "" with an error answered.
func (s *Server) caller(w http.ResponseWriter, r *http.Request) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id := strings.ToLower(r.Header.Get("MSCRMCallerID")); id != "" {
		if _, ok := s.rows["systemusers"][id]; !ok {
			odataError(w, http.StatusBadRequest, "0x80040217", fmt.Sprintf("systemuser With Id = %s Does Not Exist", id))
			return "", false
		}
		return id, true
	}
	if oid := strings.ToLower(r.Header.Get("CallerObjectId")); oid != "" {
		for id, row := range s.rows["systemusers"] {
			if v, _ := row["azureactivedirectoryobjectid"].(string); strings.EqualFold(v, oid) {
				return id, true
			}
		}
		odataError(w, http.StatusBadRequest, "0x80040217", fmt.Sprintf("systemuser With azureactivedirectoryobjectid = %s Does Not Exist", oid))
		return "", false
	}
	return s.ext.identity.AppUserID, true
}

func (s *Server) whoAmI(w http.ResponseWriter, r *http.Request) {
	user, ok := s.caller(w, r)
	if !ok {
		return
	}
	id := s.Identity()
	writeJSON(w, http.StatusOK, map[string]any{
		"@odata.context": "/api/data/v9.2/$metadata#Microsoft.Dynamics.CRM.WhoAmIResponse",
		"BusinessUnitId": id.BusinessUnitID, "UserId": user, "OrganizationId": id.OrganizationID,
	})
}

// rowOut renders a stored row as the Web API returns it, with the selected
// columns only when select is not empty.
func rowOut(set, id string, row map[string]any, version int64, sel []string) map[string]any {
	out := map[string]any{"@odata.etag": fmt.Sprintf(`W/"%d"`, version)}
	if len(sel) == 0 {
		maps.Copy(out, row)
	} else {
		for _, col := range sel {
			out[col] = row[col]
			if ann, ok := row[col+lookupAnnotation]; ok {
				out[col+lookupAnnotation] = ann
			}
			if col == "versionnumber" {
				out[col] = float64(version)
			}
		}
	}
	out[idColumn(set)] = id
	return out
}

// tableOf is the logical name of an entity set: contacts → contact.
func tableOf(set string) string { return strings.TrimSuffix(idColumn(set), "id") }

// setOf is the entity set of a table: opportunity → opportunities.
func setOf(table string) string {
	if strings.HasSuffix(table, "y") && !strings.HasSuffix(table, "ey") {
		return strings.TrimSuffix(table, "y") + "ies"
	}
	return table + "s"
}
