package writer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	eventsv1 "github.com/notatcompany/notatcompany/proto/notatcompany/events/v1"
	"github.com/notatcompany/notatcompany/services/shared/bus"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
	"github.com/notatcompany/notatcompany/services/shared/testkit"
)

const (
	notAt      = eventsv1.Flag_FLAG_NOT_AT_COMPANY
	noFeedback = eventsv1.Flag_FLAG_NO_FEEDBACK
	ignore     = eventsv1.Flag_FLAG_IGNORE
)

// wantWritten checks the audit record of a decision written with its value.
func wantWritten(t *testing.T, got map[string]auditRecord, d *eventsv1.Decision, attempts int) {
	t.Helper()
	r, ok := got[d.GetDecisionId()]
	if !ok {
		t.Errorf("no audit record for %s", d.GetDecisionId())
		return
	}
	o := r.outcome
	if r.subject != bus.AuditSubject("write", d.GetOrganizationId()) || r.msgID != "write."+d.GetDecisionId()+".written" {
		t.Errorf("%s: audit published to %s as %s", d.GetDecisionId(), r.subject, r.msgID)
	}
	if o.GetOutcome() != OutcomeWritten || o.GetHttpStatus() != 204 || o.GetAttempts() != int32(attempts) ||
		o.GetOrganizationId() != d.GetOrganizationId() || o.GetContactId() != d.GetContactId() ||
		o.GetValue() != d.GetValue() || o.GetError() != "" {
		t.Errorf("%s: outcome = %v, want written 204 after %d attempts", d.GetDecisionId(), o, attempts)
	}
	if o.GetLatency() == nil || o.GetLatency().AsDuration() <= 0 || o.GetRecordedAt() == nil {
		t.Errorf("%s: outcome without latency or time: %v", d.GetDecisionId(), o)
	}
}

// wantOutcome checks the outcome and HTTP status of a decision's record.
func wantOutcome(t *testing.T, got map[string]auditRecord, d *eventsv1.Decision, outcome string, status int32) *eventsv1.WriteOutcome {
	t.Helper()
	r, ok := got[d.GetDecisionId()]
	if !ok {
		t.Errorf("no audit record for %s", d.GetDecisionId())
		return &eventsv1.WriteOutcome{}
	}
	if r.outcome.GetOutcome() != outcome || r.outcome.GetHttpStatus() != status {
		t.Errorf("%s: outcome = %v, want %s %d", d.GetDecisionId(), r.outcome, outcome, status)
	}
	if r.msgID != "write."+d.GetDecisionId()+"."+outcome {
		t.Errorf("%s: audit msg id %s", d.GetDecisionId(), r.msgID)
	}
	return r.outcome
}

func TestBatchOfDecisionsIsOneRequest(t *testing.T) {
	t.Parallel()
	si := newStandin(t, dataversetest.Options{}, contact(1), contact(2), contact(3))
	cfg := testConfig()
	cfg.Default = si.target("")
	e := newEnv(t, cfg)
	now := time.Now()
	ds := []*eventsv1.Decision{
		decision("d1", orgA, contact(1), notAt, now),
		decision("d2", orgA, contact(2), noFeedback, now),
		decision("d3", orgA, contact(3), notAt, now),
	}
	ms := []*testkit.Msg{msgOf(t, ds[0], 1), msgOf(t, ds[1], 2), msgOf(t, ds[2], 3)}
	e.handle(ms...)

	reqs := si.apiRequests()
	if len(reqs) != 1 || reqs[0].method != http.MethodPost || !strings.HasSuffix(reqs[0].path, "/$batch") || reqs[0].status != 200 {
		t.Fatalf("API requests = %+v, want one $batch", reqs)
	}
	if got := si.Received(); len(got) != 3 {
		t.Errorf("stand-in received %d writes, want 3: %+v", len(got), got)
	}
	for _, d := range ds {
		if got := si.flag(t, d.GetContactId()); got != float64(d.GetValue()) {
			t.Errorf("flag of %s = %v, want %d", d.GetContactId(), got, d.GetValue())
		}
	}
	wantAcked(t, ms...)
	got := e.pub.outcomes(t)
	if len(got) != 3 {
		t.Errorf("%d audit records, want 3", len(got))
	}
	for i, d := range ds {
		wantWritten(t, got, d, i+1)
	}
	if n := e.writes(OutcomeWritten, "2xx"); n != 3 {
		t.Errorf("writes{written,2xx} = %v, want 3", n)
	}
	if len(e.pub.deadLetters()) != 0 {
		t.Errorf("dead letters: %v", e.pub.deadLetters())
	}
	e.lint()
}

