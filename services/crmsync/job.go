package crmsync

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/syncjobs"
)

// tableOrder is the order tables are read in: a contact is evaluated when
// its row arrives, so the users, accounts, opportunities and connections
// that decide its scope are read before it.
var tableOrder = []string{"systemuser", "account", "opportunity", "connection", "contact"}

// job is one run of a back-fill, sweep or enable job of an organization.
type job struct {
	s        *Service
	org      string
	t        *Target
	st       syncjobs.Status
	rev      uint64
	lastSave time.Time

	dvOn, keep bool
	appUser    string
	decisions  map[string]decisionRef
	rewritten  map[string]bool
	// contactSeqs are the stream sequences of the contact changes
	// published, in order: those at or below the validator's ack floor
	// are evaluated.
	contactSeqs []uint64
	writerFloor uint64
}

// run runs the job to its end and records the outcome.
func (s *Service) run(ctx context.Context, org string, st syncjobs.Status, rev uint64) {
	j := &job{s: s, org: org, t: s.d.Targets(org), st: st, rev: rev,
		decisions: map[string]decisionRef{}, rewritten: map[string]bool{}}
	err := j.run(ctx)
	if errors.Is(err, errLostClaim) {
		s.log.Info("sync job handed over: a newer claim of the organization replaced it", "org", org, "job", st.JobID)
		return
	}
	if err != nil && ctx.Err() != nil {
		// The process is stopping (a rolling deploy): the job stays running
		// with its last heartbeat, so the next replica resumes it once stale,
		// instead of a failed job and its alert on every deploy.
		s.log.Info("sync job interrupted by shutdown; resumed once its heartbeat is stale", "org", org, "job", st.JobID, "kind", st.Kind)
		return
	}
	j.st.FinishedAt, j.st.State = s.now().UnixMilli(), syncjobs.StateDone
	outcome := "done"
	if err != nil {
		j.st.State, j.st.Error, outcome = syncjobs.StateFailed, err.Error(), "failed"
		s.log.Error("sync job failed", "org", org, "job", st.JobID, "kind", st.Kind, "err", err)
	} else {
		j.st.LastOKAt = j.st.FinishedAt
		s.log.Info("sync job done", "org", org, "job", st.JobID, "kind", st.Kind, "events", j.st.EventsPublished,
			"requests", j.st.Requests, "rewritten", j.st.DecisionsRewritten, "overrides", j.st.Overrides)
	}
	s.m.jobs.WithLabelValues(st.Kind, outcome).Inc()
	// Stored even when the job's own context ended: the outcome is known.
	if err := j.save(context.WithoutCancel(ctx), true); err != nil && !errors.Is(err, errLostClaim) {
		s.log.Error("storing the sync job's outcome failed", "org", org, "err", err)
	}
}

func (j *job) run(ctx context.Context) error {
	if j.t == nil {
		return errors.New("no Dataverse environment is configured for the organization (dry run)")
	}
	if j.st.Kind == syncjobs.KindEnable {
		if err := j.waitSwitchedOn(ctx); err != nil {
			return err
		}
	}
	settings, _, err := j.s.orgs.Settings(ctx, j.org)
	if err != nil {
		return err
	}
	j.dvOn, j.keep = settings.DataValidation, settings.KeepPersonOverride
	if err := j.whoAmI(ctx); err != nil {
		return err
	}
	totals := j.totals(ctx)
	for _, table := range tableOrder {
		j.st.Tables = append(j.st.Tables, syncjobs.Table{Name: table, Total: totals[table]})
	}
	// The decisions already made: written again when switching on, and
	// what the flag column is compared with.
	if err := j.loadDecisions(ctx, j.st.Kind == syncjobs.KindEnable && j.dvOn); err != nil {
		return err
	}
	for i, table := range tableOrder {
		if err := j.readTable(ctx, i, table, j.st.Kind != syncjobs.KindSweep); err != nil {
			return fmt.Errorf("read %s: %w", table, err)
		}
	}
	return j.waitEvaluated(ctx, j.s.evaluationWait)
}

