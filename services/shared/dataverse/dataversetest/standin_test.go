package dataversetest_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
)

const (
	idA     = "aaaaaaaa-aaaa-aaaa-aaaa-aaaaaaaaaaaa"
	idB     = "bbbbbbbb-bbbb-bbbb-bbbb-bbbbbbbbbbbb"
	missing = "99999999-9999-9999-9999-999999999999"
)

func serve(t *testing.T, opts dataversetest.Options) (*dataversetest.Server, *httptest.Server) {
	t.Helper()
	s := dataversetest.New(opts)
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	return s, srv
}

func do(t *testing.T, method, u, body string, header map[string]string) *http.Response {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func contactURL(srv *httptest.Server, id string) string {
	return srv.URL + dataverse.APIPath + "/contacts(" + id + ")"
}

func TestPatchWithoutIfMatchUpserts(t *testing.T) {
	t.Parallel()
	s, srv := serve(t, dataversetest.Options{})
	resp := do(t, http.MethodPatch, contactURL(srv, strings.ToUpper(idA)), `{"nac_flag":4}`, map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("PATCH = %d, want 204", resp.StatusCode)
	}
	if got, want := resp.Header.Get("OData-EntityId"), dataverse.APIPath+"/contacts("+idA+")"; got != want {
		t.Errorf("OData-EntityId = %q, want %q", got, want)
	}
	row, ok := s.Row("contacts", idA)
	if !ok {
		t.Fatal("PATCH without If-Match did not create the row")
	}
	if row["nac_flag"] != float64(4) || row["contactid"] != idA {
		t.Errorf("row = %v", row)
	}
	if s.Patches() != 1 {
		t.Errorf("Patches = %d, want 1", s.Patches())
	}
}

// A PATCH of a row that does not exist is refused, counted and reported,
// directly and as a part of a batch.
func TestPatchIfMatchMissing(t *testing.T) {
	t.Parallel()
	var told []string
	s, srv := serve(t, dataversetest.Options{OnMissingRow: func(set, id string) { told = append(told, set+"("+id+")") }})
	resp := do(t, http.MethodPatch, contactURL(srv, missing), `{"nac_flag":1}`, map[string]string{"If-Match": "*"})
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("PATCH If-Match:* on a missing row = %d, want 404", resp.StatusCode)
	}
	if _, ok := s.Row("contacts", missing); ok {
		t.Error("row created")
	}
	s.Seed("contacts", idA, nil)
	body, ct := batchBody(t, []string{idA, missing})
	if got := statuses(t, do(t, http.MethodPost, srv.URL+dataverse.APIPath+"/$batch", body, map[string]string{"Content-Type": ct})); fmt.Sprint(got) != "[204 404]" {
		t.Fatalf("batch statuses %v, want [204 404]", got)
	}
	if got := s.MissingRowPatches(); got != 2 {
		t.Errorf("MissingRowPatches = %d, want 2", got)
	}
	if want := "[contacts(" + missing + ") contacts(" + missing + ")]"; fmt.Sprint(told) != want {
		t.Errorf("OnMissingRow told %v, want %s", told, want)
	}
}

func TestPatchIfNoneMatchExisting(t *testing.T) {
	t.Parallel()
	s, srv := serve(t, dataversetest.Options{})
	s.Seed("contacts", idA, map[string]any{"nac_flag": float64(1)})
	resp := do(t, http.MethodPatch, contactURL(srv, idA), `{"nac_flag":2}`, map[string]string{"If-None-Match": "*"})
	if resp.StatusCode != http.StatusPreconditionFailed {
		t.Errorf("PATCH If-None-Match:* on an existing row = %d, want 412", resp.StatusCode)
	}
	if row, _ := s.Row("contacts", idA); row["nac_flag"] != float64(1) {
		t.Errorf("nac_flag = %v, want unchanged 1", row["nac_flag"])
	}
	// On a missing row it creates.
	resp = do(t, http.MethodPatch, contactURL(srv, idB), `{"nac_flag":2}`, map[string]string{"If-None-Match": "*"})
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("PATCH If-None-Match:* on a missing row = %d, want 204", resp.StatusCode)
	}
}

func TestPatchBadBody(t *testing.T) {
	t.Parallel()
	_, srv := serve(t, dataversetest.Options{})
	resp := do(t, http.MethodPatch, contactURL(srv, idA), `{not json`, nil)
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("PATCH with a bad body = %d, want 400", resp.StatusCode)
	}
}

type odataError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func TestGetUnknown(t *testing.T) {
	t.Parallel()
	_, srv := serve(t, dataversetest.Options{})
	resp := do(t, http.MethodGet, contactURL(srv, missing), "", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET unknown = %d, want 404", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	var e odataError
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("decode error body: %v", err)
	}
	if e.Error.Code != "0x80040217" || !strings.Contains(e.Error.Message, missing) {
		t.Errorf("error = %+v", e.Error)
	}
}