func TestBatchSize(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		size     int
		method   string
		requests int
	}{
		{size: 1, method: http.MethodPatch, requests: 3}, // one PATCH per decision
		{size: 2, method: http.MethodPost, requests: 2},  // $batch of 2, then of 1
	} {
		t.Run(strconv.Itoa(tc.size), func(t *testing.T) {
			si := newStandin(t, dataversetest.Options{}, contact(1), contact(2), contact(3))
			cfg := testConfig()
			cfg.BatchSize = tc.size
			cfg.Default = si.target("")
			e := newEnv(t, cfg)
			var ms []*testkit.Msg
			var ds []*eventsv1.Decision
			for i := 1; i <= 3; i++ {
				d := decision("d"+strconv.Itoa(i), orgA, contact(i), notAt, time.Now())
				ds = append(ds, d)
				ms = append(ms, msgOf(t, d, 1))
			}
			e.handle(ms...)
			reqs := si.apiRequests()
			if len(reqs) != tc.requests {
				t.Fatalf("%d API requests, want %d: %+v", len(reqs), tc.requests, reqs)
			}
			// The order within a batch is not kept (nor need it be: a
			// contact is written at most once per batch).
			var gotReqs, wantReqs []string
			for i, r := range reqs {
				gotReqs = append(gotReqs, r.method+" "+r.path)
				wantPath := dataverse.APIPath + "/$batch"
				if tc.size == 1 {
					wantPath = dataverse.APIPath + "/contacts(" + contact(i+1) + ")"
				}
				wantReqs = append(wantReqs, tc.method+" "+wantPath)
			}
			slices.Sort(gotReqs)
			if !slices.Equal(gotReqs, wantReqs) {
				t.Errorf("requests = %q, want %q", gotReqs, wantReqs)
			}
			if got := si.Received(); len(got) != 3 {
				t.Errorf("stand-in received %d writes, want 3", len(got))
			}
			wantAcked(t, ms...)
			got := e.pub.outcomes(t)
			for _, d := range ds {
				wantWritten(t, got, d, 1)
				if f := si.flag(t, d.GetContactId()); f != float64(1) {
					t.Errorf("flag of %s = %v", d.GetContactId(), f)
				}
			}
		})
	}
}

func TestPartsOfABatchSettleOnTheirOwn(t *testing.T) {
	t.Parallel()
	si := newStandin(t, dataversetest.Options{}, contact(1), contact(3))
	cfg := testConfig()
	cfg.Default = si.target("")
	e := newEnv(t, cfg)
	d1 := decision("d1", orgA, contact(1), notAt, time.Now())
	dx := decision("dx", orgA, unknownContact, notAt, time.Now())
	d3 := decision("d3", orgA, contact(3), notAt, time.Now())
	ms := []*testkit.Msg{msgOf(t, d1, 1), msgOf(t, dx, 1), msgOf(t, d3, 1)}
	e.handle(ms...)

	if reqs := si.apiRequests(); len(reqs) != 1 {
		t.Errorf("%d API requests, want one $batch", len(reqs))
	}
	wantAcked(t, ms...)
	got := e.pub.outcomes(t)
	wantWritten(t, got, d1, 1)
	wantWritten(t, got, d3, 1)
	if o := wantOutcome(t, got, dx, OutcomeObsolete, 404); o.GetError() == "" {
		t.Errorf("obsolete outcome without the error: %v", o)
	}
	// If-Match: * kept the write from creating the contact.
	if row, ok := si.Row("contacts", unknownContact); ok {
		t.Errorf("the write created the unknown contact: %v", row)
	}
	if got := si.Received(); len(got) != 2 {
		t.Errorf("stand-in applied %d writes, want 2: %+v", len(got), got)
	}
	if n := e.writes(OutcomeObsolete, "4xx"); n != 1 {
		t.Errorf("writes{obsolete,4xx} = %v", n)
	}
	if len(e.pub.deadLetters()) != 0 {
		t.Error("an obsolete decision was dead-lettered")
	}
}

