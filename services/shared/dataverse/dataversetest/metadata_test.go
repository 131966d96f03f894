package dataversetest_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
)

func api(srv string, path string) string { return srv + dataverse.APIPath + "/" + path }

func errCode(t *testing.T, resp *http.Response) string {
	t.Helper()
	var e odataError
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return e.Error.Code
}

const picklist = `{"@odata.type":"Microsoft.Dynamics.CRM.PicklistAttributeMetadata","SchemaName":"nac_Flag",
 "DisplayName":{"LocalizedLabels":[{"Label":"Flag","LanguageCode":1033}]},"RequiredLevel":{"Value":"None"},
 "OptionSet":{"Options":[{"Value":0,"Label":{"LocalizedLabels":[{"Label":"No","LanguageCode":1033}]}},{"Value":1,"Label":{"LocalizedLabels":[{"Label":"Yes","LanguageCode":1033}]}}]}}`

func TestColumnsNeedTheSolutionsPrefix(t *testing.T) {
	t.Parallel()
	_, srv := serve(t, dataversetest.Options{})
	attrs := api(srv.URL, "EntityDefinitions(LogicalName='contact')/Attributes")
	// Without a solution the default publisher's prefix (new) applies.
	if resp := do(t, http.MethodPost, attrs, picklist, nil); resp.StatusCode != 400 || errCode(t, resp) != "0x80044150" {
		t.Fatalf("create without a solution = %d", resp.StatusCode)
	}
	if r := do(t, http.MethodPost, api(srv.URL, "publishers"), `{"uniquename":"nac","friendlyname":"nac","customizationprefix":"nac","customizationoptionvalueprefix":72150}`, nil); r.StatusCode != 204 {
		t.Fatalf("publisher: %d", r.StatusCode)
	}
	resp := do(t, http.MethodGet, api(srv.URL, "publishers?$filter=uniquename%20eq%20'nac'&$select=publisherid"), "", nil)
	var page struct{ Value []map[string]any }
	_ = json.NewDecoder(resp.Body).Decode(&page)
	if len(page.Value) != 1 {
		t.Fatalf("publishers: %v", page.Value)
	}
	body := `{"uniquename":"nacsol","friendlyname":"s","version":"1.0.0.0","publisherid@odata.bind":"/publishers(` + page.Value[0]["publisherid"].(string) + `)"}`
	if r := do(t, http.MethodPost, api(srv.URL, "solutions"), body, nil); r.StatusCode != 204 {
		t.Fatalf("solution: %d", r.StatusCode)
	}
	in := map[string]string{"MSCRM.SolutionUniqueName": "nacsol"}
	if r := do(t, http.MethodPost, attrs, picklist, in); r.StatusCode != 204 || !strings.Contains(r.Header.Get("OData-EntityId"), "Attributes(") {
		t.Fatalf("create in the solution = %d", r.StatusCode)
	}
	if r := do(t, http.MethodPost, attrs, picklist, in); r.StatusCode != 400 || errCode(t, r) != "0x80044363" {
		t.Fatalf("duplicate create = %d", r.StatusCode)
	}
	// The new column is filterable, absent values read as null, and its
	// options are enforced on writes.
	resp = do(t, http.MethodGet, attrs+"?$filter=LogicalName%20eq%20'nac_flag'&$select=LogicalName,AttributeType", "", nil)
	_ = json.NewDecoder(resp.Body).Decode(&page)
	if len(page.Value) != 1 || page.Value[0]["AttributeType"] != "Picklist" {
		t.Fatalf("attribute lookup: %v", page.Value)
	}
	if r := do(t, http.MethodGet, attrs+"(LogicalName='nac_other')", "", nil); r.StatusCode != 404 {
		t.Errorf("missing attribute = %d, want 404", r.StatusCode)
	}
	if r := do(t, http.MethodPatch, contactURL(srv, idA), `{"nac_flag":7}`, nil); r.StatusCode != 400 {
		t.Errorf("an unknown option was accepted: %d", r.StatusCode)
	}
	if r := do(t, http.MethodPost, api(srv.URL, "InsertOptionValue"), `{"EntityLogicalName":"contact","AttributeLogicalName":"nac_flag","Value":7,"Label":{"LocalizedLabels":[{"Label":"Seven"}]}}`, nil); r.StatusCode != 200 {
		t.Fatalf("InsertOptionValue = %d", r.StatusCode)
	}
	if r := do(t, http.MethodPatch, contactURL(srv, idA), `{"nac_flag":7}`, nil); r.StatusCode != 204 {
		t.Errorf("an inserted option was refused: %d", r.StatusCode)
	}
}

