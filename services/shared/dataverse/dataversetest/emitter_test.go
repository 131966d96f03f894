package dataversetest_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
)

// receiver is a webhook endpoint that records what it is sent.
type receiver struct {
	mu       sync.Mutex
	got      []received
	statuses []int // answered in turn; then 204
}

type received struct {
	query  string
	header http.Header
	body   map[string]any
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	var body map[string]any
	_ = json.Unmarshal(b, &body)
	rc.mu.Lock()
	rc.got = append(rc.got, received{query: r.URL.RawQuery, header: r.Header.Clone(), body: body})
	status := http.StatusNoContent
	if len(rc.statuses) > 0 {
		status, rc.statuses = rc.statuses[0], rc.statuses[1:]
	}
	rc.mu.Unlock()
	w.WriteHeader(status)
}

func (rc *receiver) all() []received {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]received(nil), rc.got...)
}

var contactCols = []string{"firstname", "lastname", "parentcustomerid", "ownerid", "statecode", "nac_flag"}

func webhookEnv(t *testing.T, steps ...dataversetest.WebhookStep) (*dataversetest.Server, *httptest.Server, *receiver) {
	t.Helper()
	s, srv := serve(t, dataversetest.Options{})
	rc := &receiver{}
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)
	if len(steps) == 0 {
		steps = []dataversetest.WebhookStep{
			{Message: "Create", Table: "contact", Image: contactCols},
			{Message: "Update", Table: "contact", Filtering: contactCols, Image: contactCols},
			{Message: "Delete", Table: "contact", Image: contactCols},
		}
	}
	s.DefineColumn("contact", "nac_flag", "Picklist", 0, 1, 2)
	if _, err := s.RegisterWebhook(hook.URL+"/webhooks/dataverse", 4, "the-webhook-key", steps...); err != nil {
		t.Fatal(err)
	}
	s.SetWebhookRetryDelay(time.Millisecond)
	s.Seed("accounts", idB, map[string]any{"name": "Contoso"})
	return s, srv, rc
}

func settle(t *testing.T, s *dataversetest.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
}

// attrs reads an Entity's Attributes list into a map.
func attrs(t *testing.T, entity any) map[string]any {
	t.Helper()
	e, _ := entity.(map[string]any)
	list, ok := e["Attributes"].([]any)
	if !ok {
		t.Fatalf("not an entity: %v", entity)
	}
	out := map[string]any{}
	for _, kv := range list {
		m := kv.(map[string]any)
		out[m["key"].(string)] = m["value"]
	}
	return out
}

func param(t *testing.T, list any, key string) any {
	t.Helper()
	for _, kv := range list.([]any) {
		if m := kv.(map[string]any); m["key"] == key {
			return m["value"]
		}
	}
	return nil
}

func TestEmitterUpdateWithTagAuthAndImages(t *testing.T) {
	t.Parallel()
	s, srv, rc := webhookEnv(t)
	s.Seed("contacts", idA, map[string]any{"firstname": "Ada", "lastname": "Lovelace", "nac_flag": float64(0)})
	resp := do(t, http.MethodPatch, contactURL(srv, idA)+"?tag=notatcompany", `{"firstname":"Augusta","parentcustomerid_account@odata.bind":"/accounts(`+idB+`)"}`, nil)
	if resp.StatusCode != 204 {
		t.Fatalf("PATCH = %d", resp.StatusCode)
	}
	// Not a filtering attribute: no webhook.
	do(t, http.MethodPatch, contactURL(srv, idA), `{"telephone1":"+44 1"}`, nil)
	settle(t, s)
	got := rc.all()
	if len(got) != 1 {
		t.Fatalf("%d webhooks, want 1", len(got))
	}
	w := got[0]
	if w.query != "code=the-webhook-key" || w.header.Get("x-ms-dynamics-request-name") != "Update" || w.header.Get("x-ms-dynamics-entity-name") != "contact" {
		t.Errorf("query %q, headers %v", w.query, w.header)
	}
	b := w.body
	if b["MessageName"] != "Update" || b["PrimaryEntityName"] != "contact" || b["PrimaryEntityId"] != idA || b["Stage"] != float64(40) || b["Mode"] != float64(1) {
		t.Errorf("context: %v", b)
	}
	if param(t, b["SharedVariables"], "tag") != "notatcompany" {
		t.Errorf("SharedVariables: %v", b["SharedVariables"])
	}
	target := attrs(t, param(t, b["InputParameters"], "Target"))
	ref, _ := target["parentcustomerid"].(map[string]any)
	if target["firstname"] != "Augusta" || ref["LogicalName"] != "account" || ref["Id"] != idB || !strings.HasPrefix(target["modifiedon"].(string), "/Date(") {
		t.Errorf("Target: %v", target)
	}
	if _, ok := target["lastname"]; ok {
		t.Errorf("Target carries an unchanged column: %v", target)
	}
	post := attrs(t, param(t, b["PostEntityImages"], "image"))
	flag, _ := post["nac_flag"].(map[string]any)
	if post["lastname"] != "Lovelace" || post["firstname"] != "Augusta" || flag["Value"] != float64(0) || !strings.HasPrefix(flag["__type"].(string), "OptionSetValue:") {
		t.Errorf("post-image: %v", post)
	}
	if _, ok := post["telephone1"]; ok {
		t.Errorf("the image has an unregistered column: %v", post)
	}
}

