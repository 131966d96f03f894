package ingest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

const specPath = "../../api/openapi.yaml"

// specServer is the server the document lists; requests are made to it so
// that the router matches them as a client's would be.
const specServer = "http://127.0.0.1:8080"

// specFormats check the formats the document uses as the service does:
// a uuid is any 8-4-4-4-12 GUID (Dataverse's ids are not all RFC 9562
// ones), a uri is absolute.
var specFormats = []openapi3.SchemaValidationOption{
	openapi3.WithStringFormatValidator("uuid", openapi3.NewCallbackValidator(func(s string) error {
		if !dataverse.IsGUID(s) {
			return errors.New("not a GUID")
		}
		return nil
	})),
	openapi3.WithStringFormatValidator("uri", openapi3.NewCallbackValidator(func(s string) error {
		u, err := url.Parse(s)
		if err != nil || !u.IsAbs() || u.Host == "" {
			return fmt.Errorf("%q is not an absolute URI", s)
		}
		return nil
	})),
}

// loadSpec loads and validates api/openapi.yaml and routes by it.
func loadSpec(t *testing.T) (*openapi3.T, routers.Router) {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromFile(specPath)
	if err != nil {
		t.Fatalf("load %s: %v", specPath, err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("%s is not a valid OpenAPI document: %v", specPath, err)
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return doc, router
}

// specCase is one request and the answer it must get.
type specCase struct {
	name        string
	cfg         func(*Config)
	failPublish bool
	prepare     func(f *fixture) // state the service is in before the request
	method      string
	target      string // path and query
	contentType string
	body        []byte
	header      map[string]string
	// requestOpts relax the request check for a request that is invalid on
	// purpose (ExcludeRequestBody, ExcludeRequestQueryParams).
	requestOpts openapi3filter.Options
	status      int
	check       func(t *testing.T, rec *httptest.ResponseRecorder)
}

func (c specCase) request(t *testing.T) *http.Request {
	t.Helper()
	req := httptest.NewRequest(c.method, specServer+c.target, bytes.NewReader(c.body))
	if c.contentType != "" {
		req.Header.Set("Content-Type", c.contentType)
	}
	for k, v := range c.header {
		req.Header.Set(k, v)
	}
	return req
}

// checkAgainstSpec sends c to the real routes and validates the request and
// the response by the document: a status, content type, header or body the
// document does not describe fails.
func checkAgainstSpec(t *testing.T, router routers.Router, c specCase) {
	t.Helper()
	cfg := testConfig()
	if c.cfg != nil {
		c.cfg(&cfg)
	}
	f := newFixtureWith(t, cfg)
	if c.failPublish {
		f.pub.setErr(errors.New("nats: timeout"))
	}
	if c.prepare != nil {
		c.prepare(f)
	}

	req := c.request(t)
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatalf("%s %s is not in the document: %v", c.method, c.target, err)
	}
	reqOpts := c.requestOpts
	reqOpts.AuthenticationFunc = openapi3filter.NoopAuthenticationFunc
	reqOpts.MultiError = true
	reqOpts.SchemaValidationOptions = specFormats
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: &reqOpts}
	ctx := context.Background()
	if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
		t.Errorf("request does not conform: %v", err)
	}

	rec := httptest.NewRecorder()
	f.h.ServeHTTP(rec, c.request(t))
	if rec.Code != c.status {
		t.Fatalf("status %d, want %d; body %s", rec.Code, c.status, rec.Body)
	}
	if err := validateResponse(ctx, in, rec.Code, rec.Header(), rec.Body.Bytes()); err != nil {
		t.Errorf("response does not conform: %v\nbody: %s", err, rec.Body)
	}
	if c.check != nil {
		c.check(t, rec)
	}
}