func TestOnlyTheLatestDecisionForAContactIsWritten(t *testing.T) {
	t.Parallel()
	for _, laterFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("later first %v", laterFirst), func(t *testing.T) {
			si := newStandin(t, dataversetest.Options{}, contact(1), contact(2))
			cfg := testConfig()
			cfg.Default = si.target("")
			e := newEnv(t, cfg)
			t0 := time.Now().Add(-time.Minute)
			older := decision("old", orgA, contact(1), notAt, t0)
			later := decision("new", orgA, contact(1), noFeedback, t0.Add(time.Second))
			other := decision("other", orgA, contact(2), notAt, t0)
			mOld, mNew, mOther := msgOf(t, older, 1), msgOf(t, later, 1), msgOf(t, other, 1)
			if laterFirst {
				e.handle(mNew, mOther, mOld)
			} else {
				e.handle(mOld, mOther, mNew)
			}
			var forContact int
			for _, r := range si.Received() {
				if r.ID == contact(1) {
					forContact++
				}
			}
			if forContact != 1 {
				t.Errorf("%d writes of the contact, want 1", forContact)
			}
			if f := si.flag(t, contact(1)); f != float64(noFeedback) {
				t.Errorf("flag = %v, want the later decision's %d", f, noFeedback)
			}
			if f := si.flag(t, contact(2)); f != float64(notAt) {
				t.Errorf("other contact's flag = %v", f)
			}
			wantAcked(t, mOld, mNew, mOther)
			got := e.pub.outcomes(t)
			wantWritten(t, got, later, 1)
			wantWritten(t, got, other, 1)
			if o := wantOutcome(t, got, older, OutcomeSuperseded, 0); o.GetAttempts() != 1 || o.GetValue() != notAt {
				t.Errorf("superseded outcome = %v", o)
			}
			if n := testutil.ToFloat64(e.svc.metrics.superseded); n != 1 {
				t.Errorf("nac_writer_superseded_total = %v, want 1", n)
			}
		})
	}
}

func TestNothingSentWhenNothingToWrite(t *testing.T) {
	t.Parallel()
	si := newStandin(t, dataversetest.Options{}, contact(1))
	siB := newStandin(t, dataversetest.Options{}, contact(2))
	cfg := testConfig()
	cfg.Default = si.target("")
	disabled := siB.target(orgB)
	disabled.Disabled = true
	cfg.Targets = []TargetConfig{disabled, {OrganizationID: orgC}} // orgC: dry run
	e := newEnv(t, cfg)
	if tg := e.svc.targets.For(orgC); tg.Dataverse != nil || tg.Disabled {
		t.Fatalf("orgC target = %+v, want a dry run", tg)
	}

	skip := decision("skip", orgA, contact(1), ignore, time.Now())
	off := decision("off", orgB, contact(2), notAt, time.Now())
	dry := decision("dry", orgC, contact(3), notAt, time.Now())
	ms := []*testkit.Msg{msgOf(t, skip, 1), msgOf(t, off, 1), msgOf(t, dry, 1)}
	e.handle(ms...)

	for name, s := range map[string]*standin{"default": si, "disabled": siB} {
		if n := len(s.apiRequests()); n != 0 || s.TokensIssued() != 0 {
			t.Errorf("%s stand-in: %d API requests, %d tokens; want nothing sent", name, n, s.TokensIssued())
		}
	}
	if f := si.flag(t, contact(1)); f != unset {
		t.Errorf("flag after Ignore = %v", f)
	}
	wantAcked(t, ms...)
	got := e.pub.outcomes(t)
	wantOutcome(t, got, skip, OutcomeSkipped, 0)
	wantOutcome(t, got, off, OutcomeDisabled, 0)
	wantOutcome(t, got, dry, OutcomeWouldWrite, 0)
	for _, o := range []string{OutcomeSkipped, OutcomeDisabled, OutcomeWouldWrite} {
		if n := e.writes(o, "none"); n != 1 {
			t.Errorf("writes{%s,none} = %v, want 1", o, n)
		}
	}
}