func TestEmitterCreateDeleteAndStateSplit(t *testing.T) {
	t.Parallel()
	s, srv, rc := webhookEnv(t)
	resp := do(t, http.MethodPost, srv.URL+dataverse.APIPath+"/contacts", `{"contactid":"`+idA+`","firstname":"Ada"}`, nil)
	if resp.StatusCode != 204 {
		t.Fatalf("POST = %d", resp.StatusCode)
	}
	do(t, http.MethodPatch, contactURL(srv, idA), `{"lastname":"King","statecode":1,"statuscode":2}`, nil)
	do(t, http.MethodPatch, contactURL(srv, idA), `{"lastname":"Byron"}`, map[string]string{"MSCRM.BypassBusinessLogicExecution": "CustomSync,CustomAsync"})
	do(t, http.MethodDelete, contactURL(srv, idA), "", nil)
	settle(t, s)
	got := rc.all()
	var msgs []string
	for _, w := range got {
		msgs = append(msgs, w.body["MessageName"].(string))
	}
	if strings.Join(msgs, ",") != "Create,Update,Update,Delete" {
		t.Fatalf("messages %v, want Create, Update (columns), Update (state), Delete; the bypassed write none", msgs)
	}
	if id := param(t, got[0].body["OutputParameters"], "id"); id != idA {
		t.Errorf("Create OutputParameters id = %v", id)
	}
	if owner, _ := attrs(t, param(t, got[0].body["PostEntityImages"], "image"))["ownerid"].(map[string]any); owner["LogicalName"] != "systemuser" || owner["Id"] != s.Identity().AppUserID {
		t.Errorf("a new row belongs to its creator: %v", owner)
	}
	if tg := attrs(t, param(t, got[1].body["InputParameters"], "Target")); tg["lastname"] != "King" || tg["statecode"] != nil {
		t.Errorf("first Update carries %v", tg)
	}
	if st := attrs(t, param(t, got[2].body["InputParameters"], "Target"))["statecode"].(map[string]any); st["Value"] != float64(1) {
		t.Errorf("state Update carries %v", st)
	}
	if got[1].body["OperationId"] == got[2].body["OperationId"] {
		t.Error("the two executions share an OperationId")
	}
	del := got[3].body
	target := param(t, del["InputParameters"], "Target").(map[string]any)
	if !strings.HasPrefix(target["__type"].(string), "EntityReference:") || target["Id"] != idA {
		t.Errorf("Delete Target: %v", target)
	}
	if pre := attrs(t, param(t, del["PreEntityImages"], "image")); pre["lastname"] != "Byron" || pre["firstname"] != "Ada" {
		t.Errorf("Delete pre-image: %v", pre)
	}
}

func TestEmitterRetryRuleAndFailedJobs(t *testing.T) {
	t.Parallel()
	s, srv, rc := webhookEnv(t)
	rc.statuses = []int{503, 204, 500}
	s.Seed("contacts", idA, map[string]any{"firstname": "Ada"})
	do(t, http.MethodPatch, contactURL(srv, idA), `{"firstname":"A"}`, nil)
	settle(t, s)
	do(t, http.MethodPatch, contactURL(srv, idA), `{"firstname":"B"}`, nil)
	settle(t, s)
	d := s.Deliveries()
	if len(d) != 2 || d[0].Attempts != 2 || d[0].Status != 204 || d[1].Attempts != 1 || d[1].Status != 500 {
		t.Fatalf("deliveries: %+v", d)
	}
	resp := do(t, http.MethodGet, srv.URL+dataverse.APIPath+"/asyncoperations?$filter=statuscode%20eq%2031&$select=_owningextensionid_value,message", "", nil)
	var page struct{ Value []map[string]any }
	_ = json.NewDecoder(resp.Body).Decode(&page)
	if len(page.Value) != 1 || page.Value[0]["_owningextensionid_value"] != d[1].StepID {
		t.Errorf("failed system jobs: %+v", page.Value)
	}
}

