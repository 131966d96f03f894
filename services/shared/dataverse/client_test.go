package dataverse_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
)

const (
	contactA = "11111111-1111-1111-1111-111111111111"
	contactB = "22222222-2222-2222-2222-222222222222"
	missing  = "99999999-9999-9999-9999-999999999999"
)

// seen is one request the stand-in received.
type seen struct {
	method, path, query string
	header              http.Header
}

// env is a stand-in behind an httptest server that records every request.
type env struct {
	standin *dataversetest.Server
	srv     *httptest.Server

	mu       sync.Mutex
	requests []seen
	tokens   int
}

func newEnv(t *testing.T, opts dataversetest.Options) *env {
	t.Helper()
	e := &env{standin: dataversetest.New(opts)}
	h := e.standin.Handler()
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e.mu.Lock()
		if r.URL.Path == dataversetest.TokenPath {
			e.tokens++
		} else {
			e.requests = append(e.requests, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone()})
		}
		e.mu.Unlock()
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	e.standin.Seed("contacts", contactA, map[string]any{"fullname": "Ada", "nac_flag": float64(0)})
	e.standin.Seed("contacts", contactB, map[string]any{"fullname": "Bob"})
	return e
}

func (e *env) client(t *testing.T, secret string) *dataverse.Client {
	t.Helper()
	c, err := dataverse.New(context.Background(), e.srv.URL, dataverse.Credentials{
		TokenURL:     e.srv.URL + dataversetest.TokenPath,
		ClientID:     "id",
		ClientSecret: secret,
	}, dataverse.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func (e *env) tokenCalls() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.tokens
}

func (e *env) lastRequest(t *testing.T) seen {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.requests) == 0 {
		t.Fatal("no API request reached the stand-in")
	}
	return e.requests[len(e.requests)-1]
}

var defaultOpts = dataversetest.Options{ClientID: "id", ClientSecret: "secret"}

func TestNewRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "ftp://x.crm.dynamics.com", "https://", "://bad"} {
		if _, err := dataverse.New(context.Background(), u, dataverse.Credentials{}, dataverse.Options{Timeout: time.Second}); err == nil {
			t.Errorf("New(%q) succeeded", u)
		}
	}
}

func TestPatchFlag(t *testing.T) {
	e := newEnv(t, defaultOpts)
	c := e.client(t, "secret")
	err := c.PatchFlag(context.Background(), dataverse.FlagWrite{ContactID: contactA, Column: "nac_flag", Value: 2, Tag: "nac w/1"})
	if err != nil {
		t.Fatalf("PatchFlag: %v", err)
	}
	row, ok := e.standin.Row("contacts", contactA)
	if !ok {
		t.Fatal("row gone")
	}
	if row["nac_flag"] != float64(2) {
		t.Errorf("nac_flag = %v, want 2", row["nac_flag"])
	}
	if row["fullname"] != "Ada" {
		t.Errorf("fullname = %v, want the other columns kept", row["fullname"])
	}
	req := e.lastRequest(t)
	if req.method != http.MethodPatch || req.path != dataverse.APIPath+"/contacts("+contactA+")" {
		t.Errorf("request = %s %s", req.method, req.path)
	}
	if req.query != "tag=nac+w%2F1" {
		t.Errorf("query = %q, want the escaped tag", req.query)
	}
	for k, want := range map[string]string{
		"If-Match": "*",
		"MSCRM.SuppressCallbackRegistrationExpanderJob": "true",
		"OData-Version":    "4.0",
		"OData-MaxVersion": "4.0",
	} {
		if got := req.header.Get(k); got != want {
			t.Errorf("header %s = %q, want %q", k, got, want)
		}
	}
	if !strings.HasPrefix(req.header.Get("Content-Type"), "application/json") {
		t.Errorf("Content-Type = %q", req.header.Get("Content-Type"))
	}
	if !strings.HasPrefix(req.header.Get("Authorization"), "Bearer ") {
		t.Errorf("Authorization = %q, want a bearer token", req.header.Get("Authorization"))
	}
}

func TestPatchFlagWithoutTag(t *testing.T) {
	e := newEnv(t, defaultOpts)
	c := e.client(t, "secret")
	if err := c.PatchFlag(context.Background(), dataverse.FlagWrite{ContactID: contactB, Column: "nac_flag", Value: 1}); err != nil {
		t.Fatalf("PatchFlag: %v", err)
	}
	if q := e.lastRequest(t).query; q != "" {
		t.Errorf("query = %q, want none", q)
	}
}