// TestRetryAfter: a 429 pauses its organization for the Retry-After it
// names, measured on the stand-in's clock, while another organization keeps
// writing.
func TestRetryAfter(t *testing.T) {
	t.Parallel()
	const retryAfter = 2 * time.Second
	siA := newStandin(t, dataversetest.Options{}, contact(1), contact(2), contact(3))
	siB := newStandin(t, dataversetest.Options{}, contact(4))
	cfg := testConfig()
	cfg.Default = siA.target("")
	cfg.Targets = []TargetConfig{siB.target(orgB)}
	e := newEnv(t, cfg)
	siA.Inject(dataversetest.Fault{Status: http.StatusTooManyRequests, RetryAfter: retryAfter, Count: 1})

	d1 := decision("d1", orgA, contact(1), notAt, time.Now())
	d2 := decision("d2", orgA, contact(2), notAt, time.Now())
	first := []*testkit.Msg{msgOf(t, d1, 1), msgOf(t, d2, 1)}
	e.handle(first...)

	reqs := siA.apiRequests()
	if len(reqs) != 1 || reqs[0].status != http.StatusTooManyRequests || siA.Throttled() != 1 {
		t.Fatalf("API requests = %+v, want one answered 429", reqs)
	}
	throttledAt := reqs[0].end // when the 429 left the stand-in
	// Never before the block ends (less what already passed), at most a fifth later.
	wantNaked(t, retryAfter*9/10, retryAfter*12/10, first...)
	if n := len(e.pub.auditRecords()); n != 0 {
		t.Errorf("%d audit records for throttled decisions", n)
	}
	thA, thB := e.svc.targets.For(orgA).Throttle, e.svc.targets.For(orgB).Throttle
	if thA.Blocked() <= 0 || thA.Blocked() > retryAfter {
		t.Errorf("org A blocked for %s, want up to %s", thA.Blocked(), retryAfter)
	}

	// Right after, the same organization is not even asked.
	d3 := decision("d3", orgA, contact(3), notAt, time.Now())
	second := []*testkit.Msg{msgOf(t, d3, 1)}
	e.handle(second...)
	if n := len(siA.apiRequests()); n != 1 {
		t.Errorf("%d API requests while throttled, want none after the 429", n-1)
	}
	wantNaked(t, time.Millisecond, retryAfter*12/10, second...)
	if n := testutil.ToFloat64(e.svc.metrics.throttled.WithLabelValues("retry_after")); n != 3 {
		t.Errorf("throttled{retry_after} = %v, want 3", n)
	}

	// The other organization keeps writing meanwhile.
	d4 := decision("d4", orgB, contact(4), notAt, time.Now())
	mB := msgOf(t, d4, 1)
	e.handle(mB)
	wantAcked(t, mB)
	if thB.Blocked() != 0 {
		t.Errorf("org B blocked for %s", thB.Blocked())
	}
	if got := siB.Received(); len(got) != 1 || got[0].ID != contact(4) || !got[0].At.Before(throttledAt.Add(retryAfter)) {
		t.Errorf("org B writes = %+v, want one while org A is throttled", got)
	}
	if thA.Blocked() <= 0 {
		t.Fatal("org A no longer blocked: the test was too slow to show anything")
	}

	// The redelivered decisions are written once the pause is over.
	final := e.redeliver(append(first, second...), 10*time.Second)
	wantAcked(t, final...)
	got := e.pub.outcomes(t)
	for i, d := range []*eventsv1.Decision{d1, d2, d3} {
		if o := got[d.GetDecisionId()].outcome; o.GetOutcome() != OutcomeWritten || o.GetAttempts() != int32(final[i].Delivered) || final[i].Delivered < 2 {
			t.Errorf("%s: outcome %v after %d deliveries", d.GetDecisionId(), o, final[i].Delivered)
		}
	}
	writes := siA.Received()
	if len(writes) != 3 {
		t.Fatalf("org A writes = %+v, want 3", writes)
	}
	for _, w := range writes {
		if w.At.Before(throttledAt.Add(retryAfter)) {
			t.Errorf("write of %s at %s, only %s after the 429 with Retry-After %s", w.ID, w.At, w.At.Sub(throttledAt), retryAfter)
		}
	}
	for _, r := range siA.apiRequests()[1:] {
		if r.start.Before(throttledAt.Add(retryAfter)) {
			t.Errorf("request %s %s %s after the 429", r.method, r.path, r.start.Sub(throttledAt))
		}
	}
	if siA.Throttled() != 1 {
		t.Errorf("stand-in answered %d 429s, want 1", siA.Throttled())
	}
	e.lint()
}

func TestServerErrorsAreRetriedWithBackoff(t *testing.T) {
	t.Parallel()
	si := newStandin(t, dataversetest.Options{}, contact(1))
	cfg := testConfig()
	cfg.Default = si.target("")
	e := newEnv(t, cfg)
	si.Inject(dataversetest.Fault{Status: http.StatusServiceUnavailable, Count: 2})
	d := decision("d1", orgA, contact(1), notAt, time.Now())

	m1 := msgOf(t, d, 1)
	e.handle(m1)
	wantNaked(t, 800*time.Millisecond, 1200*time.Millisecond, m1) // BackoffFor(1) = 1s, ±20%
	m2 := m1.Redelivered()
	e.handle(m2)
	wantNaked(t, 1600*time.Millisecond, 2400*time.Millisecond, m2) // BackoffFor(2) = 2s, ±20%
	if n := len(e.pub.auditRecords()); n != 0 {
		t.Errorf("%d audit records before the write", n)
	}
	if n := e.writes("retried", "5xx"); n != 2 {
		t.Errorf("writes{retried,5xx} = %v, want 2", n)
	}
	if b := e.svc.targets.For(orgA).Throttle.Blocked(); b != 0 {
		t.Errorf("a 503 blocked the organization for %s", b)
	}

	m3 := m2.Redelivered()
	e.handle(m3)
	wantAcked(t, m3)
	wantWritten(t, e.pub.outcomes(t), d, 3)
	if f := si.flag(t, contact(1)); f != float64(1) {
		t.Errorf("flag = %v", f)
	}
	statuses := []int{}
	for _, r := range si.apiRequests() {
		statuses = append(statuses, r.status)
	}
	if fmt.Sprint(statuses) != "[503 503 200]" {
		t.Errorf("API answers = %v, want [503 503 200]", statuses)
	}
}