func TestEmitterKnobs(t *testing.T) {
	t.Parallel()
	s, srv, rc := webhookEnv(t)
	s.Seed("contacts", idA, map[string]any{"firstname": "Ada"})
	patch := func(name string) {
		t.Helper()
		if resp := do(t, http.MethodPatch, contactURL(srv, idA), `{"firstname":"`+name+`"}`, nil); resp.StatusCode != 204 {
			t.Fatalf("PATCH = %d", resp.StatusCode)
		}
	}
	firstnames := func(from int) []string {
		var out []string
		for _, w := range rc.all()[from:] {
			if w.header.Get("x-ms-dynamics-msg-size-exceeded") != "" {
				out = append(out, "oversize")
				continue
			}
			out = append(out, attrs(t, param(t, w.body["InputParameters"], "Target"))["firstname"].(string))
		}
		return out
	}
	s.InjectWebhookFaults(dataversetest.WebhookFaults{Drop: 1})
	patch("lost")
	patch("kept")
	settle(t, s)
	if got := firstnames(0); strings.Join(got, ",") != "kept" {
		t.Errorf("drop: %v", got)
	}
	s.InjectWebhookFaults(dataversetest.WebhookFaults{Duplicate: 1})
	patch("twice")
	settle(t, s)
	if got := firstnames(1); strings.Join(got, ",") != "twice,twice" {
		t.Errorf("duplicate: %v", got)
	}
	s.InjectWebhookFaults(dataversetest.WebhookFaults{Reorder: 1})
	patch("first")
	patch("second")
	settle(t, s)
	if got := firstnames(3); strings.Join(got, ",") != "second,first" {
		t.Errorf("reorder: %v", got)
	}
	s.InjectWebhookFaults(dataversetest.WebhookFaults{Oversize: 1})
	patch("big")
	settle(t, s)
	w := rc.all()[5]
	if w.header.Get("x-ms-dynamics-msg-size-exceeded") == "" || w.body["InputParameters"] != nil || w.body["PostEntityImages"] != nil ||
		w.body["ParentContext"] != nil || w.body["PrimaryEntityId"] != idA || w.body["MessageName"] != "Update" {
		t.Errorf("oversize: %v %v", w.header, w.body)
	}
	s.InjectWebhookFaults(dataversetest.WebhookFaults{Delayed: 1, Delay: 200 * time.Millisecond})
	start := time.Now()
	patch("late")
	settle(t, s)
	if time.Since(start) < 200*time.Millisecond || firstnames(6)[0] != "late" {
		t.Errorf("delay: after %s, %v", time.Since(start), firstnames(6))
	}
}

func TestEmitterHeaderAuthAndDisabledSteps(t *testing.T) {
	t.Parallel()
	s, srv := serve(t, dataversetest.Options{})
	rc := &receiver{}
	hook := httptest.NewServer(rc)
	t.Cleanup(hook.Close)
	if _, err := s.RegisterWebhook(hook.URL, 5, `<settings><setting name="x-nac-key" value="k-123"/></settings>`,
		dataversetest.WebhookStep{Message: "Update", Table: "account"}); err != nil {
		t.Fatal(err)
	}
	s.Seed("accounts", idB, map[string]any{"name": "Contoso"})
	do(t, http.MethodPatch, srv.URL+dataverse.APIPath+"/accounts("+idB+")", `{"name":"Contoso Ltd"}`, nil)
	settle(t, s)
	got := rc.all()
	if len(got) != 1 || got[0].header.Get("x-nac-key") != "k-123" || got[0].query != "" {
		t.Fatalf("header auth: %+v", got)
	}
	// An empty filter means every column; a disabled step never fires.
	resp := do(t, http.MethodGet, srv.URL+dataverse.APIPath+"/sdkmessageprocessingsteps?$select=sdkmessageprocessingstepid", "", nil)
	var page struct{ Value []map[string]any }
	_ = json.NewDecoder(resp.Body).Decode(&page)
	step := page.Value[0]["sdkmessageprocessingstepid"].(string)
	if r := do(t, http.MethodPatch, srv.URL+dataverse.APIPath+"/sdkmessageprocessingsteps("+step+")", `{"statecode":1}`, nil); r.StatusCode != 204 {
		t.Fatalf("disable: %d", r.StatusCode)
	}
	do(t, http.MethodPatch, srv.URL+dataverse.APIPath+"/accounts("+idB+")", `{"name":"Contoso plc"}`, nil)
	settle(t, s)
	if n := len(rc.all()); n != 1 {
		t.Errorf("a disabled step fired: %d webhooks", n)
	}
}
