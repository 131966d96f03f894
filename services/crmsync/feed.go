package crmsync

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// publishChunk bounds the changes awaiting their acknowledgement at once.
const publishChunk = 500

// feed publishes a page's rows and deletes as CRM changes, once the
// validator has room for them, then compares each contact's flag with our
// last decision.
func (j *job) feed(ctx context.Context, table string, page *dataverse.Page, link string) error {
	now := j.s.now()
	changes := make([]*eventsv1.CrmChange, 0, len(page.Rows)+len(page.Deleted))
	infos := make([]rowInfo, 0, len(page.Rows))
	for _, row := range page.Rows {
		ch, info, err := changeOf(j.org, table, row, j.s.cfg.Columns, now, MessageSync, "")
		if err != nil {
			// A row without an id cannot be a change of anything.
			j.s.log.Warn("row skipped", "org", j.org, "table", table, "err", err)
			continue
		}
		changes = append(changes, ch)
		infos = append(infos, info)
	}
	for _, id := range page.Deleted {
		changes = append(changes, deleteOf(j.org, table, id, link, now))
	}
	for start := 0; start < len(changes); start += publishChunk {
		if err := j.waitForValidator(ctx); err != nil {
			return err
		}
		chunk := changes[start:min(start+publishChunk, len(changes))]
		seqs, err := j.s.publishChanges(ctx, chunk)
		if err != nil {
			return err
		}
		j.st.EventsPublished += len(chunk)
		j.s.m.published.WithLabelValues(table).Add(float64(len(chunk)))
		if table == "contact" {
			for i, seq := range seqs {
				if chunk[i].GetOperation() != eventsv1.Operation_OPERATION_DELETE {
					j.contactSeqs = append(j.contactSeqs, seq)
				}
			}
		}
	}
	if table != "contact" {
		return nil
	}
	if info := j.s.consumerInfo(ctx, bus.StreamDecisions, bus.ConsumerWriter); info != nil {
		j.writerFloor = info.AckFloor.Stream
	}
	for i, row := range page.Rows {
		if i < len(infos) {
			if err := j.drift(ctx, row, infos[i], "sweep"); err != nil {
				return err
			}
		}
	}
	return nil
}

// publishChanges stores changes on their subjects, deduplicated by event
// id, and returns their stream sequences once every one is stored.
func (s *Service) publishChanges(ctx context.Context, changes []*eventsv1.CrmChange) ([]uint64, error) {
	futures := make([]jetstream.PubAckFuture, len(changes))
	for i, ch := range changes {
		data, err := proto.Marshal(ch)
		if err != nil {
			return nil, fmt.Errorf("encode change: %w", err)
		}
		msg := &nats.Msg{Subject: bus.CRMSubject(ch.GetOrganizationId(), ch.GetTable(), ch.GetRowId()), Data: data}
		if futures[i], err = s.js.PublishMsgAsync(msg, jetstream.WithMsgID(ch.GetEventId())); err != nil {
			return nil, fmt.Errorf("publish %s: %w", ch.GetEventId(), err)
		}
	}
	seqs := make([]uint64, len(changes))
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for i, f := range futures {
		select {
		case ack := <-f.Ok():
			seqs[i] = ack.Sequence
		case err := <-f.Err():
			return nil, fmt.Errorf("publish %s: %w", changes[i].GetEventId(), err)
		case <-timeout.C:
			return nil, errors.New("publishing changes: JetStream did not acknowledge in time")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return seqs, nil
}

// waitForValidator waits while more CRM changes than MaxLag wait for the
// validator: a back-fill goes at the validator's pace, and a live webhook
// is never more than MaxLag changes behind it.
func (j *job) waitForValidator(ctx context.Context) error {
	waited := false
	for {
		info := j.s.consumerInfo(ctx, bus.StreamCRM, bus.ConsumerValidatorCRM)
		if info == nil || int(info.NumPending)+info.NumAckPending <= j.s.cfg.MaxLag {
			return nil
		}
		if !waited {
			j.s.m.lagWaits.Inc()
			waited = true
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
		if err := j.save(ctx, false); err != nil {
			return err
		}
	}
}

// save stores the job's progress (at most every second unless forced),
// which is also its heartbeat; errLostClaim when another replica took it.
func (j *job) save(ctx context.Context, force bool) error {
	now := j.s.now()
	if !force && now.Sub(j.lastSave) < time.Second {
		return nil
	}
	j.lastSave = now
	if info := j.s.consumerInfo(ctx, bus.StreamCRM, bus.ConsumerValidatorCRM); info != nil {
		floor := info.AckFloor.Stream
		j.st.ContactsEvaluated = sort.Search(len(j.contactSeqs), func(i int) bool { return j.contactSeqs[i] > floor })
	}
	if info := j.s.consumerInfo(ctx, bus.StreamDecisions, bus.ConsumerWriter); info != nil {
		j.st.FlagsToWrite = int(info.NumPending) + info.NumAckPending
	}
	j.st.Heartbeat = now.UnixMilli()
	for {
		rev, ok, err := j.s.jobs.put(ctx, j.org, j.st, j.rev)
		if err != nil {
			return err
		}
		if ok {
			j.rev = rev
			return nil
		}
		// Changed meanwhile: by another replica taking the job over, or by
		// a settings change recording the switch beside our job (which
		// happens right after the request that started it). Only the
		// former ends the job; the switch is taken over.
		cur, curRev, _, err := j.s.jobs.get(ctx, j.org)
		if err != nil {
			return err
		}
		if cur.JobID != j.st.JobID || cur.Owner != j.st.Owner {
			return errLostClaim
		}
		j.st.DataValidation, j.rev = cur.DataValidation, curRev
	}
}

// storedLink is a table's delta link in bus.BucketSyncLinks.
type storedLink struct {
	Link    string `json:"link"`
	Select  string `json:"select"` // a token is only good for the same $select
	SavedAt int64  `json:"savedAt"`
}

func linkKey(org, table string) string { return bus.Token(org) + "." + table }

func (s *Service) link(ctx context.Context, org, table string) (storedLink, bool, error) {
	e, err := s.links.Get(ctx, linkKey(org, table))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return storedLink{}, false, nil
	}
	if err != nil {
		return storedLink{}, false, fmt.Errorf("read delta link: %w", err)
	}
	var l storedLink
	if err := json.Unmarshal(e.Value(), &l); err != nil {
		return storedLink{}, false, nil // unreadable: read in full
	}
	return l, true, nil
}

func (s *Service) storeLink(ctx context.Context, org, table string, l storedLink) error {
	b, _ := json.Marshal(l)
	if _, err := s.links.Put(ctx, linkKey(org, table), b); err != nil {
		return fmt.Errorf("store delta link: %w", err)
	}
	return nil
}
