package validator

import (
	"fmt"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

// BenchmarkEvaluateSteadyState is BenchmarkEvaluateSingleContact once every
// contact has been evaluated before (its evaluation kept): a contact change
// that changes no outcome. msgs/evaluation counts what the validator sent
// to NATS for it; kv_writes/evaluation the messages stored in the
// evaluations bucket (none when the outcome is the same).
func BenchmarkEvaluateSteadyState(b *testing.B) {
	const contacts = 2000
	e := newBenchEnv(b, contacts)
	change := func(i int) {
		id := benchContact(i%contacts + 1)
		data, _ := proto.Marshal(&eventsv1.CrmChange{
			EventId: fmt.Sprint("c", i), OrganizationId: benchOrg, Table: "contact", RowId: id,
			Operation: eventsv1.Operation_OPERATION_UPDATE, RowModifiedAt: timestamppb.New(time.Unix(int64(100+i), 0)),
			Columns: map[string]*eventsv1.Value{"jobtitle": strV(fmt.Sprint("Title ", i))},
		})
		if err := e.svc.HandleCRM(e.ctx, &testkit.Msg{Subj: bus.CRMSubject(benchOrg, "contact", id), Payload: data}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range contacts {
		change(i)
	}
	stored := func() uint64 {
		s, err := e.js.Stream(e.ctx, "KV_nac_evaluations")
		if err != nil {
			return 0 // no such bucket: nothing kept
		}
		info, err := s.Info(e.ctx)
		if err != nil {
			b.Fatal(err)
		}
		return info.State.LastSeq
	}
	nc := e.js.Conn()
	sentBefore, storedBefore := nc.Stats().OutMsgs, stored()
	i := contacts
	for b.Loop() {
		i++
		change(i)
	}
	b.ReportMetric(float64(nc.Stats().OutMsgs-sentBefore)/float64(b.N), "msgs/evaluation")
	b.ReportMetric(float64(stored()-storedBefore)/float64(b.N), "kv_writes/evaluation")
}