// wantDeadLettered checks m was set aside with reason, recorded as failed
// with status, and terminated.
func wantDeadLettered(t *testing.T, e *env, m *testkit.Msg, d *eventsv1.Decision, status int32, reason ...string) {
	t.Helper()
	o := wantOutcome(t, e.pub.outcomes(t), d, OutcomeFailed, status)
	for _, r := range reason {
		if !strings.Contains(o.GetError(), r) {
			t.Errorf("failed outcome error %q does not name %q", o.GetError(), r)
		}
	}
	dl := e.pub.deadLetters()
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	if dl[0].subject != "nac.deadletter.writer" || dl[0].msgID != fmt.Sprintf("%s-%d", bus.StreamDecisions, m.Seq) ||
		string(dl[0].data) != string(m.Payload) {
		t.Errorf("dead letter = %s %s %q", dl[0].subject, dl[0].msgID, dl[0].data)
	}
	h := dl[0].header
	if h.Get(bus.HeaderDeadReason) != o.GetError() || h.Get(bus.HeaderDeadSubject) != m.Subj ||
		h.Get(bus.HeaderDeadDeliveries) != strconv.FormatUint(m.Delivered, 10) || h.Get("Nats-Msg-Id") != "" {
		t.Errorf("dead letter headers = %v", h)
	}
	wantTermed(t, m)
}

func TestPermanentFailuresAreDeadLettered(t *testing.T) {
	t.Parallel()
	for _, status := range []int{400, 405, 412} {
		for _, mode := range []string{"patch", "batch part", "batch request"} {
			t.Run(fmt.Sprintf("%d %s", status, mode), func(t *testing.T) {
				se := &dataverse.StatusError{Status: status, Code: "0x80048d19", Message: "bad payload"}
				fd := &fakeDataverse{partErr: se}
				cfg := testConfig()
				switch mode {
				case "patch":
					cfg.BatchSize = 1
				case "batch request":
					fd = &fakeDataverse{batchErr: se}
				}
				e := newFakeEnv(t, cfg, fd)
				d := decision("d1", orgA, contact(1), notAt, time.Now())
				m := msgOf(t, d, 1)
				e.handle(m)
				if len(fd.patches)+len(fd.batches) != 1 {
					t.Errorf("%d patches and %d batches, want one request", len(fd.patches), len(fd.batches))
				}
				wantDeadLettered(t, e, m, d, int32(status), "bad payload")
				if n := e.writes(OutcomeFailed, "4xx"); n != 1 {
					t.Errorf("writes{failed,4xx} = %v, want 1", n)
				}
			})
		}
	}
}

// A decision failing transiently is retried through the retry policy's
// horizon, however many deliveries that takes, and set aside, recorded as
// failed, only past it.
func TestGivesUpOnlyPastTheHorizon(t *testing.T) {
	t.Parallel()
	policy := bus.WriterRetry()
	for name, tc := range map[string]struct {
		err    error
		status int32
	}{
		"503":     {&dataverse.StatusError{Status: 503, Message: "Service Unavailable"}, 503},
		"network": {errors.New("dial tcp: connection refused"), 0},
		"403":     {&dataverse.StatusError{Status: 403, Message: "missing privilege"}, 403},
	} {
		t.Run(name, func(t *testing.T) {
			e := newFakeEnv(t, testConfig(), &fakeDataverse{partErr: tc.err})
			d := decision("d1", orgA, contact(1), notAt, time.Now())
			// Hours into an outage, with many deliveries: still retried.
			m := msgOf(t, d, 200)
			m.Stored = time.Now().Add(-policy.Horizon + time.Minute)
			e.handle(m)
			wantNaked(t, 4*time.Minute, 6*time.Minute, m) // the last backoff, 5m, ±20%
			if len(e.pub.deadLetters())+len(e.pub.auditRecords()) != 0 {
				t.Errorf("set aside inside the horizon")
			}
			// Past the horizon: set aside with the last error.
			last := m.Redelivered()
			last.Stored = time.Now().Add(-policy.Horizon - time.Second)
			e.handle(last)
			wantDeadLettered(t, e, last, d, tc.status, "gave up after 201 deliveries", tc.err.Error())
		})
	}
}

