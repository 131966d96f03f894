package dataversetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// WebhookStep is one step RegisterWebhook registers: async, post-operation,
// with one image (post for Create and Update, pre for Delete).
type WebhookStep struct {
	Message   string // Create, Update or Delete
	Table     string
	Filtering []string // Update only; empty: every column
	Image     []string // the image's columns; empty: every column
}

// RegisterWebhook registers a service endpoint and its steps through the
// stand-in's own Web API handling (with its validation), for tests of the
// emitter that do not run provisioning. authType is 4 (WebhookKey),
// 5 (HttpHeader) or 6 (HttpQueryString). It returns the endpoint's id.
func (s *Server) RegisterWebhook(endpointURL string, authType int, authValue string, steps ...WebhookStep) (string, error) {
	post := func(set string, body map[string]any) (string, error) {
		b, _ := json.Marshal(body)
		req := httptest.NewRequest(http.MethodPost, dataverse.APIPath+"/"+set, bytes.NewReader(b))
		rec := httptest.NewRecorder()
		s.serveOne(rec, req, set)
		if rec.Code != http.StatusNoContent {
			return "", fmt.Errorf("register %s: %d %s", set, rec.Code, rec.Body.String())
		}
		m := rowKeyRE.FindStringSubmatch(strings.TrimPrefix(rec.Header().Get("OData-EntityId"), "http://"+req.Host+dataverse.APIPath+"/"))
		if m == nil {
			return "", fmt.Errorf("register %s: no id in %q", set, rec.Header().Get("OData-EntityId"))
		}
		return m[2], nil
	}
	endpoint, err := post("serviceendpoints", map[string]any{"name": "test webhook", "url": endpointURL,
		"contract": 8, "authtype": authType, "authvalue": authValue, "messageformat": 2})
	if err != nil {
		return "", err
	}
	for _, st := range steps {
		body := map[string]any{"name": "test: " + st.Message + " of " + st.Table, "stage": 40, "mode": 1, "rank": 1,
			"asyncautodelete": true, "eventhandler_serviceendpoint@odata.bind": "/serviceendpoints(" + endpoint + ")",
			"sdkmessageid@odata.bind":       "/sdkmessages(" + fixedID("sdkmessage "+st.Message) + ")",
			"sdkmessagefilterid@odata.bind": "/sdkmessagefilters(" + fixedID("sdkmessagefilter "+st.Message+" "+st.Table) + ")"}
		if len(st.Filtering) > 0 {
			body["filteringattributes"] = joinComma(st.Filtering)
		}
		step, err := post("sdkmessageprocessingsteps", body)
		if err != nil {
			return "", err
		}
		img := map[string]any{"name": "image", "entityalias": "image", "imagetype": 1, "messagepropertyname": "Target",
			"sdkmessageprocessingstepid@odata.bind": "/sdkmessageprocessingsteps(" + step + ")"}
		switch st.Message {
		case "Create":
			img["messagepropertyname"] = "Id"
		case "Delete":
			img["imagetype"] = 0
		}
		if len(st.Image) > 0 {
			img["attributes"] = joinComma(st.Image)
		}
		if _, err := post("sdkmessageprocessingstepimages", img); err != nil {
			return "", err
		}
	}
	return endpoint, nil
}

func joinComma(list []string) string { return strings.Join(list, ",") }