func validateResponse(ctx context.Context, in *openapi3filter.RequestValidationInput, status int, header http.Header, body []byte) error {
	return openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{
			IncludeResponseStatus:   true, // an undocumented status fails
			MultiError:              true,
			SchemaValidationOptions: specFormats,
		},
	})
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	t.Parallel()
	doc, _ := loadSpec(t)
	// Every route the service serves is in the document.
	for _, path := range []string{"/webhooks/dataverse", "/webhooks/profile", "/webhooks/profile/{source}"} {
		if doc.Paths.Value(path) == nil {
			t.Errorf("%s is not documented", path)
		}
	}
}

func TestOpenAPIConformance(t *testing.T) {
	t.Parallel()
	_, router := loadSpec(t)
	contact := contactFixture(t)
	testdata := func(name string) []byte {
		b, err := os.ReadFile("remotecontext/testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	loop := withChanges(t, contact, func(doc map[string]any) {
		doc["SharedVariables"] = []any{map[string]any{"key": "tag", "value": "notatcompany"}}
	})
	big := withChanges(t, contact, func(doc map[string]any) { doc["Padding"] = strings.Repeat("x", 64<<10) })
	missing := withChanges(t, contact, func(doc map[string]any) { delete(doc, "MessageName") })
	flagIgnore := withTarget(t, "contact", append([]any{flagColumn, optionSet(2)}, systemAttrs()...)...)
	associate := associateBody(t, "Associate", "opportunitycontact_association",
		entityReference("opportunity", opportunityRow), entityReference("contact", relatedContact))

	changed := profileChanged(t, "evt-p1", "demo feed")
	erased := profileBody(t, "evt-e1")
	company := []byte(`{"id":"evt-c1","type":"company.changed","source":"demo feed","observedAt":"2026-03-04T11:00:00Z",` +
		`"data":{"companyId":"c-1","name":"Contoso","domains":["contoso.com"]}}`)
	batch := []byte("[" + string(changed) + "," + string(erased) + "," + string(company) + "]")
	halfValid := []byte("[" + string(changed) + `,{"id":"evt-x","type":"member.erased","source":"demo feed","observedAt":"2026-03-04T11:00:00Z","data":{}}]`)
	refused := []byte(`[{"id":"a b"},{"id":"evt-2","type":"nope"}]`)
	invalidEvent := []byte(`{"id":"evt-9","type":"member.erased","source":"s","observedAt":"2026-03-04T11:00:00Z","data":{}}`)
	acmeEvent := erasureFrom(t, "evt-a1", "acme")
	noBody := openapi3filter.Options{ExcludeRequestBody: true}
	withSources := func(c *Config) { c.ProfileSources = sourcesConfig().ProfileSources }
	noSharedSecret := func(c *Config) { withSources(c); c.ProfileSecrets = nil }
	post := http.MethodPost
	dv := "/webhooks/dataverse?code=" + testKey

	for _, c := range []specCase{
		// Dataverse.
		{name: "dataverse accepted", method: post, target: dv, contentType: "application/json", body: contact, status: http.StatusAccepted},
		{name: "dataverse accepted, header key", cfg: func(c *Config) { c.DataverseOrgs = orgsConfig().DataverseOrgs }, method: post,
			target: "/webhooks/dataverse", contentType: "application/json", body: withOrg(t, contact, headerOrg),
			header: map[string]string{"x-nac-key": headerKey1}, status: http.StatusAccepted},
		{name: "dataverse accepted, query string key", cfg: func(c *Config) { c.DataverseOrgs = orgsConfig().DataverseOrgs }, method: post,
			target: "/webhooks/dataverse?token=" + queryKey2, contentType: "application/json", body: withOrg(t, contact, queryOrg), status: http.StatusAccepted},
		{name: "dataverse flag set to Ignore", method: post, target: dv, contentType: "application/json", body: flagIgnore, status: http.StatusAccepted},
		{name: "dataverse associate", method: post, target: dv, contentType: "application/json", body: associate, status: http.StatusAccepted},
		{name: "dataverse size exceeded", method: post, target: dv, contentType: "application/json",
			body:   withChanges(t, contact, func(doc map[string]any) { delete(doc, "InputParameters"); delete(doc, "PostEntityImages") }),
			header: map[string]string{"x-ms-dynamics-msg-size-exceeded": "true"}, status: http.StatusAccepted},
		{name: "dataverse ignored", method: post, target: dv, contentType: "application/json", body: testdata("albanianxrm-create-albxrm_alltypes.json"), status: http.StatusAccepted},
		{name: "dataverse loop", method: post, target: dv, contentType: "application/json", body: loop, status: http.StatusAccepted},
		{name: "dataverse not JSON", method: post, target: dv, contentType: "application/json", body: []byte("{not json"), requestOpts: noBody, status: http.StatusBadRequest},
		{name: "dataverse fields missing", method: post, target: dv, contentType: "application/json", body: missing, requestOpts: noBody, status: http.StatusBadRequest},
		{name: "dataverse wrong key", method: post, target: "/webhooks/dataverse?code=wrong-key-0123456789", contentType: "application/json", body: contact, status: http.StatusUnauthorized},
		{name: "dataverse no key", method: post, target: "/webhooks/dataverse", contentType: "application/json", body: contact, status: http.StatusUnauthorized},
		{name: "dataverse too large", method: post, target: dv, contentType: "application/json", body: big, status: http.StatusRequestEntityTooLarge},
		{name: "dataverse text/plain", method: post, target: dv, contentType: "text/plain", body: contact, requestOpts: noBody, status: http.StatusUnsupportedMediaType},
		{name: "dataverse JetStream down", failPublish: true, method: post, target: dv, contentType: "application/json", body: contact,
			status: http.StatusServiceUnavailable, check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				if rec.Header().Get("Retry-After") == "" {
					t.Error("503 without Retry-After")
				}
			}},

		{name: "dataverse no Content-Type", method: post, target: dv, body: contact, requestOpts: noBody, status: http.StatusUnsupportedMediaType},
		{name: "dataverse unknown message", method: post, target: dv, contentType: "application/json",
			body: withChanges(t, contact, func(doc map[string]any) { doc["MessageName"] = "Retrieve" }), status: http.StatusAccepted},
		{name: "dataverse modifiedon far ahead", method: post, target: dv, contentType: "application/json",
			body: withTarget(t, "contact", "modifiedon", "/Date(253402214400000)/"), status: http.StatusBadRequest},
		{name: "dataverse busy", prepare: fillInflight, method: post, target: dv, contentType: "application/json", body: contact,
			status: http.StatusServiceUnavailable},

		// Profile, shared route.
		{name: "profile single", method: post, target: "/webhooks/profile", contentType: "application/json", body: changed, header: signed(changed), status: http.StatusAccepted},
		{name: "profile single erasure", method: post, target: "/webhooks/profile", contentType: "application/json", body: erased, header: signed(erased), status: http.StatusAccepted},
		{name: "profile single company", method: post, target: "/webhooks/profile", contentType: "application/json", body: company, header: signed(company), status: http.StatusAccepted},
		{name: "profile batch", method: post, target: "/webhooks/profile", contentType: "application/json", body: batch, header: signed(batch), status: http.StatusOK},
		{name: "profile batch half refused", method: post, target: "/webhooks/profile", contentType: "application/json", body: halfValid, header: signed(halfValid),
			requestOpts: noBody, status: http.StatusOK},
		{name: "profile batch all refused", method: post, target: "/webhooks/profile", contentType: "application/json", body: refused, header: signed(refused),
			requestOpts: noBody, status: http.StatusBadRequest},
		{name: "profile single refused", method: post, target: "/webhooks/profile", contentType: "application/json", body: invalidEvent, header: signed(invalidEvent),
			requestOpts: noBody, status: http.StatusBadRequest},
		{name: "profile bad signature", method: post, target: "/webhooks/profile", contentType: "application/json", body: changed, header: signed(erased), status: http.StatusUnauthorized},
		{name: "profile too large", method: post, target: "/webhooks/profile", contentType: "application/json", body: big, header: signed(big),
			requestOpts: noBody, status: http.StatusRequestEntityTooLarge},
		{name: "profile text/plain", method: post, target: "/webhooks/profile", contentType: "text/plain", body: changed, header: signed(changed),
			requestOpts: noBody, status: http.StatusUnsupportedMediaType},
		{name: "profile JetStream down", failPublish: true, method: post, target: "/webhooks/profile", contentType: "application/json", body: changed, header: signed(changed),
			status: http.StatusServiceUnavailable},
		{name: "profile challenge", method: http.MethodGet, target: "/webhooks/profile?challengeCode=8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6b", status: http.StatusOK},
		{name: "profile unsigned", method: post, target: "/webhooks/profile", contentType: "application/json", body: changed, status: http.StatusUnauthorized},
		{name: "profile busy", prepare: fillInflight, method: post, target: "/webhooks/profile", contentType: "application/json", body: changed, header: signed(changed),
			status: http.StatusServiceUnavailable},
		{name: "profile challenge with a body as code", method: http.MethodGet, target: "/webhooks/profile?challengeCode=" + url.QueryEscape(string(erased)),
			requestOpts: openapi3filter.Options{ExcludeRequestQueryParams: true}, status: http.StatusBadRequest},
		{name: "profile challenge rate-limited", prepare: func(f *fixture) {
			for range challengeBurst {
				f.do(t, http.MethodGet, "/webhooks/profile?challengeCode=8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6b", "", nil, nil)
			}
		}, method: http.MethodGet, target: "/webhooks/profile?challengeCode=8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6b", status: http.StatusTooManyRequests},
		{name: "profile challenge without code", method: http.MethodGet, target: "/webhooks/profile",
			requestOpts: openapi3filter.Options{ExcludeRequestQueryParams: true}, status: http.StatusBadRequest},
		{name: "profile no shared secret", cfg: noSharedSecret, method: post, target: "/webhooks/profile", contentType: "application/json",
			body: acmeEvent, header: signedWith(acmeSecret1, acmeEvent), status: http.StatusNotFound},
		{name: "profile challenge no shared secret", cfg: noSharedSecret, method: http.MethodGet, target: "/webhooks/profile?challengeCode=8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6b", status: http.StatusNotFound},

		// Profile, a source's route.
		{name: "source single", cfg: withSources, method: post, target: "/webhooks/profile/acme", contentType: "application/json",
			body: acmeEvent, header: signedWith(acmeSecret2, acmeEvent), status: http.StatusAccepted},
		{name: "source event of another source", cfg: withSources, method: post, target: "/webhooks/profile/acme", contentType: "application/json",
			body: erased, header: signedWith(acmeSecret1, erased), status: http.StatusBadRequest},
		{name: "source shared secret", cfg: withSources, method: post, target: "/webhooks/profile/acme", contentType: "application/json",
			body: acmeEvent, header: signed(acmeEvent), status: http.StatusUnauthorized},
		{name: "source unknown", cfg: withSources, method: post, target: "/webhooks/profile/unknown", contentType: "application/json",
			body: acmeEvent, header: signedWith(acmeSecret1, acmeEvent), status: http.StatusNotFound},
		{name: "source challenge", cfg: withSources, method: http.MethodGet, target: "/webhooks/profile/acme?challengeCode=8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6b", status: http.StatusOK},
		{name: "source challenge unknown", cfg: withSources, method: http.MethodGet, target: "/webhooks/profile/unknown?challengeCode=8f3c2a1e-4b5d-4e6f-9a0b-1c2d3e4f5a6b", status: http.StatusNotFound},
	} {
		t.Run(c.name, func(t *testing.T) { checkAgainstSpec(t, router, c) })
	}
}

