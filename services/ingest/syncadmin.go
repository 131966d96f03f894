package ingest

import (
	"context"
	"net/http"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/problem"
	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
)

// SyncStatusReader reads the sync jobs' states, as the sync workers keep them.
type SyncStatusReader interface {
	Status(ctx context.Context, org string) (syncjobs.Status, bool, error)
}

// SyncAccepted is the answer to a back-fill or sweep request.
type SyncAccepted struct {
	Outcome   string `json:"outcome"`
	RequestID string `json:"requestId"`
	Kind      string `json:"kind"`
	Status    string `json:"status"` // where its progress is
}

// requestSync asks the sync workers (in the writer) for a job of kind.
func (s *Service) requestSync(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ids, ok := guids(w, r, "org")
		if !ok {
			return
		}
		id := kind + "-" + uuid.NewString()
		req := &eventsv1.SyncRequest{RequestId: id, OrganizationId: ids[0], Kind: kind, RequestedAt: timestamppb.New(s.now())}
		data, err := proto.Marshal(req)
		if err != nil {
			problem.Write(w, r, problem.New(http.StatusInternalServerError, "internal", "encoding the request failed"))
			return
		}
		if !s.publish(w, r, "admin", bus.SyncRequestSubject(ids[0]), id, data) {
			return
		}
		writeJSON(w, http.StatusAccepted, SyncAccepted{Outcome: "accepted", RequestID: id, Kind: kind,
			Status: "/admin/orgs/" + ids[0] + "/sync-status"})
	}
}

func (s *Service) getSyncStatus(w http.ResponseWriter, r *http.Request) {
	ids, ok := guids(w, r, "org")
	if !ok {
		return
	}
	if s.syncStatus == nil {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "sync status is not available here"))
		return
	}
	st, found, err := s.syncStatus.Status(r.Context(), ids[0])
	if err != nil {
		s.unavailable(w, r, "read sync status", err)
		return
	}
	if !found {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "no back-fill or sweep has run for organization "+ids[0]))
		return
	}
	writeJSON(w, http.StatusOK, st)
}