func TestGetBadSegment(t *testing.T) {
	t.Parallel()
	_, srv := serve(t, dataversetest.Options{})
	resp := do(t, http.MethodGet, srv.URL+dataverse.APIPath+"/contacts(not-a-guid)", "", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET bad key = %d, want 404", resp.StatusCode)
	}
	resp = do(t, http.MethodPut, contactURL(srv, idA), "{}", nil)
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT = %d, want 405", resp.StatusCode)
	}
	resp = do(t, http.MethodDelete, contactURL(srv, idA), "", nil)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("DELETE of a missing row = %d, want 404", resp.StatusCode)
	}
}

func TestGetETagAndSelect(t *testing.T) {
	t.Parallel()
	s, srv := serve(t, dataversetest.Options{})
	s.Seed("contacts", idA, map[string]any{"fullname": "Ada", "nac_flag": float64(1)})
	get := func() map[string]any {
		resp := do(t, http.MethodGet, contactURL(srv, idA)+"?$select=nac_flag", "", nil)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET = %d", resp.StatusCode)
		}
		var row map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&row); err != nil {
			t.Fatal(err)
		}
		return row
	}
	first := get()
	if first["nac_flag"] != float64(1) || first["contactid"] != idA {
		t.Errorf("row = %v", first)
	}
	if _, ok := first["fullname"]; ok {
		t.Error("unselected column returned")
	}
	do(t, http.MethodPatch, contactURL(srv, idA), `{"nac_flag":2}`, nil)
	second := get()
	if first["@odata.etag"] == second["@odata.etag"] || second["@odata.etag"] == nil {
		t.Errorf("etag %v did not change after a write (%v)", first["@odata.etag"], second["@odata.etag"])
	}
}

// batchBody builds a $batch request body of PATCH parts.
func batchBody(t *testing.T, ids []string) (string, string) {
	t.Helper()
	var b strings.Builder
	mw := multipart.NewWriter(&b)
	for i, id := range ids {
		ph := map[string][]string{"Content-Type": {"application/http"}, "Content-Transfer-Encoding": {"binary"}, "Content-Id": {fmt.Sprint(i + 1)}}
		pw, err := mw.CreatePart(ph)
		if err != nil {
			t.Fatal(err)
		}
		body := `{"nac_flag":7}`
		fmt.Fprintf(pw, "PATCH %s/contacts(%s) HTTP/1.1\r\nContent-Type: application/json\r\nIf-Match: *\r\nContent-Length: %d\r\n\r\n%s", dataverse.APIPath, id, len(body), body)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String(), "multipart/mixed; boundary=" + mw.Boundary()
}

// statuses reads the status of every part of a $batch response.
func statuses(t *testing.T, resp *http.Response) []int {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("$batch = %d, want 200", resp.StatusCode)
	}
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	mr := multipart.NewReader(resp.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		r, err := http.ReadResponse(bufio.NewReader(p), nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r.StatusCode)
	}
}

func TestBatchStopsAtFirstFailure(t *testing.T) {
	t.Parallel()
	s, srv := serve(t, dataversetest.Options{})
	s.Seed("contacts", idA, nil)
	s.Seed("contacts", idB, nil)
	body, ct := batchBody(t, []string{idA, missing, idB})
	resp := do(t, http.MethodPost, srv.URL+dataverse.APIPath+"/$batch", body, map[string]string{"Content-Type": ct})
	got := statuses(t, resp)
	if fmt.Sprint(got) != fmt.Sprint([]int{204, 404}) {
		t.Errorf("part statuses = %v, want [204 404] (stop at the failure)", got)
	}
	if row, _ := s.Row("contacts", idA); row["nac_flag"] != float64(7) {
		t.Errorf("first part not applied: %v", row)
	}
	if row, _ := s.Row("contacts", idB); row["nac_flag"] != nil {
		t.Errorf("part after the failure applied: %v", row)
	}
	if s.Patches() != 1 {
		t.Errorf("Patches = %d, want 1", s.Patches())
	}
}

func TestBatchContinueOnError(t *testing.T) {
	t.Parallel()
	s, srv := serve(t, dataversetest.Options{})
	s.Seed("contacts", idA, nil)
	s.Seed("contacts", idB, nil)
	body, ct := batchBody(t, []string{idA, missing, idB})
	resp := do(t, http.MethodPost, srv.URL+dataverse.APIPath+"/$batch", body,
		map[string]string{"Content-Type": ct, "Prefer": "odata.continue-on-error"})
	got := statuses(t, resp)
	if fmt.Sprint(got) != fmt.Sprint([]int{204, 404, 204}) {
		t.Errorf("part statuses = %v, want [204 404 204]", got)
	}
	if row, _ := s.Row("contacts", idB); row["nac_flag"] != float64(7) {
		t.Errorf("part after the failure not applied: %v", row)
	}
}

func TestBatchBadContentType(t *testing.T) {
	t.Parallel()
	_, srv := serve(t, dataversetest.Options{})
	resp := do(t, http.MethodPost, srv.URL+dataverse.APIPath+"/$batch", "{}", map[string]string{"Content-Type": "application/json"})
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("$batch with JSON = %d, want 400", resp.StatusCode)
	}
}

