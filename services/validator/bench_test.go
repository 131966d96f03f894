package validator

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

const (
	benchOrg     = "b0b0b0b0-0000-4000-8000-000000000000"
	benchAccount = "acc0acc0-0000-4000-8000-000000000000"
	benchOwner   = "5e5e5e5e-0000-4000-8000-00000000beef"
)

// benchEnv is a validator over an embedded JetStream, with one account
// owned by a sync user and n contacts under it, a tenth of them matched to
// a member who left.
type benchEnv struct {
	svc *Service
	js  jetstream.JetStream
	ctx context.Context
}

func benchContact(i int) string { return fmt.Sprintf("c0c0c0c0-0000-4000-8000-%012d", i) }

func newBenchEnv(b *testing.B, contacts int) *benchEnv {
	b.Helper()
	js, _ := testkit.JetStream(b)
	ctx := context.Background()
	cfg := Config{FlagColumn: DefaultFlagColumn, Threshold: DefaultThreshold, Workers: 4, HandleTimeout: 20 * time.Second,
		InlineFanout: 200, ChunkSize: 500}
	svc, err := Open(ctx, cfg, js, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	e := &benchEnv{svc: svc, js: js, ctx: ctx}
	if _, _, err := svc.store.ApplySyncUser(ctx, &eventsv1.SyncUserChange{OrganizationId: benchOrg, UserId: benchOwner,
		Enabled: true, ChangedAt: timestamppb.New(time.Unix(1, 0))}); err != nil {
		b.Fatal(err)
	}
	e.apply(b, accountEvent("Contoso Ltd", 1))
	// Contacts and members in parallel: setup is not what is measured.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int(next.Add(1)); i <= contacts; i = int(next.Add(1)) {
				mail := fmt.Sprintf("person%d@contoso.com", i)
				if _, _, _, err := svc.store.ApplyChange(ctx, &eventsv1.CrmChange{
					OrganizationId: benchOrg, Table: "contact", RowId: benchContact(i), Operation: eventsv1.Operation_OPERATION_CREATE,
					RowModifiedAt: timestamppb.New(time.Unix(10, 0)),
					Columns: map[string]*eventsv1.Value{
						"firstname": strV("Person"), "lastname": strV(fmt.Sprint(i)), "emailaddress1": strV(mail),
						"parentcustomerid": refV("account", benchAccount), "statecode": choiceV(0),
					},
				}); err != nil {
					b.Error(err)
					return
				}
				if i%10 == 0 {
					if _, _, _, err := svc.store.ApplyProfile(ctx, &eventsv1.ProfileChange{
						EventId: fmt.Sprint("p", i), Source: "bench", MemberId: fmt.Sprint("m-", i),
						EmailSha256: []string{eventsv1.HashEmail(mail)}, ObservedAt: timestamppb.Now(),
						Positions: []*eventsv1.Position{
							{CompanyName: "Contoso", Start: ymP(2018, 1), End: ymP(2025, 6)},
							{CompanyName: "Fabrikam", Start: ymP(2025, 7), Current: true},
						},
					}); err != nil {
						b.Error(err)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	return e
}

func accountEvent(name string, version int64) *eventsv1.CrmChange {
	return &eventsv1.CrmChange{
		EventId: fmt.Sprint("account-", version), OrganizationId: benchOrg, Table: "account", RowId: benchAccount,
		Operation: eventsv1.Operation_OPERATION_UPDATE, RowModifiedAt: timestamppb.New(time.Unix(version, 0)),
		Columns: map[string]*eventsv1.Value{"name": strV(name), "ownerid": refV("systemuser", benchOwner)},
	}
}

func (e *benchEnv) apply(b *testing.B, ch *eventsv1.CrmChange) {
	b.Helper()
	data, _ := proto.Marshal(ch)
	if err := e.svc.HandleCRM(e.ctx, &testkit.Msg{Subj: bus.CRMSubject(ch.GetOrganizationId(), ch.GetTable(), ch.GetRowId()), Payload: data}); err != nil {
		b.Fatal(err)
	}
}

// drainWork handles the chunks in the work queue with workers, as the
// validator's work consumer does, until chunks holding want contacts are
// done (or a minute passed), and returns how many contacts they held.
func (e *benchEnv) drainWork(b *testing.B, workers, want int) int {
	b.Helper()
	cons, err := e.js.Consumer(e.ctx, bus.StreamWork, bus.ConsumerValidatorWork)
	if err != nil {
		b.Fatal(err)
	}
	var evaluated atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(time.Minute)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for evaluated.Load() < int64(want) && time.Now().Before(deadline) {
				// A chunk just published may not be deliverable at once;
				// short waits, so that the last chunk's wait adds little.
				batch, err := cons.Fetch(1, jetstream.FetchMaxWait(20*time.Millisecond))
				if err != nil {
					b.Error(err)
					return
				}
				for m := range batch.Messages() {
					var req eventsv1.EvaluateRequest
					_ = proto.Unmarshal(m.Data(), &req)
					if err := e.svc.HandleWork(e.ctx, m); err != nil {
						b.Error(err)
						return
					}
					_ = m.Ack()
					evaluated.Add(int64(len(req.GetContactIds())))
				}
			}
		}()
	}
	wg.Wait()
	return int(evaluated.Load())
}

func (e *benchEnv) kvBytes(b *testing.B, buckets ...string) uint64 {
	b.Helper()
	var total uint64
	for _, name := range buckets {
		s, err := e.js.Stream(e.ctx, "KV_"+name)
		if err != nil {
			b.Fatal(err)
		}
		info, err := s.Info(e.ctx)
		if err != nil {
			b.Fatal(err)
		}
		total += info.State.Bytes
	}
	return total
}

// BenchmarkEvaluateSingleContact: a contact change evaluates that contact.
func BenchmarkEvaluateSingleContact(b *testing.B) {
	const contacts = 2000
	e := newBenchEnv(b, contacts)
	i := 0
	start := time.Now()
	for b.Loop() {
		i++
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
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "evaluations/s")
	per := float64(e.kvBytes(b, bus.BucketContacts, bus.BucketIndex)) / contacts
	b.ReportMetric(per, "kv_bytes/contact")
}

// BenchmarkAccountFanout: renaming an account with 10,000 contacts
// re-evaluates every one of them through the work queue; no decision
// changes.
func BenchmarkAccountFanout(b *testing.B) {
	benchmarkFanout(b, func(version int64) string { return fmt.Sprintf("Contoso Ltd %d", version%2) })
}

// BenchmarkAccountFanoutFlips: the account of 10,000 contacts renamed to
// the company the leavers moved to and back, so that every tenth contact
// flips each time (1,000 decisions a fan-out).
func BenchmarkAccountFanoutFlips(b *testing.B) {
	benchmarkFanout(b, func(version int64) string { return []string{"Fabrikam", "Contoso Ltd"}[version%2] })
}

func benchmarkFanout(b *testing.B, name func(version int64) string) {
	const contacts = 10000
	e := newBenchEnv(b, contacts)
	version := int64(1)
	var elapsed, cpu time.Duration
	var sent, decided uint64
	nc := e.js.Conn()
	for b.Loop() {
		version++
		start, cpuStart, sentStart, decidedStart := time.Now(), processCPU(), nc.Stats().OutMsgs, e.decisionsStored(b)
		e.apply(b, accountEvent(name(version), version))
		if n := e.drainWork(b, 4, contacts); n != contacts {
			b.Fatalf("%d contacts evaluated, want %d", n, contacts)
		}
		elapsed, cpu = time.Since(start), processCPU()-cpuStart
		sent, decided = nc.Stats().OutMsgs-sentStart, e.decisionsStored(b)-decidedStart
	}
	b.ReportMetric(elapsed.Seconds(), "s/fanout")
	b.ReportMetric(cpu.Seconds(), "cpu_s/fanout")
	b.ReportMetric(float64(sent)/contacts, "msgs/contact")
	b.ReportMetric(float64(decided), "decisions/fanout")
	b.ReportMetric(contacts/elapsed.Seconds(), "evaluations/s")
	b.ReportMetric(elapsed.Seconds()/2, "x_of_2s_target")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkFlip is the flip path: a profile event moves a member away from
// the contact's company or back, which applies it, finds the contact,
// decides, seals the evidence, publishes the decision and its audit record
// and checks the state once more. Every iteration must publish one
// decision; msgs/flip counts what the validator sent to NATS for it.
func BenchmarkFlip(b *testing.B) {
	const contacts = 2000
	e := newBenchEnv(b, contacts)
	audit, err := e.js.Stream(e.ctx, bus.StreamAudit)
	if err != nil {
		b.Fatal(err)
	}
	auditsBefore := auditCount(b, e, audit)
	nc := e.js.Conn()
	sentBefore := nc.Stats().OutMsgs
	i := 0
	start, cpuStart := time.Now(), processCPU()
	for b.Loop() {
		i++
		member := (i%(contacts/10) + 1) * 10 // the contacts with a member
		left := (i/(contacts/10))%2 == 0     // the first round flags, the next clears
		positions := []*eventsv1.Position{{CompanyName: "Contoso", Start: ymP(2018, 1), Current: true}}
		if left {
			positions = []*eventsv1.Position{
				{CompanyName: "Contoso", Start: ymP(2018, 1), End: ymP(2025, 6)},
				{CompanyName: "Fabrikam", Start: ymP(2025, 7), Current: true},
			}
		}
		now := time.Now()
		data, _ := proto.Marshal(&eventsv1.ProfileChange{
			EventId: fmt.Sprint("flip-", i), Source: "bench", MemberId: fmt.Sprint("m-", member),
			EmailSha256: []string{eventsv1.HashEmail(fmt.Sprintf("person%d@contoso.com", member))},
			ObservedAt:  timestamppb.New(now), ReceivedAt: timestamppb.New(now), Positions: positions,
		})
		msg := &testkit.Msg{Subj: bus.ProfileMemberSubject(fmt.Sprint("m-", member)), Payload: data, Stored: now}
		if err := e.svc.HandleProfile(e.ctx, msg); err != nil {
			b.Fatal(err)
		}
	}
	elapsed, cpu := time.Since(start), processCPU()-cpuStart
	flips := auditCount(b, e, audit) - auditsBefore
	// The first round of the first contacts may find them flagged already
	// (their member left in the setup): one decision per flip after that.
	if int(flips) < b.N-contacts/10 {
		b.Fatalf("%d decisions for %d flips", flips, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "flips/s")
	b.ReportMetric(float64(nc.Stats().OutMsgs-sentBefore)/float64(b.N), "msgs/flip")
	b.ReportMetric(float64(flips)/float64(b.N), "decisions/flip")
	// The process's CPU (validator and embedded server together): on a
	// shared machine a steadier figure than the wall time.
	b.ReportMetric(cpu.Seconds()*1000/float64(b.N), "cpu_ms/flip")
}

// processCPU is the CPU time this process has used, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// decisionsStored is how many decisions the stream ever stored.
func (e *benchEnv) decisionsStored(b *testing.B) uint64 {
	b.Helper()
	s, err := e.js.Stream(e.ctx, bus.StreamDecisions)
	if err != nil {
		b.Fatal(err)
	}
	info, err := s.Info(e.ctx)
	if err != nil {
		b.Fatal(err)
	}
	return info.State.LastSeq
}

func auditCount(b *testing.B, e *benchEnv, audit jetstream.Stream) uint64 {
	b.Helper()
	info, err := audit.Info(e.ctx)
	if err != nil {
		b.Fatal(err)
	}
	return info.State.Msgs
}