func TestPublishXMLFollowsTheSchema(t *testing.T) {
	t.Parallel()
	s, srv := serve(t, dataversetest.Options{})
	ok := `{"ParameterXml":"<importexportxml><entities><entity>contact</entity></entities></importexportxml>"}`
	if r := do(t, http.MethodPost, api(srv.URL, "PublishXml"), ok, nil); r.StatusCode != 204 {
		t.Fatalf("PublishXml = %d", r.StatusCode)
	}
	bad := `{"ParameterXml":"<importexportxml><savedqueries><savedquery>x</savedquery></savedqueries></importexportxml>"}`
	if r := do(t, http.MethodPost, api(srv.URL, "PublishXml"), bad, nil); r.StatusCode != 400 {
		t.Errorf("savedqueries in PublishXml = %d, want 400", r.StatusCode)
	}
	if p := s.Publishes(); len(p) != 1 || p[0].Entities[0] != "contact" {
		t.Errorf("publishes: %+v", p)
	}
}

func TestSavedQueriesAreValidated(t *testing.T) {
	t.Parallel()
	_, srv := serve(t, dataversetest.Options{})
	view := func(fetch, layout string) int {
		b, _ := json.Marshal(map[string]any{"name": "v", "returnedtypecode": "contact", "querytype": 0, "fetchxml": fetch, "layoutxml": layout})
		return do(t, http.MethodPost, api(srv.URL, "savedqueries"), string(b), nil).StatusCode
	}
	grid := `<grid name="resultset" object="2"><row name="result" id="contactid"><cell name="fullname"/></row></grid>`
	if st := view(`<fetch><entity name="contact"><attribute name="fullname"/></entity></fetch>`, grid); st != 204 {
		t.Errorf("a valid view = %d", st)
	}
	if st := view(`<fetch><entity name="contact"><attribute name="fullname"/><filter><condition attribute="nac_nothing" operator="eq" value="1"/></filter></entity></fetch>`, grid); st != 400 {
		t.Errorf("a view on a missing column = %d, want 400", st)
	}
	if st := view(`<fetch><entity name="contact"><attribute name="jobtitle"/></entity></fetch>`, grid); st != 400 {
		t.Errorf("a cell outside the fetch = %d, want 400", st)
	}
	if st := view(`<fetch><entity name="account"><attribute name="name"/></entity></fetch>`, grid); st != 400 {
		t.Errorf("a fetch of another table = %d, want 400", st)
	}
	if r := do(t, http.MethodGet, api(srv.URL, "contacts?savedQuery="+missing), "", nil); r.StatusCode != 404 {
		t.Errorf("unknown view = %d, want 404", r.StatusCode)
	}
}

func TestWhoAmIAndImpersonation(t *testing.T) {
	t.Parallel()
	s, srv := serve(t, dataversetest.Options{})
	s.Seed("systemusers", idA, map[string]any{"fullname": "Seller", "azureactivedirectoryobjectid": idB})
	who := func(h map[string]string) (int, string) {
		r := do(t, http.MethodGet, api(srv.URL, "WhoAmI"), "", h)
		var w struct{ UserId, OrganizationId string }
		_ = json.NewDecoder(r.Body).Decode(&w)
		return r.StatusCode, w.UserId
	}
	if st, u := who(nil); st != 200 || u != s.Identity().AppUserID {
		t.Errorf("WhoAmI = %d %s", st, u)
	}
	if _, u := who(map[string]string{"MSCRMCallerID": idA}); u != idA {
		t.Errorf("MSCRMCallerID: %s", u)
	}
	if _, u := who(map[string]string{"CallerObjectId": idB}); u != idA {
		t.Errorf("CallerObjectId: %s", u)
	}
	if st, _ := who(map[string]string{"MSCRMCallerID": missing}); st != 400 {
		t.Errorf("unknown caller = %d", st)
	}
}