func TestPatchFlagUnknownContact(t *testing.T) {
	e := newEnv(t, defaultOpts)
	c := e.client(t, "secret")
	err := c.PatchFlag(context.Background(), dataverse.FlagWrite{ContactID: missing, Column: "nac_flag", Value: 1})
	var se *dataverse.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("PatchFlag = %v, want a *StatusError", err)
	}
	if se.Status != http.StatusNotFound || se.Code != "0x80040217" || se.Message == "" {
		t.Errorf("StatusError = %+v, want 404 0x80040217 with a message", se)
	}
	if se.Transient() {
		t.Error("a 404 is reported transient")
	}
	if _, ok := e.standin.Row("contacts", missing); ok {
		t.Error("PatchFlag created the missing row")
	}
	if n := e.standin.Patches(); n != 0 {
		t.Errorf("%d patches applied, want 0", n)
	}
}

func TestWrongSecret(t *testing.T) {
	e := newEnv(t, defaultOpts)
	c := e.client(t, "wrong")
	err := c.PatchFlag(context.Background(), dataverse.FlagWrite{ContactID: contactA, Column: "nac_flag", Value: 5})
	if err == nil {
		t.Fatal("PatchFlag with a wrong secret succeeded")
	}
	if row, _ := e.standin.Row("contacts", contactA); row["nac_flag"] != float64(0) {
		t.Errorf("nac_flag = %v, want unchanged 0", row["nac_flag"])
	}
	if _, err := c.GetRow(context.Background(), "contacts", contactA); err == nil {
		t.Error("GetRow with a wrong secret succeeded")
	}
}

