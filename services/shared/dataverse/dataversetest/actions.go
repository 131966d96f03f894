package dataversetest

import (
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
)

// action answers the unbound actions: PublishXml, PublishAllXml,
// InsertOptionValue.
func (s *Server) action(w http.ResponseWriter, r *http.Request, name string) {
	body, ok := decodeBody(w, r)
	if !ok {
		return
	}
	switch name {
	case "PublishAllXml":
		s.mu.Lock()
		s.ext.publishes = append(s.ext.publishes, Publish{At: time.Now(), All: true})
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case "PublishXml":
		param, _ := body["ParameterXml"].(string)
		entities, err := parsePublishXML(param)
		if err != nil {
			odataError(w, http.StatusBadRequest, "0x80048d19", "ParameterXml: "+err.Error())
			return
		}
		s.mu.Lock()
		s.ext.publishes = append(s.ext.publishes, Publish{At: time.Now(), Entities: entities})
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	case "InsertOptionValue":
		s.insertOptionValue(w, body)
	}
}

// parsePublishXML checks a PublishXml parameter against the publish
// request schema and returns the entities it names.
func parsePublishXML(doc string) ([]string, error) {
	var x struct {
		XMLName xml.Name
		Nodes   []struct {
			XMLName xml.Name
			Nodes   []struct {
				XMLName xml.Name
				Text    string `xml:",chardata"`
			} `xml:",any"`
		} `xml:",any"`
	}
	if err := xml.Unmarshal([]byte(doc), &x); err != nil {
		return nil, fmt.Errorf("not XML: %v", err)
	}
	if x.XMLName.Local != "importexportxml" {
		return nil, fmt.Errorf("the root element must be importexportxml")
	}
	allowed := map[string]string{"entities": "entity", "ribbons": "ribbon", "dashboards": "dashboard",
		"optionsets": "optionset", "sitemaps": "sitemap", "webresources": "webresource"}
	var entities []string
	for _, n := range x.Nodes {
		child, ok := allowed[n.XMLName.Local]
		if !ok {
			return nil, fmt.Errorf("element %s is not in the publish request schema", n.XMLName.Local)
		}
		for _, c := range n.Nodes {
			if c.XMLName.Local != child {
				return nil, fmt.Errorf("element %s/%s is not in the publish request schema", n.XMLName.Local, c.XMLName.Local)
			}
			if n.XMLName.Local == "entities" {
				entities = append(entities, strings.TrimSpace(c.Text))
			}
		}
	}
	return entities, nil
}

func (s *Server) insertOptionValue(w http.ResponseWriter, body map[string]any) {
	entity, _ := body["EntityLogicalName"].(string)
	attr, _ := body["AttributeLogicalName"].(string)
	v, isNum := body["Value"].(float64)
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.ext.attrs[entity][attr]
	switch {
	case a == nil || a.typ != "Picklist":
		odataError(w, http.StatusBadRequest, "0x80041102", fmt.Sprintf("Could not find choice column '%s' of entity '%s'.", attr, entity))
		return
	case !isNum || !hasLabel(body["Label"]):
		odataError(w, http.StatusBadRequest, "0x80044150", "InsertOptionValue needs an integer Value and a Label.")
		return
	case slices.ContainsFunc(a.options, func(o option) bool { return o.Value == int(v) }):
		odataError(w, http.StatusBadRequest, "0x80044150", fmt.Sprintf("The value %d is already in the option set.", int(v)))
		return
	}
	a.options = append(a.options, option{Value: int(v), Label: body["Label"]})
	slices.SortFunc(a.options, func(x, y option) int { return x.Value - y.Value })
	b, _ := json.Marshal(map[string]any{"NewOptionValue": int(v)})
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
	_, _ = w.Write(b)
}

// DefineColumn adds a column to table as if a managed solution had
// created it (LinkedIn's msdyn_orgchangestatus, say): typ is an
// AttributeType ("Picklist", "String", ...), options the values of a choice.
func (s *Server) DefineColumn(table, logical, typ string, options ...int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seedLocked()
	a := &attribute{entity: table, logical: logical, schema: logical, typ: typ, metadataID: newID(), body: map[string]any{"IsManaged": true}}
	for _, v := range options {
		a.options = append(a.options, option{Value: v, Label: map[string]any{"LocalizedLabels": []any{map[string]any{"Label": fmt.Sprint(v), "LanguageCode": 1033}}}})
	}
	if s.ext.attrs[table] == nil {
		s.ext.attrs[table] = map[string]*attribute{}
	}
	s.ext.attrs[table][logical] = a
}

func newID() string { return uuid.NewString() }