func TestTokenRefreshedAfterExpiry(t *testing.T) {
	t.Parallel()
	for _, size := range []int{1, 10} {
		t.Run(fmt.Sprintf("batch size %d", size), func(t *testing.T) {
			si := newStandin(t, dataversetest.Options{TokenLifetime: time.Hour}, contact(1), contact(2))
			cfg := testConfig()
			cfg.BatchSize = size
			cfg.Default = si.target("")
			e := newEnv(t, cfg)
			d1 := decision("d1", orgA, contact(1), notAt, time.Now())
			m1 := msgOf(t, d1, 1)
			e.handle(m1)
			wantAcked(t, m1)
			if si.TokensIssued() != 1 {
				t.Fatalf("%d tokens issued, want 1", si.TokensIssued())
			}

			si.ExpireTokens()
			d2 := decision("d2", orgA, contact(2), notAt, time.Now())
			m2 := msgOf(t, d2, 1)
			e.handle(m2)
			wantAcked(t, m2)
			got := e.pub.outcomes(t)
			wantWritten(t, got, d1, 1)
			wantWritten(t, got, d2, 1)
			if f := si.flag(t, contact(2)); f != float64(1) {
				t.Errorf("flag = %v after the token expired", f)
			}
			var statuses []int
			for _, r := range si.apiRequests() {
				statuses = append(statuses, r.status)
			}
			ok := 204
			if size > 1 {
				ok = 200
			}
			if want := fmt.Sprint([]int{ok, 401, ok}); fmt.Sprint(statuses) != want {
				t.Errorf("API answers %v, want %s", statuses, want)
			}
			if si.TokensIssued() != 2 {
				t.Errorf("%d tokens issued, want 2", si.TokensIssued())
			}
			if n := testutil.ToFloat64(e.svc.metrics.tokens); n != 2 {
				t.Errorf("nac_writer_token_fetches_total = %v, want 2", n)
			}
		})
	}
}

func TestAuditFailureRedelivers(t *testing.T) {
	t.Parallel()
	t.Run("written", func(t *testing.T) {
		si := newStandin(t, dataversetest.Options{}, contact(1), contact(2))
		cfg := testConfig()
		cfg.Default = si.target("")
		e := newEnv(t, cfg)
		e.pub.auditErr = bus.ErrNotStored
		ms := []*testkit.Msg{
			msgOf(t, decision("d1", orgA, contact(1), notAt, time.Now()), 1),
			msgOf(t, decision("d2", orgA, contact(2), ignore, time.Now()), 1),
		}
		e.handle(ms...)
		wantNaked(t, 800*time.Millisecond, 1200*time.Millisecond, ms...)
		if n := e.writes(OutcomeWritten, "2xx") + e.writes(OutcomeSkipped, "none"); n != 0 {
			t.Errorf("outcomes counted although not recorded: %v", n)
		}
	})
	t.Run("failed", func(t *testing.T) {
		// A permanent failure whose audit record is not stored is not set
		// aside unrecorded either: it comes back.
		e := newFakeEnv(t, testConfig(), &fakeDataverse{partErr: &dataverse.StatusError{Status: 400}})
		e.pub.auditErr = bus.ErrNotStored
		m := msgOf(t, decision("d1", orgA, contact(1), notAt, time.Now()), 1)
		e.handle(m)
		wantNaked(t, 800*time.Millisecond, 1200*time.Millisecond, m)
		if n := len(e.pub.deadLetters()); n != 0 {
			t.Errorf("%d dead letters", n)
		}
	})
}

func TestGarbageIsDeadLettered(t *testing.T) {
	t.Parallel()
	si := newStandin(t, dataversetest.Options{}, contact(1))
	cfg := testConfig()
	cfg.Default = si.target("")
	e := newEnv(t, cfg)
	garbage := decisionMsg(bus.DecisionSubject(orgA, contact(1)), []byte("\xffthis is not protobuf"), 1)
	d := decision("d1", orgA, contact(2), notAt, time.Now())
	good := msgOf(t, d, 1)
	si.Seed("contacts", contact(2), map[string]any{flagCol: unset})
	e.handle(garbage, good)

	wantTermed(t, garbage)
	dl := e.pub.deadLetters()
	if len(dl) != 1 || dl[0].subject != bus.DeadLetterSubject(bus.ConsumerWriter) ||
		!strings.Contains(dl[0].header.Get(bus.HeaderDeadReason), "decode Decision") || string(dl[0].data) != string(garbage.Payload) {
		t.Errorf("dead letters = %+v", dl)
	}
	// The rest of the batch goes on.
	wantAcked(t, good)
	got := e.pub.outcomes(t)
	if len(got) != 1 {
		t.Errorf("audit records = %v, want only the good decision's", got)
	}
	wantWritten(t, got, d, 1)
	if r := si.Received(); len(r) != 1 || r[0].ID != contact(2) {
		t.Errorf("stand-in received %+v", r)
	}

	// When the dead letter cannot be stored, the message comes back.
	e.pub.deadErr = bus.ErrNotStored
	again := garbage.Redelivered()
	e.handle(again)
	wantNaked(t, 1600*time.Millisecond, 2400*time.Millisecond, again) // the second backoff, 2s, ±20%
}