func TestBindsAndPaging(t *testing.T) {
	t.Parallel()
	s, srv := serve(t, dataversetest.Options{})
	s.Seed("accounts", idB, map[string]any{"name": "Contoso"})
	if r := do(t, http.MethodPatch, contactURL(srv, idA), `{"parentcustomerid_account@odata.bind":"/accounts(`+idB+`)"}`, nil); r.StatusCode != 204 {
		t.Fatalf("bind = %d", r.StatusCode)
	}
	row, _ := s.Row("contacts", idA)
	if row["_parentcustomerid_value"] != idB || row["_parentcustomerid_value@Microsoft.Dynamics.CRM.lookuplogicalname"] != "account" {
		t.Errorf("stored lookup: %v", row)
	}
	if r := do(t, http.MethodPatch, contactURL(srv, idA), `{"ParentCustomerId_account@odata.bind":"/accounts(`+idB+`)"}`, nil); r.StatusCode != 400 {
		t.Errorf("PascalCase bind = %d, want 400", r.StatusCode)
	}
	if r := do(t, http.MethodPatch, contactURL(srv, idA), `{"parentcustomerid_account@odata.bind":"/accounts(`+missing+`)"}`, nil); r.StatusCode != 400 {
		t.Errorf("bind to a missing row = %d, want 400", r.StatusCode)
	}
	for _, id := range []string{"10000000-0000-4000-8000-000000000001", "10000000-0000-4000-8000-000000000002", "10000000-0000-4000-8000-000000000003"} {
		s.Seed("accounts", id, map[string]any{"name": "A"})
	}
	req, _ := http.NewRequest(http.MethodGet, api(srv.URL, "accounts?$select=name"), nil)
	req.Header.Set("Prefer", "odata.maxpagesize=2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var page struct {
		Value []map[string]any
		Next  string `json:"@odata.nextLink"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&page)
	if len(page.Value) != 2 || page.Next == "" {
		t.Fatalf("first page: %d rows, next %q", len(page.Value), page.Next)
	}
	resp = do(t, http.MethodGet, page.Next, "", map[string]string{"Prefer": "odata.maxpagesize=2"})
	page.Value, page.Next = nil, ""
	_ = json.NewDecoder(resp.Body).Decode(&page)
	if len(page.Value) != 2 || page.Next != "" {
		t.Fatalf("second page: %d rows, next %q", len(page.Value), page.Next)
	}
}

func TestUnknownSetAndRefusedEndpoint(t *testing.T) {
	t.Parallel()
	s, srv := serve(t, dataversetest.Options{})
	if r := do(t, http.MethodGet, api(srv.URL, "contactz"), "", nil); r.StatusCode != 404 || errCode(t, r) != "0x8006088a" {
		t.Errorf("unknown entity set = %d", r.StatusCode)
	}
	if r := do(t, http.MethodGet, api(srv.URL, "contacts"), "", nil); r.StatusCode != 200 {
		t.Errorf("an empty known set = %d", r.StatusCode)
	}
	// A refused endpoint leaves no key behind.
	bad := `{"serviceendpointid":"` + idA + `","name":"x","url":"not a url","contract":8,"authtype":4,"authvalue":"k"}`
	if r := do(t, http.MethodPost, api(srv.URL, "serviceendpoints"), bad, nil); r.StatusCode != 400 {
		t.Fatalf("bad endpoint = %d", r.StatusCode)
	}
	if s.AuthValue(idA) != "" {
		t.Error("a refused endpoint kept its authvalue")
	}
}