func token(t *testing.T, srv *httptest.Server, id, secret string) (string, int) {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {id}, "client_secret": {secret}}
	resp, err := http.PostForm(srv.URL+dataversetest.TokenPath, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&tok)
	return tok.AccessToken, resp.StatusCode
}

func TestTokenEndpoint(t *testing.T) {
	t.Parallel()
	_, srv := serve(t, dataversetest.Options{ClientID: "id", ClientSecret: "secret"})
	if _, status := token(t, srv, "id", "wrong"); status != http.StatusUnauthorized {
		t.Errorf("wrong secret = %d, want 401", status)
	}
	if _, status := token(t, srv, "other", "secret"); status != http.StatusUnauthorized {
		t.Errorf("wrong client id = %d, want 401", status)
	}
	tok, status := token(t, srv, "id", "secret")
	if status != http.StatusOK || tok == "" {
		t.Fatalf("token = %q, %d", tok, status)
	}
	resp := do(t, http.MethodPatch, contactURL(srv, idA), `{"nac_flag":1}`, map[string]string{"Authorization": "Bearer " + tok})
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("PATCH with a token = %d, want 204", resp.StatusCode)
	}
	form := url.Values{"grant_type": {"password"}, "client_id": {"id"}, "client_secret": {"secret"}}
	r, err := http.PostForm(srv.URL+dataversetest.TokenPath, form)
	if err != nil {
		t.Fatal(err)
	}
	r.Body.Close()
	if r.StatusCode != http.StatusBadRequest {
		t.Errorf("password grant = %d, want 400", r.StatusCode)
	}
}

func TestAnonymousReads(t *testing.T) {
	t.Parallel()
	s, srv := serve(t, dataversetest.Options{ClientID: "id", ClientSecret: "secret", AnonymousReads: true})
	s.Seed("contacts", idA, map[string]any{"nac_flag": float64(1)})
	if resp := do(t, http.MethodGet, contactURL(srv, idA), "", nil); resp.StatusCode != http.StatusOK {
		t.Errorf("anonymous GET = %d, want 200", resp.StatusCode)
	}
	resp := do(t, http.MethodPatch, contactURL(srv, idA), `{"nac_flag":2}`, nil)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous PATCH = %d, want 401", resp.StatusCode)
	}
	if resp.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 without WWW-Authenticate")
	}
	body, ct := batchBody(t, []string{idA})
	if resp := do(t, http.MethodPost, srv.URL+dataverse.APIPath+"/$batch", body, map[string]string{"Content-Type": ct}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous $batch = %d, want 401", resp.StatusCode)
	}
	if row, _ := s.Row("contacts", idA); row["nac_flag"] != float64(1) {
		t.Errorf("nac_flag = %v, want unchanged 1", row["nac_flag"])
	}

	// Without AnonymousReads a GET needs a token too.
	_, strict := serve(t, dataversetest.Options{ClientID: "id", ClientSecret: "secret"})
	if resp := do(t, http.MethodGet, contactURL(strict, idA), "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous GET without AnonymousReads = %d, want 401", resp.StatusCode)
	}
}

func TestSnapshotRestore(t *testing.T) {
	t.Parallel()
	s := dataversetest.New(dataversetest.Options{})
	s.Seed("contacts", strings.ToUpper(idA), map[string]any{"fullname": "Ada", "nac_flag": float64(1)})
	s.Seed("accounts", idB, map[string]any{"name": "Acme"})
	snap := s.Snapshot()

	// A snapshot is a copy: later writes do not leak into it.
	s.Seed("contacts", idA, map[string]any{"nac_flag": float64(9)})
	if snap.Rows["contacts"][idA]["nac_flag"] != float64(1) {
		t.Errorf("snapshot changed by a later write: %v", snap.Rows["contacts"][idA])
	}

	// It survives JSON, the way the devstack persists it.
	b, err := json.Marshal(snap)
	if err != nil {
		t.Fatal(err)
	}
	var loaded dataversetest.Snapshot
	if err := json.Unmarshal(b, &loaded); err != nil {
		t.Fatal(err)
	}
	r := dataversetest.New(dataversetest.Options{})
	r.Restore(loaded)
	row, ok := r.Row("contacts", idA)
	if !ok || row["fullname"] != "Ada" || row["nac_flag"] != float64(1) || row["contactid"] != idA {
		t.Errorf("restored contact = %v, %v", row, ok)
	}
	acct, ok := r.Row("accounts", idB)
	if !ok || acct["name"] != "Acme" || acct["accountid"] != idB {
		t.Errorf("restored account = %v, %v", acct, ok)
	}
	if got := r.Snapshot(); fmt.Sprint(got) != fmt.Sprint(loaded) {
		t.Errorf("snapshot of the restored server = %v, want %v", got, loaded)
	}
}

func TestRowIsACopy(t *testing.T) {
	t.Parallel()
	s := dataversetest.New(dataversetest.Options{})
	s.Seed("contacts", idA, map[string]any{"nac_flag": float64(1)})
	row, _ := s.Row("contacts", idA)
	row["nac_flag"] = float64(5)
	if again, _ := s.Row("contacts", idA); again["nac_flag"] != float64(1) {
		t.Errorf("changing a returned row changed the server: %v", again)
	}
}