// TestHandleTimeout: a write that outlives the handler's time is retried.
func TestHandleTimeout(t *testing.T) {
	t.Parallel()
	si := newStandin(t, dataversetest.Options{}, contact(1))
	cfg := testConfig()
	cfg.Default = si.target("")
	e := newEnv(t, cfg)
	si.Inject(dataversetest.Fault{Delay: time.Second, Count: 1})
	m := msgOf(t, decision("d1", orgA, contact(1), notAt, time.Now()), 1)
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	e.svc.HandleBatch(ctx, testkit.Batch(m))
	wantNaked(t, 800*time.Millisecond, 1200*time.Millisecond, m)
	if n := len(e.pub.auditRecords()); n != 0 {
		t.Errorf("%d audit records", n)
	}
}

// TestHangingTokenEndpoint: an identity provider that never answers holds
// a batch no longer than the request timeout; the decisions come back later.
func TestHangingTokenEndpoint(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // before Close, which waits for the handlers
	cfg := testConfig()
	cfg.RequestTimeout = 200 * time.Millisecond
	cfg.Default = TargetConfig{URL: srv.URL, TokenURL: srv.URL + dataversetest.TokenPath, ClientID: clientID, ClientSecret: clientSecret}
	e := newEnv(t, cfg)
	m := msgOf(t, decision("d1", orgA, contact(1), notAt, time.Now()), 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.handle(m)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("HandleBatch still blocked on the token endpoint 5s on, with a 200ms request timeout")
	}
	wantNaked(t, 800*time.Millisecond, 1200*time.Millisecond, m)
	if n := len(e.pub.auditRecords()); n != 0 {
		t.Errorf("%d audit records", n)
	}
	if n := testutil.ToFloat64(e.svc.metrics.tokens); n != 0 {
		t.Errorf("nac_writer_token_fetches_total = %v, want 0", n)
	}
}

// TestWrongEnvironmentURL: a 404 for the $batch request itself says the
// endpoint is wrong, not that the contacts are gone: the decisions are set
// aside, not recorded obsolete and dropped.
func TestWrongEnvironmentURL(t *testing.T) {
	t.Parallel()
	si := newStandin(t, dataversetest.Options{}, contact(1), contact(2))
	cfg := testConfig()
	cfg.Default = si.target("")
	cfg.Default.URL += "/main.aspx" // a path the Web API is not under
	e := newEnv(t, cfg)
	ds := []*eventsv1.Decision{decision("d1", orgA, contact(1), notAt, time.Now()), decision("d2", orgA, contact(2), notAt, time.Now())}
	ms := []*testkit.Msg{msgOf(t, ds[0], 1), msgOf(t, ds[1], 1)}
	e.handle(ms...)

	wantTermed(t, ms...)
	got := e.pub.outcomes(t)
	for _, d := range ds {
		if o := wantOutcome(t, got, d, OutcomeFailed, 404); !strings.Contains(o.GetError(), "$batch") {
			t.Errorf("failed outcome error %q does not say the batch request failed", o.GetError())
		}
	}
	if n := len(e.pub.deadLetters()); n != 2 {
		t.Errorf("%d dead letters, want 2", n)
	}
	if n := e.writes(OutcomeObsolete, "4xx"); n != 0 {
		t.Errorf("writes{obsolete,4xx} = %v, want 0", n)
	}
	if si.Patches() != 0 {
		t.Errorf("%d patches applied", si.Patches())
	}
}

// fakeSwitch is data validation on for the organizations in on.
type fakeSwitch struct {
	on  map[string]bool
	err error
}

func (f *fakeSwitch) DataValidation(_ context.Context, org string) (bool, error) {
	return f.on[org], f.err
}

func TestDataValidationSwitch(t *testing.T) {
	t.Parallel()
	si := newStandin(t, dataversetest.Options{}, contact(1), contact(2))
	cfg := testConfig()
	cfg.Default = si.target("")
	e := newEnv(t, cfg)
	sw := &fakeSwitch{on: map[string]bool{orgA: true}}
	e.svc.switches = sw

	on := decision("on", orgA, contact(1), notAt, time.Now())
	off := decision("off", orgB, contact(2), notAt, time.Now())
	ms := []*testkit.Msg{msgOf(t, on, 1), msgOf(t, off, 1)}
	e.handle(ms...)
	wantAcked(t, ms...)
	got := e.pub.outcomes(t)
	wantWritten(t, got, on, 1)
	wantOutcome(t, got, off, OutcomeDisabled, 0)
	if r := si.Received(); len(r) != 1 || r[0].ID != contact(1) {
		t.Errorf("stand-in received %+v, want only the switched-on organization's write", r)
	}

	// The settings cannot be read: nothing is sent, the decisions come back.
	sw.err = errors.New("nats: timeout")
	m := msgOf(t, decision("later", orgA, contact(2), notAt, time.Now()), 1)
	e.handle(m)
	wantNaked(t, 800*time.Millisecond, 1200*time.Millisecond, m)
	if n := len(si.apiRequests()); n != 1 {
		t.Errorf("%d API requests, want none after the first", n-1)
	}
	if n := len(e.pub.auditRecords()); n != 2 {
		t.Errorf("%d audit records, want none after the first two", n-2)
	}
}