func TestRequestWithoutToken(t *testing.T) {
	e := newEnv(t, defaultOpts)
	for _, method := range []string{http.MethodGet, http.MethodPatch} {
		req, _ := http.NewRequest(method, e.srv.URL+dataverse.APIPath+"/contacts("+contactA+")", strings.NewReader(`{"nac_flag":9}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s without token = %d, want 401", method, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+dataverse.APIPath+"/contacts("+contactA+")", nil)
	req.Header.Set("Authorization", "Bearer made-up")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET with an unknown token = %d, want 401", resp.StatusCode)
	}
	if row, _ := e.standin.Row("contacts", contactA); row["nac_flag"] != float64(0) {
		t.Errorf("nac_flag = %v, want unchanged 0", row["nac_flag"])
	}
}

func TestGetRow(t *testing.T) {
	e := newEnv(t, defaultOpts)
	c := e.client(t, "secret")
	row, err := c.GetRow(context.Background(), "contacts", contactA, "nac_flag", "emailaddress1")
	if err != nil {
		t.Fatalf("GetRow: %v", err)
	}
	if row["nac_flag"] != float64(0) {
		t.Errorf("nac_flag = %v, want 0", row["nac_flag"])
	}
	if v, ok := row["emailaddress1"]; !ok || v != nil {
		t.Errorf("emailaddress1 = %v, %v; want present and null", v, ok)
	}
	if _, ok := row["fullname"]; ok {
		t.Error("fullname returned though not selected")
	}
	if row["contactid"] != contactA {
		t.Errorf("contactid = %v", row["contactid"])
	}
	if q := e.lastRequest(t).query; q != "$select=nac_flag%2Cemailaddress1" {
		t.Errorf("query = %q", q)
	}
	if h := e.lastRequest(t).header.Get("Accept"); h != "application/json" {
		t.Errorf("Accept = %q", h)
	}

	all, err := c.GetRow(context.Background(), "contacts", contactA)
	if err != nil {
		t.Fatalf("GetRow without columns: %v", err)
	}
	if all["fullname"] != "Ada" {
		t.Errorf("fullname = %v, want every column without $select", all["fullname"])
	}
	if q := e.lastRequest(t).query; q != "" {
		t.Errorf("query = %q, want none", q)
	}

	_, err = c.GetRow(context.Background(), "contacts", missing)
	var se *dataverse.StatusError
	if !errors.As(err, &se) || se.Status != http.StatusNotFound {
		t.Errorf("GetRow of a missing row = %v, want 404", err)
	}
}

func TestBatch(t *testing.T) {
	e := newEnv(t, defaultOpts)
	c := e.client(t, "secret")
	results, err := c.Batch(context.Background(), []dataverse.FlagWrite{
		{ContactID: contactA, Column: "nac_flag", Value: 1, Tag: "t1"},
		{ContactID: contactB, Column: "nac_flag", Value: 2, Tag: "t2"},
		{ContactID: missing, Column: "nac_flag", Value: 3, Tag: "t3"},
	})
	if err != nil {
		t.Fatalf("Batch: %v", err)
	}
	if len(results) != 3 {
		t.Fatalf("%d results, want 3", len(results))
	}
	if results[0] != nil || results[1] != nil {
		t.Errorf("results[0:2] = %v, %v; want nil, nil", results[0], results[1])
	}
	var se *dataverse.StatusError
	if !errors.As(results[2], &se) || se.Status != http.StatusNotFound {
		t.Errorf("results[2] = %v, want a 404 *StatusError", results[2])
	}
	for id, want := range map[string]float64{contactA: 1, contactB: 2} {
		if row, _ := e.standin.Row("contacts", id); row["nac_flag"] != want {
			t.Errorf("%s nac_flag = %v, want %v", id, row["nac_flag"], want)
		}
	}
	if _, ok := e.standin.Row("contacts", missing); ok {
		t.Error("the batch created the missing row")
	}
	req := e.lastRequest(t)
	if req.method != http.MethodPost || req.path != dataverse.APIPath+"/$batch" {
		t.Errorf("request = %s %s", req.method, req.path)
	}
	if req.header.Get("Prefer") != "odata.continue-on-error" {
		t.Errorf("Prefer = %q", req.header.Get("Prefer"))
	}
	if !strings.HasPrefix(req.header.Get("Content-Type"), "multipart/mixed; boundary=batch_") {
		t.Errorf("Content-Type = %q", req.header.Get("Content-Type"))
	}
}

func TestBatchSize(t *testing.T) {
	e := newEnv(t, defaultOpts)
	c := e.client(t, "secret")
	if _, err := c.Batch(context.Background(), nil); err == nil {
		t.Error("empty batch accepted")
	}
	if _, err := c.Batch(context.Background(), make([]dataverse.FlagWrite, dataverse.MaxBatch+1)); err == nil {
		t.Error("oversized batch accepted")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.requests) != 0 {
		t.Errorf("%d requests sent for refused batches", len(e.requests))
	}
}

// msBatchResponse is a $batch response in the shape Microsoft documents
// (https://learn.microsoft.com/power-apps/developer/data-platform/webapi/execute-batch-operations-using-web-api).
const msBatchResponse = "--batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f\r\n" +
	"Content-Type: application/http\r\n" +
	"Content-Transfer-Encoding: binary\r\n" +
	"\r\n" +
	"HTTP/1.1 204 No Content\r\n" +
	"OData-Version: 4.0\r\n" +
	"Location: [Organization URI]/api/data/v9.2/contacts(" + contactA + ")\r\n" +
	"OData-EntityId: [Organization URI]/api/data/v9.2/contacts(" + contactA + ")\r\n" +
	"\r\n" +
	"\r\n" +
	"--batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f\r\n" +
	"Content-Type: application/http\r\n" +
	"Content-Transfer-Encoding: binary\r\n" +
	"\r\n" +
	"HTTP/1.1 204 No Content\r\n" +
	"OData-Version: 4.0\r\n" +
	"OData-EntityId: [Organization URI]/api/data/v9.2/contacts(" + contactB + ")\r\n" +
	"\r\n" +
	"\r\n" +
	"--batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f\r\n" +
	"Content-Type: application/http\r\n" +
	"Content-Transfer-Encoding: binary\r\n" +
	"\r\n" +
	"HTTP/1.1 400 Bad Request\r\n" +
	"REQ_ID: 5ecd1cb3-1730-4ffc-909c-d44c22270026\r\n" +
	"Content-Type: application/json; odata.metadata=minimal\r\n" +
	"OData-Version: 4.0\r\n" +
	"\r\n" +
	"{\"error\":{\"code\":\"0x80048d19\",\"message\":\"Error identified in Payload provided by the user for Entity :'contacts'\"}}\r\n" +
	"--batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f--\r\n"

const msContentType = "multipart/mixed; boundary=batchresponse_c1bd45c1-dd81-470d-b897-e965846aad2f"

func TestDecodeBatchResponse(t *testing.T) {
	results, err := dataverse.DecodeBatchResponse(msContentType, strings.NewReader(msBatchResponse), 3)
	if err != nil {
		t.Fatalf("DecodeBatchResponse: %v", err)
	}
	if len(results) != 3 {
		t.Fatalf("%d results, want 3", len(results))
	}
	if results[0] != nil || results[1] != nil {
		t.Errorf("results[0:2] = %v, %v; want nil, nil", results[0], results[1])
	}
	var se *dataverse.StatusError
	if !errors.As(results[2], &se) {
		t.Fatalf("results[2] = %v, want a *StatusError", results[2])
	}
	if se.Status != http.StatusBadRequest || se.Code != "0x80048d19" || !strings.HasPrefix(se.Message, "Error identified in Payload") {
		t.Errorf("StatusError = %+v", se)
	}
	if se.Transient() {
		t.Error("a 400 is reported transient")
	}
}

func TestDecodeBatchResponseLFOnly(t *testing.T) {
	body := strings.ReplaceAll(msBatchResponse, "\r\n", "\n")
	results, err := dataverse.DecodeBatchResponse(msContentType, strings.NewReader(body), 3)
	if err != nil {
		t.Fatalf("DecodeBatchResponse: %v", err)
	}
	var se *dataverse.StatusError
	if results[0] != nil || results[1] != nil || !errors.As(results[2], &se) || se.Status != 400 {
		t.Errorf("results = %v", results)
	}
}

func TestDecodeBatchResponseErrors(t *testing.T) {
	if _, err := dataverse.DecodeBatchResponse(msContentType, strings.NewReader(msBatchResponse), 2); err == nil {
		t.Error("3 parts for 2 requests accepted")
	}
	if _, err := dataverse.DecodeBatchResponse(msContentType, strings.NewReader(msBatchResponse), 4); err == nil {
		t.Error("3 parts for 4 requests accepted")
	}
	if _, err := dataverse.DecodeBatchResponse("application/json", strings.NewReader(msBatchResponse), 3); err == nil {
		t.Error("a JSON Content-Type accepted")
	}
	if _, err := dataverse.DecodeBatchResponse("multipart/mixed", strings.NewReader(msBatchResponse), 3); err == nil {
		t.Error("a Content-Type without boundary accepted")
	}
	garbled := strings.Replace(msBatchResponse, "HTTP/1.1 204 No Content", "not a status line", 1)
	if _, err := dataverse.DecodeBatchResponse(msContentType, strings.NewReader(garbled), 3); err == nil {
		t.Error("a part without a status line accepted")
	}
}

func TestStatusErrorRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == dataversetest.TokenPath {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"token_type":"Bearer","access_token":"t","expires_in":3600}`))
			return
		}
		w.Header().Set("Retry-After", "7")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = w.Write([]byte(`{"error":{"code":"0x80072322","message":"Number of requests exceeded the limit"}}`))
	}))
	defer srv.Close()
	c, err := dataverse.New(context.Background(), srv.URL, dataverse.Credentials{TokenURL: srv.URL + dataversetest.TokenPath, ClientID: "id", ClientSecret: "s"}, dataverse.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = c.PatchFlag(context.Background(), dataverse.FlagWrite{ContactID: contactA, Column: "nac_flag", Value: 1})
	var se *dataverse.StatusError
	if !errors.As(err, &se) {
		t.Fatalf("PatchFlag = %v, want a *StatusError", err)
	}
	if se.Status != http.StatusTooManyRequests || se.RetryAfter != 7*time.Second || se.Code != "0x80072322" {
		t.Errorf("StatusError = %+v, want 429 retry after 7s", se)
	}
	if !se.Transient() {
		t.Error("a 429 is not reported transient")
	}
	if !strings.Contains(se.Error(), "429") || !strings.Contains(se.Error(), "0x80072322") {
		t.Errorf("Error() = %q", se.Error())
	}
}

