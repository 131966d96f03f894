package provision

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
)

const (
	clientID     = "nac-provisioner"
	clientSecret = "provisioning-secret"
	webhookKey   = "a-webhook-key-of-24-chars"
)

type env struct {
	standin *dataversetest.Server
	srv     *httptest.Server
	client  *dataverse.Client
	cfg     Config
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s := dataversetest.New(dataversetest.Options{ClientID: clientID, ClientSecret: clientSecret})
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	c, err := dataverse.New(context.Background(), srv.URL, dataverse.Credentials{
		TokenURL: srv.URL + dataversetest.TokenPath, ClientID: clientID, ClientSecret: clientSecret}, dataverse.Options{Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Defaults()
	cfg.Endpoint = Endpoint{URL: "https://ingest.example.com/webhooks/dataverse", Auth: AuthWebhookKey, Key: webhookKey}
	return &env{standin: s, srv: srv, client: c, cfg: cfg}
}

func (e *env) provision(t *testing.T, mode Mode) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := (&Runner{Client: e.client, Config: e.cfg}).Provision(ctx, mode)
	if err != nil {
		t.Fatalf("provision: %v\n%+v", err, res.Items)
	}
	return res
}

// webAPI sends one request to the stand-in as the provisioning client (or
// as the systemuser caller when set) and returns the status and body.
func (e *env) webAPI(t *testing.T, method, path, body, caller string) (int, []byte) {
	t.Helper()
	tok := token(t, e.srv.URL)
	var rd *stringsReader
	if body != "" {
		rd = newReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+dataverse.APIPath+"/"+path, rd.orNil())
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	if caller != "" {
		req.Header.Set("MSCRMCallerID", caller)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b := readAll(t, resp)
	return resp.StatusCode, b
}