// fakeDecisions answers the latest sequence of every contact from a map.
type fakeDecisions map[string]uint64

func (f fakeDecisions) LastSequence(_ context.Context, _, contact string) (uint64, error) {
	return f[contact], nil
}

func TestNewerDecisionInTheStreamSupersedes(t *testing.T) {
	t.Parallel()
	dv := &fakeDataverse{}
	e := newFakeEnv(t, testConfig(), dv)
	olderD := decision("older", orgA, contact(1), notAt, time.Now())
	currentD := decision("current", orgA, contact(2), notAt, time.Now())
	older, current := msgOf(t, olderD, 1), msgOf(t, currentD, 1)
	// Contact 1 got a newer decision after this one was delivered (another
	// worker holds it); contact 2's is still the latest.
	e.svc.decisions = fakeDecisions{contact(1): older.Seq + 100, contact(2): current.Seq}
	e.handle(older, current)
	wantAcked(t, older, current)
	if len(dv.batches) != 1 || len(dv.batches[0]) != 1 || dv.batches[0][0].ContactID != contact(2) {
		t.Fatalf("writes = %+v, want only contact 2's", dv.batches)
	}
	got := e.pub.outcomes(t)
	wantOutcome(t, got, olderD, OutcomeSuperseded, 0)
	wantOutcome(t, got, currentD, OutcomeWritten, 204)
}

func TestThrottlingNeverUsesUpDeliveries(t *testing.T) {
	t.Parallel()
	dv := &fakeDataverse{batchErr: &dataverse.StatusError{Status: http.StatusTooManyRequests, RetryAfter: time.Second}}
	e := newFakeEnv(t, testConfig(), dv)
	// Past the horizon and after a thousand deliveries, a throttled
	// decision is held back again, not given up: nothing failed.
	last := msgOf(t, decision("d1", orgA, contact(1), notAt, time.Now()), 1000)
	last.Stored = time.Now().Add(-30 * time.Hour)
	e.handle(last)
	wantNaked(t, 900*time.Millisecond, 1200*time.Millisecond, last)
	if n := len(e.pub.deadLetters()); n != 0 {
		t.Errorf("%d dead letters for a throttled decision", n)
	}
}

func TestServiceUnavailableRetryAfterIsHonoured(t *testing.T) {
	t.Parallel()
	dv := &fakeDataverse{batchErr: &dataverse.StatusError{Status: http.StatusServiceUnavailable, RetryAfter: 7 * time.Second}}
	e := newFakeEnv(t, testConfig(), dv)
	m := msgOf(t, decision("d1", orgA, contact(1), notAt, time.Now()), 1)
	e.handle(m)
	// BackoffFor(1) is 1s; the 503 asked for 7s.
	wantNaked(t, 7*time.Second*8/10, 7*time.Second*12/10, m)
}

// A redelivery that meets its earlier delivery in one batch is one
// message: neither copy is acked as superseded by the other, so a write
// that fails is retried instead of lost.
func TestTwoDeliveriesOfOneDecisionInABatch(t *testing.T) {
	t.Parallel()
	si := newStandin(t, dataversetest.Options{}, contact(1))
	cfg := testConfig()
	cfg.Default = si.target("")
	e := newEnv(t, cfg)
	si.Inject(dataversetest.Fault{Status: http.StatusServiceUnavailable, Count: 1})
	first := msgOf(t, decision("d1", orgA, contact(1), notAt, time.Now()), 1)
	again := first.Redelivered()
	e.handle(first, again)
	if acks, naks, terms := first.Settled(); acks+len(naks)+len(terms) != 0 {
		t.Errorf("the earlier delivery was settled (%d acks, %d naks, %d terms); the latest settles the message", acks, len(naks), len(terms))
	}
	wantNaked(t, 0, 5*time.Second, again)
	if n := testutil.ToFloat64(e.svc.metrics.superseded); n != 0 {
		t.Errorf("nac_writer_superseded_total = %v, want 0", n)
	}
	if n := len(e.pub.auditRecords()); n != 0 {
		t.Errorf("%d audit records for a write that failed", n)
	}
	e.handle(again.Redelivered())
	if f := si.flag(t, contact(1)); f != float64(notAt) {
		t.Errorf("flag = %v after the retry, want %d", f, notAt)
	}
}
