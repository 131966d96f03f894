package ingest

import (
	"context"
	"net/http"
	"testing"

	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
)

// fakeJobs has a job for contactOrg only.
type fakeJobs struct{}

func (fakeJobs) Status(_ context.Context, org string) (syncjobs.Status, bool, error) {
	if org != contactOrg {
		return syncjobs.Status{}, false, nil
	}
	return syncjobs.Status{JobID: "backfill-1", Kind: syncjobs.KindBackfill, State: syncjobs.StateRunning, EventsPublished: 12,
		Tables: []syncjobs.Table{{Name: "contact", Mode: "full", Rows: 10, Pages: 1, Total: 40}}}, true, nil
}

func withAdminAPI(f *fixture) {
	f.svc.admin = fakeAdmin{}
	f.svc.syncStatus = fakeJobs{}
	f.h = f.svc.Routes()
}

func TestOpenAPIConformanceSyncAdmin(t *testing.T) {
	t.Parallel()
	_, router := loadSpec(t)
	tokens := func(c *Config) { c.AdminTokens = []string{testAdminToken} }
	other := "5f0c7f10-0000-4000-8000-00000000000b"
	for _, c := range []specCase{
		{name: "backfill", cfg: tokens, prepare: withAdminAPI, method: http.MethodPost, target: "/admin/orgs/" + contactOrg + "/backfill",
			header: adminAuth(), status: http.StatusAccepted},
		{name: "sweep", cfg: tokens, prepare: withAdminAPI, method: http.MethodPost, target: "/admin/orgs/" + contactOrg + "/sync",
			header: adminAuth(), status: http.StatusAccepted},
		{name: "backfill unauthorized", cfg: tokens, prepare: withAdminAPI, method: http.MethodPost, target: "/admin/orgs/" + contactOrg + "/backfill",
			status: http.StatusUnauthorized},
		{name: "backfill JetStream down", cfg: tokens, prepare: withAdminAPI, failPublish: true, method: http.MethodPost,
			target: "/admin/orgs/" + contactOrg + "/backfill", header: adminAuth(), status: http.StatusServiceUnavailable},
		{name: "sync status", cfg: tokens, prepare: withAdminAPI, method: http.MethodGet, target: "/admin/orgs/" + contactOrg + "/sync-status",
			header: adminAuth(), status: http.StatusOK},
		{name: "sync status none yet", cfg: tokens, prepare: withAdminAPI, method: http.MethodGet, target: "/admin/orgs/" + other + "/sync-status",
			header: adminAuth(), status: http.StatusNotFound},
		{name: "settings with the override rule", cfg: tokens, prepare: withAdminAPI, method: http.MethodPut, target: "/admin/orgs/" + contactOrg + "/settings",
			contentType: "application/json", body: []byte(`{"dataValidation":true,"keepPersonOverride":true}`), header: adminAuth(), status: http.StatusAccepted},
	} {
		t.Run(c.name, func(t *testing.T) { checkAgainstSpec(t, router, c) })
	}
}

func TestBackfillRequestIsPublishedForTheSyncWorkers(t *testing.T) {
	t.Parallel()
	f := adminFixture(t)
	withAdminAPI(f)
	rec := f.do(t, http.MethodPost, "/admin/orgs/"+contactOrg+"/backfill", "", nil, adminAuth())
	if rec.Code != http.StatusAccepted {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	msgs := f.pub.stored()
	if len(msgs) != 1 || msgs[0].subject != bus.SyncRequestSubject(contactOrg) {
		t.Fatalf("published %+v, want one request on %s", msgs, bus.SyncRequestSubject(contactOrg))
	}
	var req eventsv1.SyncRequest
	if err := proto.Unmarshal(msgs[0].data, &req); err != nil {
		t.Fatal(err)
	}
	if req.GetKind() != syncjobs.KindBackfill || req.GetOrganizationId() != contactOrg || req.GetRequestId() == "" || msgs[0].msgID != req.GetRequestId() {
		t.Errorf("request %+v (msg id %q)", &req, msgs[0].msgID)
	}
}