// waitSwitchedOn waits until the validator applied the settings change
// that switched data validation on (the writer reads the switch there).
func (j *job) waitSwitchedOn(ctx context.Context) error {
	deadline := j.s.now().Add(2 * time.Minute)
	for {
		on, err := j.s.orgs.DataValidation(ctx, j.org)
		if err != nil || on {
			return err
		}
		if j.s.now().After(deadline) {
			return errors.New("data validation is not switched on for the organization")
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
		if err := j.save(ctx, false); err != nil {
			return err
		}
	}
}

func (j *job) whoAmI(ctx context.Context) error {
	var out struct {
		UserID string `json:"UserId"`
	}
	res, err := dataverse.Operation("WhoAmI")
	if err != nil {
		return err
	}
	if err := j.call(ctx, func() error { return j.t.Reader.Get(ctx, res, nil, nil, &out) }); err != nil {
		return fmt.Errorf("WhoAmI: %w", err)
	}
	j.appUser = strings.ToLower(out.UserID)
	return nil
}

// totals are the tables' row counts, for the progress and its estimate;
// a failure leaves them unknown.
func (j *job) totals(ctx context.Context) map[string]int {
	var counts map[string]int
	err := j.call(ctx, func() error {
		var err error
		counts, err = j.t.Reader.TotalRecordCounts(ctx, tableOrder...)
		return err
	})
	if err != nil {
		j.s.log.Warn("row counts unavailable; progress without an estimate", "org", j.org, "err", err)
	}
	return counts
}

// readTable reads a table to its end: a delta read from the stored link,
// or in full (with change tracking, so the last page gives a new link; a
// table without tracking is paged in full every time, and says so).
func (j *job) readTable(ctx context.Context, i int, table string, full bool) error {
	sel := selectOf(table, j.s.cfg.Columns)
	first := dataverse.PageQuery{EntitySet: entitySets[table], Select: sel, TrackChanges: true, PageSize: j.s.cfg.PageSize}
	q, mode := first, "full"
	if !full {
		switch l, ok, err := j.s.link(ctx, j.org, table); {
		case err != nil:
			return err
		case ok && l.Select == strings.Join(sel, ","):
			q.Link, mode = l.Link, "delta"
		default:
			j.s.m.resyncs.WithLabelValues(table, "no_link").Inc()
		}
	}
	j.st.Tables[i].Mode = mode
	for {
		var page *dataverse.Page
		err := j.call(ctx, func() error {
			var err error
			page, err = j.t.Reader.ReadPage(ctx, q)
			return err
		})
		switch {
		case errors.Is(err, dataverse.ErrTokenExpired) && mode == "delta":
			j.s.m.resyncs.WithLabelValues(table, "token_expired").Inc()
			j.s.log.Info("delta token expired; reading the table in full", "org", j.org, "table", table)
			q, mode = first, "full (token expired)"
			j.st.Tables[i].Mode = mode
			continue
		case errors.Is(err, dataverse.ErrNotTracked) && q.TrackChanges:
			j.s.m.resyncs.WithLabelValues(table, "untracked").Inc()
			j.s.log.Warn("change tracking is off for the table; reading it in full every time", "org", j.org, "table", table)
			q, mode = first, "full (change tracking off)"
			q.TrackChanges = false
			j.st.Tables[i].Mode = mode
			continue
		case err != nil:
			return err
		}
		metricMode := "full"
		if mode == "delta" {
			metricMode = "delta"
		}
		j.s.m.pages.WithLabelValues(table).Inc()
		j.s.m.rows.WithLabelValues(table, metricMode).Add(float64(len(page.Rows) + len(page.Deleted)))
		if err := j.feed(ctx, table, page, q.Link); err != nil {
			return err
		}
		tp := &j.st.Tables[i]
		tp.Pages++
		tp.Rows += len(page.Rows)
		tp.Deleted += len(page.Deleted)
		if page.NextLink != "" {
			q = dataverse.PageQuery{Link: page.NextLink, TrackChanges: q.TrackChanges, PageSize: j.s.cfg.PageSize}
			if err := j.save(ctx, false); err != nil {
				return err
			}
			continue
		}
		// Every event of the read is stored (feed waited for each
		// acknowledgement): only now is the link worth keeping.
		if page.DeltaLink != "" {
			if err := j.s.storeLink(ctx, j.org, table, storedLink{Link: page.DeltaLink, Select: strings.Join(sel, ","), SavedAt: j.s.now().UnixMilli()}); err != nil {
				return err
			}
		}
		tp.Done = true
		return j.save(ctx, true)
	}
}

// call makes one Dataverse request within the shared budget, retrying
// what retrying can mend (429, 5xx, timeouts) a few times.
func (j *job) call(ctx context.Context, f func() error) error {
	var err error
	for attempt := range 8 {
		release, aerr := j.t.Acquire(ctx, 1)
		if aerr != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			err = aerr // the answer if no attempt gets through
			// Paused after a 429, or the budget is spent for now.
			if err := sleep(ctx, time.Second); err != nil {
				return err
			}
			continue
		}
		j.st.Requests++
		err = f()
		release()
		var se *dataverse.StatusError
		if err == nil || !errors.As(err, &se) || !se.Transient() {
			return err
		}
		wait := max(se.RetryAfter, time.Duration(1<<attempt)*200*time.Millisecond)
		if err := sleep(ctx, wait); err != nil {
			return err
		}
	}
	return err
}

// waitEvaluated waits, for at most d, until the validator has applied
// every contact change the job published.
func (j *job) waitEvaluated(ctx context.Context, d time.Duration) error {
	deadline := j.s.now().Add(d)
	for {
		if err := j.save(ctx, true); err != nil {
			return err
		}
		if j.st.ContactsEvaluated >= len(j.contactSeqs) || j.s.now().After(deadline) {
			return nil
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// consumerInfo reads a durable consumer's state; nil when unavailable.
func (s *Service) consumerInfo(ctx context.Context, stream, name string) *jetstream.ConsumerInfo {
	c, err := s.js.Consumer(ctx, stream, name)
	if err != nil {
		return nil
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil
	}
	return info
}
