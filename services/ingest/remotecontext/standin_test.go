package remotecontext_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/ingest/remotecontext"
	"github.com/notatcompany/notatcompany/services/shared/crmschema"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
)

// TestParsesWhatTheStandinSends: the webhooks the stand-in's emitter
// posts, for every message the product registers, parse into the change
// the Web API writes made.
func TestParsesWhatTheStandinSends(t *testing.T) {
	const (
		contact = "3a7e9c10-5b2d-4f8e-9a61-7c4d2e8b1f03"
		account = "b2d4f6a8-1c3e-4a5b-8d7f-9e0a1b2c3d4e"
	)
	s := dataversetest.New(dataversetest.Options{})
	s.DefineColumn("contact", "nac_orgchangestatus", "Picklist", 0, 1, 2)
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer hook.Close()
	cols := crmschema.Columns{Flag: "nac_orgchangestatus"}.Read("contact")
	if _, err := s.RegisterWebhook(hook.URL, 4, "k", dataversetest.WebhookStep{Message: "Create", Table: "contact", Image: cols},
		dataversetest.WebhookStep{Message: "Update", Table: "contact", Filtering: cols, Image: cols},
		dataversetest.WebhookStep{Message: "Delete", Table: "contact", Image: cols}); err != nil {
		t.Fatal(err)
	}
	s.Seed("accounts", account, map[string]any{"name": "Contoso"})
	send := func(method, path, body string) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+dataverse.APIPath+"/"+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("%s %s: %v %v", method, path, err, resp)
		}
		resp.Body.Close()
	}
	send(http.MethodPost, "contacts", `{"contactid":"`+contact+`","firstname":"Avery","lastname":"Quinn","parentcustomerid_account@odata.bind":"/accounts(`+account+`)"}`)
	send(http.MethodPatch, "contacts("+contact+")?tag=notatcompany", `{"nac_orgchangestatus":1}`)
	s.InjectWebhookFaults(dataversetest.WebhookFaults{Oversize: 1})
	send(http.MethodPatch, "contacts("+contact+")", `{"jobtitle":"Buyer"}`)
	send(http.MethodDelete, "contacts("+contact+")", "")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitWebhooks(ctx); err != nil {
		t.Fatal(err)
	}
	d := s.Deliveries()
	if len(d) != 4 {
		t.Fatalf("%d deliveries, want 4", len(d))
	}
	var changes []*eventsv1.CrmChange
	for i, dl := range d {
		ch, err := remotecontext.Parse(dl.Body, remotecontext.Options{SizeExceeded: dl.Header.Get("x-ms-dynamics-msg-size-exceeded") != "", ReceivedAt: time.Now()})
		if err != nil {
			t.Fatalf("delivery %d (%s) does not parse: %v\n%s", i, dl.Message, err, dl.Body)
		}
		if ch.GetOrganizationId() != s.Identity().OrganizationID || ch.GetTable() != "contact" || ch.GetRowId() != contact {
			t.Errorf("delivery %d: org %s table %s row %s", i, ch.GetOrganizationId(), ch.GetTable(), ch.GetRowId())
		}
		changes = append(changes, ch)
	}
	create, flag, big, del := changes[0], changes[1], changes[2], changes[3]
	if create.GetOperation() != eventsv1.Operation_OPERATION_CREATE || create.GetColumns()["firstname"].GetString_() != "Avery" ||
		create.GetColumns()["parentcustomerid"].GetReference().GetTable() != "account" || create.GetColumns()["parentcustomerid"].GetReference().GetId() != account {
		t.Errorf("create: %v", create)
	}
	if create.GetColumns()["ownerid"].GetReference().GetTable() != "systemuser" {
		t.Errorf("create owner: %v", create.GetColumns()["ownerid"])
	}
	if flag.GetOperation() != eventsv1.Operation_OPERATION_UPDATE || flag.GetTag() != "notatcompany" ||
		flag.GetColumns()["nac_orgchangestatus"].GetChoice() != 1 || !slices.Contains(flag.GetChangedColumns(), "nac_orgchangestatus") ||
		slices.Contains(flag.GetChangedColumns(), "firstname") || flag.GetRowModifiedAt() == nil {
		t.Errorf("flag update: %v", flag)
	}
	if flag.GetColumns()["lastname"].GetString_() != "Quinn" {
		t.Errorf("the post-image's columns are not in the change: %v", flag.GetColumns())
	}
	if !big.GetReadBackRequired() || len(big.GetColumns()) != 0 {
		t.Errorf("oversize: %v", big)
	}
	if del.GetOperation() != eventsv1.Operation_OPERATION_DELETE || del.GetColumns()["lastname"].GetString_() != "Quinn" {
		t.Errorf("delete: %v", del)
	}
	if create.GetEventId() == flag.GetEventId() {
		t.Error("two operations share an event id")
	}
}