func TestStatusErrorTransient(t *testing.T) {
	for status, want := range map[int]bool{400: false, 401: false, 404: false, 412: false, 408: true, 429: true, 500: true, 503: true} {
		if got := (&dataverse.StatusError{Status: status}).Transient(); got != want {
			t.Errorf("Transient(%d) = %v, want %v", status, got, want)
		}
	}
	if got := (&dataverse.StatusError{Status: 503, Message: "Service Unavailable"}).Error(); got != "dataverse 503: Service Unavailable" {
		t.Errorf("Error() = %q", got)
	}
}

func TestTokenCached(t *testing.T) {
	e := newEnv(t, defaultOpts)
	c := e.client(t, "secret")
	ctx := context.Background()
	for i := range 3 {
		if err := c.PatchFlag(ctx, dataverse.FlagWrite{ContactID: contactA, Column: "nac_flag", Value: i}); err != nil {
			t.Fatalf("PatchFlag %d: %v", i, err)
		}
	}
	if _, err := c.GetRow(ctx, "contacts", contactA, "nac_flag"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Batch(ctx, []dataverse.FlagWrite{{ContactID: contactB, Column: "nac_flag", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	if n := e.tokenCalls(); n != 1 {
		t.Errorf("token endpoint hit %d times for 5 calls, want 1", n)
	}
}

func TestShortTokenLifetime(t *testing.T) {
	// x/oauth2 refreshes a token 10 s before it expires, so with a 2 s
	// lifetime every call fetches a new one; each must still succeed.
	opts := defaultOpts
	opts.TokenLifetime = 2 * time.Second
	e := newEnv(t, opts)
	c := e.client(t, "secret")
	for i := range 3 {
		if err := c.PatchFlag(context.Background(), dataverse.FlagWrite{ContactID: contactA, Column: "nac_flag", Value: i + 1}); err != nil {
			t.Fatalf("PatchFlag %d: %v", i, err)
		}
	}
	if row, _ := e.standin.Row("contacts", contactA); row["nac_flag"] != float64(3) {
		t.Errorf("nac_flag = %v, want 3", row["nac_flag"])
	}
	if n := e.tokenCalls(); n != 3 {
		t.Errorf("token endpoint hit %d times, want 3 (one per call)", n)
	}
}