// fillInflight takes the whole in-flight budget, as bodies being read would.
func fillInflight(f *fixture) {
	_ = f.svc.inflight.Acquire(context.Background(), int64(f.svc.cfg.MaxInflightBytes))
}

// TestOpenAPIConformanceCanFail makes sure the check above would notice a
// response the document does not describe.
func TestOpenAPIConformanceCanFail(t *testing.T) {
	t.Parallel()
	_, router := loadSpec(t)
	req := httptest.NewRequest(http.MethodPost, specServer+"/webhooks/dataverse?code="+testKey, bytes.NewReader(contactFixture(t)))
	req.Header.Set("Content-Type", "application/json")
	route, params, err := router.FindRoute(req)
	if err != nil {
		t.Fatal(err)
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	json := http.Header{"Content-Type": {"application/json"}}
	problemJSON := http.Header{"Content-Type": {"application/problem+json"}}
	problem := []byte(`{"type":"https://notatcompany.dev/problems/internal","title":"Internal Server Error","status":500}`)
	for _, c := range []struct {
		name   string
		status int
		header http.Header
		body   string
	}{
		{"undocumented status", http.StatusInternalServerError, problemJSON, string(problem)},
		{"undocumented outcome", http.StatusAccepted, json, `{"outcome":"stored"}`},
		{"outcome missing", http.StatusAccepted, json, `{"eventId":"x"}`},
		{"wrong content type", http.StatusAccepted, http.Header{"Content-Type": {"text/plain"}}, `{"outcome":"accepted"}`},
		{"no content type", http.StatusAccepted, http.Header{}, `{"outcome":"accepted"}`},
		{"problem as plain JSON", http.StatusUnauthorized, json, string(problem)},
		{"problem without status", http.StatusUnauthorized, problemJSON, `{"type":"https://notatcompany.dev/problems/unauthorized","title":"Unauthorized"}`},
		{"problem type not a URI", http.StatusUnauthorized, problemJSON, `{"type":"unauthorized","title":"Unauthorized","status":401}`},
		{"Retry-After not a number", http.StatusServiceUnavailable, http.Header{"Content-Type": {"application/problem+json"}, "Retry-After": {"soon"}},
			`{"type":"https://notatcompany.dev/problems/unavailable","title":"Service Unavailable","status":503}`},
		{"Retry-After missing", http.StatusServiceUnavailable, problemJSON,
			`{"type":"https://notatcompany.dev/problems/unavailable","title":"Service Unavailable","status":503}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := validateResponse(context.Background(), in, c.status, c.header, []byte(c.body)); err == nil {
				t.Errorf("a %d %q response %s passed validation", c.status, c.header.Get("Content-Type"), c.body)
			}
		})
	}
}

// TestOpenAPIRequestSchemaCanFail: the document refuses profile events the
// service refuses, so the request checks above are not vacuous.
func TestOpenAPIRequestSchemaCanFail(t *testing.T) {
	t.Parallel()
	_, router := loadSpec(t)
	event := func(typ, data string) string {
		return `{"id":"evt-1","type":"` + typ + `","source":"s","observedAt":"2026-03-04T11:00:00Z","data":` + data + `}`
	}
	valid := event("member.erased", `{"memberId":"m-1"}`)
	for _, c := range []struct{ name, body string }{
		{"erasure with profile fields", event("member.erased", `{"memberId":"m-1","firstName":"Ada"}`)},
		{"profile with company data", event("profile.changed", `{"companyId":"c-1","name":"Contoso"}`)},
		{"unknown type", event("member.deleted", `{"memberId":"m-1"}`)},
		{"no type", `{"id":"evt-1","source":"s","observedAt":"2026-03-04T11:00:00Z","data":{"memberId":"m-1"}}`},
		{"unknown field", strings.Replace(valid, `"id"`, `"extra":1,"id"`, 1)},
		{"observedAt not a time", strings.Replace(valid, "2026-03-04T11:00:00Z", "yesterday", 1)},
		{"empty batch", `[]`},
		{"batch of 101", "[" + strings.Repeat(valid+",", 100) + valid + "]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, specServer+"/webhooks/profile", strings.NewReader(c.body))
			req.Header.Set("Content-Type", "application/json")
			route, params, err := router.FindRoute(req)
			if err != nil {
				t.Fatal(err)
			}
			err = openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
				Request: req, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, SchemaValidationOptions: specFormats},
			})
			if err == nil {
				t.Errorf("the document accepts %s", c.body)
			}
		})
	}
}
