package bus_test

import (
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/notatcompany/notatcompany/services/shared/bus"
)

var safeToken = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)

func TestTokenKeepsSafeIDs(t *testing.T) {
	t.Parallel()
	for _, id := range []string{
		"3f2504e0-4f89-11d3-9a0c-0305e82c3301", // a Dataverse GUID
		"3F2504E0-4F89-11D3-9A0C-0305E82C3301",
		"contacts",
		"abc_DEF-123",
		"-",
		"_",
		"b64", // only the full prefix "b64_" is reserved
		"B64_abc",
	} {
		if got := bus.Token(id); got != id {
			t.Errorf("Token(%q) = %q, want it unchanged", id, got)
		}
	}
}

func TestTokenEncodesUnsafeIDs(t *testing.T) {
	t.Parallel()
	for _, id := range []string{
		"a.b",
		"*",
		">",
		"a*b>",
		"with space",
		"tab\there",
		"ünïcødé",
		"日本",
		"",
		"b64_",
		"b64_YQ", // looks like an encoding of "a"
		"a/b",
		"a+b=",
	} {
		got := bus.Token(id)
		if got == id {
			t.Errorf("Token(%q) left it unchanged", id)
			continue
		}
		enc, ok := strings.CutPrefix(got, "b64_")
		if !ok {
			t.Errorf("Token(%q) = %q, want the b64_ prefix", id, got)
			continue
		}
		if !safeToken.MatchString(got) {
			t.Errorf("Token(%q) = %q is not a safe subject token", id, got)
		}
		dec, err := base64.RawURLEncoding.DecodeString(enc)
		if err != nil || string(dec) != id {
			t.Errorf("Token(%q) = %q decodes to %q, %v", id, got, dec, err)
		}
	}
}

func TestTokenNoCollisions(t *testing.T) {
	t.Parallel()
	ids := []string{
		"a", "YQ", "b64_YQ", "b64_b64_YQ", "", "b64_", "a.b", "a_b", "a-b",
		"3f2504e0-4f89-11d3-9a0c-0305e82c3301", "b64_" + base64.RawURLEncoding.EncodeToString([]byte("a.b")),
		"*", ">", " ", "ü",
	}
	seen := map[string]string{}
	for _, id := range ids {
		tok := bus.Token(id)
		if prev, ok := seen[tok]; ok {
			t.Errorf("Token(%q) = Token(%q) = %q", id, prev, tok)
		}
		seen[tok] = id
	}
	// The encoding of an unsafe id can never equal a raw id passed through.
	enc := bus.Token("a.b")
	if bus.Token(enc) == enc {
		t.Errorf("raw id %q passes through and collides with the encoding of %q", enc, "a.b")
	}
}

func TestSubjects(t *testing.T) {
	t.Parallel()
	const guid = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"
	dot := bus.Token("x.y")
	for _, tc := range []struct{ got, want string }{
		{bus.CRMSubject("org1", "contact", guid), "nac.crm.org1.contact." + guid},
		{bus.CRMSubject("org.1", "contact", guid), "nac.crm." + bus.Token("org.1") + ".contact." + guid},
		{bus.ProfileMemberSubject("m1"), "nac.profile.member.m1"},
		{bus.ProfileMemberSubject("x.y"), "nac.profile.member." + dot},
		{bus.ProfileCompanySubject("c-1"), "nac.profile.company.c-1"},
		{bus.ProfileErasureSubject("m1"), "nac.profile.erasure.m1"},
		{bus.DecisionSubject("org1", guid), "nac.decision.org1." + guid},
		{bus.AuditSubject("decision", "org1"), "nac.audit.decision.org1"},
		{bus.AuditSubject("write", "x.y"), "nac.audit.write." + dot},
		{bus.DeadLetterSubject(bus.ConsumerWriter), "nac.deadletter.writer"},
		{bus.AdminReviewSubject("org1", guid), "nac.admin.org1.review." + guid},
	} {
		if tc.got != tc.want {
			t.Errorf("subject = %q, want %q", tc.got, tc.want)
		}
	}
	// An outside id with wildcards never adds tokens to a subject.
	if got := bus.ProfileMemberSubject("a.>"); strings.Count(got, ".") != 3 || strings.ContainsAny(got, "*>") {
		t.Errorf("ProfileMemberSubject(%q) = %q changes the subject's shape", "a.>", got)
	}
}

func TestRetryPolicyDelay(t *testing.T) {
	t.Parallel()
	p := bus.ConsumerRetry()
	for _, tc := range []struct {
		delivered uint64
		want      time.Duration
	}{
		{0, time.Second},
		{1, time.Second},
		{2, 2 * time.Second},
		{3, 5 * time.Second},
		{4, 15 * time.Second},
		{5, 30 * time.Second},
		{6, time.Minute},
		{7, time.Minute},
		{1000, time.Minute},
		{1 << 63, time.Minute},
	} {
		if got := p.Delay(tc.delivered); got != tc.want {
			t.Errorf("Delay(%d) = %v, want %v", tc.delivered, got, tc.want)
		}
	}
}

func TestDeclare(t *testing.T) {
	t.Parallel()
	_, js := connect(t)
	ctx := testContext(t)
	o := bus.DefaultOptions()
	if err := bus.Declare(ctx, js, o); err != nil {
		t.Fatalf("Declare: %v", err)
	}
	if err := bus.Declare(ctx, js, o); err != nil {
		t.Fatalf("second Declare: %v", err)
	}

	streams := map[string]string{
		bus.StreamCRM:        "nac.crm.>",
		bus.StreamProfile:    "nac.profile.>",
		bus.StreamDecisions:  "nac.decision.>",
		bus.StreamAudit:      "nac.audit.>",
		bus.StreamDeadLetter: "nac.deadletter.>",
		bus.StreamAdmin:      "nac.admin.>",
		bus.StreamWork:       "nac.work.>",
		bus.StreamMemberKeys: "nac.memberkey.>",
		bus.StreamSync:       "nac.sync.>",
	}
	for name, subject := range streams {
		s, err := js.Stream(ctx, name)
		if err != nil {
			t.Errorf("stream %s: %v", name, err)
			continue
		}
		cfg := s.CachedInfo().Config
		if len(cfg.Subjects) != 1 || cfg.Subjects[0] != subject {
			t.Errorf("stream %s subjects = %q, want [%q]", name, cfg.Subjects, subject)
		}
		if cfg.Storage != jetstream.FileStorage || cfg.Replicas != 1 {
			t.Errorf("stream %s storage, replicas = %v, %d", name, cfg.Storage, cfg.Replicas)
		}
	}
	var names []string
	for n := range js.StreamNames(ctx).Name() {
		if strings.HasPrefix(n, "NAC_") {
			names = append(names, n)
		}
	}
	if len(names) != len(streams) {
		t.Errorf("NAC_ streams = %q, want %d", names, len(streams))
	}

	w, err := js.Stream(ctx, bus.StreamWork)
	if err == nil && w.CachedInfo().Config.Retention != jetstream.WorkQueuePolicy {
		t.Errorf("work retention = %v, want work queue", w.CachedInfo().Config.Retention)
	}
	d, err := js.Stream(ctx, bus.StreamDecisions)
	if err == nil && d.CachedInfo().Config.MaxMsgsPerSubject != 1 {
		t.Errorf("decisions MaxMsgsPerSubject = %d, want 1", d.CachedInfo().Config.MaxMsgsPerSubject)
	}
	// A member's data key is destroyed by a secure delete, which KV buckets refuse.
	k, err := js.Stream(ctx, bus.StreamMemberKeys)
	if err == nil && (k.CachedInfo().Config.DenyDelete || k.CachedInfo().Config.MaxMsgsPerSubject != 1 || k.CachedInfo().Config.MaxAge != 0) {
		t.Errorf("member keys stream = %+v, want deletes allowed, one message per subject, kept for ever", k.CachedInfo().Config)
	}
	a, err := js.Stream(ctx, bus.StreamAudit)
	if err == nil && a.CachedInfo().Config.MaxAge != o.AuditMaxAge {
		t.Errorf("audit MaxAge = %v, want %v", a.CachedInfo().Config.MaxAge, o.AuditMaxAge)
	}

	buckets := []string{bus.BucketContacts, bus.BucketAccounts, bus.BucketMembers, bus.BucketCompanies, bus.BucketIndex,
		bus.BucketRows, bus.BucketSyncUsers, bus.BucketOrgs, bus.BucketNames, bus.BucketWriteLeases, bus.BucketBudgets,
		bus.BucketSyncJobs, bus.BucketSyncLinks, bus.BucketEvaluations}
	for _, b := range buckets {
		kv, err := js.KeyValue(ctx, b)
		if err != nil {
			t.Errorf("bucket %s: %v", b, err)
			continue
		}
		st, err := kv.Status(ctx)
		if err != nil {
			t.Errorf("bucket %s status: %v", b, err)
			continue
		}
		if st.History() != 1 {
			t.Errorf("bucket %s history = %d, want 1", b, st.History())
		}
	}
	nb := 0
	for range js.KeyValueStoreNames(ctx).Name() {
		nb++
	}
	if nb != len(buckets) {
		t.Errorf("%d buckets, want %d", nb, len(buckets))
	}

	consumers := map[string]string{
		bus.ConsumerValidatorCRM:     bus.StreamCRM,
		bus.ConsumerValidatorProfile: bus.StreamProfile,
		bus.ConsumerWriter:           bus.StreamDecisions,
		bus.ConsumerValidatorAdmin:   bus.StreamAdmin,
		bus.ConsumerValidatorWork:    bus.StreamWork,
		bus.ConsumerSyncRequests:     bus.StreamSync,
		bus.ConsumerSyncAdmin:        bus.StreamAdmin,
		bus.ConsumerSyncCRM:          bus.StreamCRM,
	}
	// The sync workers see only the settings of the admin stream.
	if c, err := js.Consumer(ctx, bus.StreamAdmin, bus.ConsumerSyncAdmin); err != nil || c.CachedInfo().Config.FilterSubject != "nac.admin.*.settings" {
		t.Errorf("consumer %s: want only settings changes (%v)", bus.ConsumerSyncAdmin, err)
	}
	for name, stream := range consumers {
		c, err := js.Consumer(ctx, stream, name)
		if err != nil {
			t.Errorf("consumer %s on %s: %v", name, stream, err)
			continue
		}
		cfg := c.CachedInfo().Config
		if cfg.Durable != name {
			t.Errorf("consumer %s durable = %q", name, cfg.Durable)
		}
		if cfg.AckPolicy != jetstream.AckExplicitPolicy {
			t.Errorf("consumer %s ack policy = %v, want explicit", name, cfg.AckPolicy)
		}
		wantMax := bus.ConsumerRetry().MaxAttempts + bus.DeadLetterAttempts
		if name == bus.ConsumerWriter {
			wantMax = -1 // the writer gives up itself; throttling must not
		}
		if cfg.MaxDeliver != wantMax {
			t.Errorf("consumer %s MaxDeliver = %d, want %d", name, cfg.MaxDeliver, wantMax)
		}
		if cfg.AckWait != o.AckWait {
			t.Errorf("consumer %s AckWait = %v, want %v", name, cfg.AckWait, o.AckWait)
		}
	}
	for stream := range streams {
		s, err := js.Stream(ctx, stream)
		if err != nil {
			continue
		}
		n := 0
		for range s.ConsumerNames(ctx).Name() {
			n++
		}
		want := 0
		for _, st := range consumers {
			if st == stream {
				want++
			}
		}
		if n != want {
			t.Errorf("stream %s has %d consumers, want %d", stream, n, want)
		}
	}
}

func TestDeclareChangedOptions(t *testing.T) {
	t.Parallel()
	_, js := connect(t)
	ctx := testContext(t)
	if err := bus.Declare(ctx, js, bus.DefaultOptions()); err != nil {
		t.Fatalf("Declare: %v", err)
	}
	o := bus.DefaultOptions()
	o.Retry[bus.ConsumerValidatorCRM] = bus.RetryPolicy{MaxAttempts: 3, Backoff: []time.Duration{time.Second}}
	if err := bus.Declare(ctx, js, o); err != nil {
		t.Fatalf("Declare with a new retry policy: %v", err)
	}
	c, err := js.Consumer(ctx, bus.StreamCRM, bus.ConsumerValidatorCRM)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.CachedInfo().Config.MaxDeliver; got != 3+bus.DeadLetterAttempts {
		t.Errorf("MaxDeliver after update = %d, want %d", got, 3+bus.DeadLetterAttempts)
	}
}

// A single server refuses three replicas; the error says what to do.
func TestDeclareTooManyReplicas(t *testing.T) {
	t.Parallel()
	_, js := connect(t)
	o := bus.DefaultOptions()
	o.Replicas = 3
	err := bus.Declare(testContext(t), js, o)
	for _, want := range []string{"NAC_STREAM_REPLICAS=3", "not clustered", "nats.streamReplicas=1", "replicas > 1 not supported"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Declare with 3 replicas on one server = %v, want it to say %q", err, want)
		}
	}
}

func TestDecisionsKeepsLatestPerSubject(t *testing.T) {
	t.Parallel()
	_, js := connect(t)
	ctx := testContext(t)
	if err := bus.Declare(ctx, js, bus.DefaultOptions()); err != nil {
		t.Fatalf("Declare: %v", err)
	}
	p := bus.NewPublisher(js, 5*time.Second)
	subject := bus.DecisionSubject("org1", "3f2504e0-4f89-11d3-9a0c-0305e82c3301")
	if err := p.Publish(ctx, subject, "d1", []byte("first"), nil); err != nil {
		t.Fatalf("publish first: %v", err)
	}
	if err := p.Publish(ctx, subject, "d2", []byte("second"), nil); err != nil {
		t.Fatalf("publish second: %v", err)
	}
	other := bus.DecisionSubject("org1", "00000000-0000-0000-0000-000000000001")
	if err := p.Publish(ctx, other, "d3", []byte("other"), nil); err != nil {
		t.Fatalf("publish other: %v", err)
	}
	s, err := js.Stream(ctx, bus.StreamDecisions)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("stream holds %d messages, want 2 (one per subject)", info.State.Msgs)
	}
	if n := info.State.Subjects[subject]; n != 1 {
		t.Errorf("subject %s holds %d messages, want 1", subject, n)
	}
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	if string(m.Data) != "second" {
		t.Errorf("kept %q, want the later decision %q", m.Data, "second")
	}
}

func TestPublisherDeduplicates(t *testing.T) {
	t.Parallel()
	_, js := connect(t)
	ctx := testContext(t)
	if err := bus.Declare(ctx, js, bus.DefaultOptions()); err != nil {
		t.Fatalf("Declare: %v", err)
	}
	p := bus.NewPublisher(js, 5*time.Second)
	subject := bus.CRMSubject("org1", "contact", "3f2504e0-4f89-11d3-9a0c-0305e82c3301")
	h := nats.Header{}
	h.Set("X-Test", "yes")
	for i := range 2 {
		if err := p.Publish(ctx, subject, "same-id", []byte("data"), h); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if err := p.Publish(ctx, subject, "other-id", []byte("data"), nil); err != nil {
		t.Fatalf("publish other id: %v", err)
	}
	s, err := js.Stream(ctx, bus.StreamCRM)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 2 {
		t.Errorf("stream holds %d messages, want 2 (the duplicate dropped)", info.State.Msgs)
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Header.Get("X-Test") != "yes" || m.Header.Get(nats.MsgIdHdr) != "same-id" {
		t.Errorf("stored headers = %v", m.Header)
	}
}

func TestPublishNotStored(t *testing.T) {
	t.Parallel()
	_, js := connect(t)
	ctx := testContext(t)
	if err := bus.Declare(ctx, js, bus.DefaultOptions()); err != nil {
		t.Fatalf("Declare: %v", err)
	}
	const timeout = 2 * time.Second
	p := bus.NewPublisher(js, timeout)
	start := time.Now()
	err := p.Publish(ctx, "nobody.captures.this", "", []byte("x"), nil)
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("Publish to an uncaptured subject succeeded")
	}
	if !errors.Is(err, bus.ErrNotStored) {
		t.Errorf("error %v does not wrap ErrNotStored", err)
	}
	if elapsed > timeout+time.Second {
		t.Errorf("Publish took %v, want at most about the %v timeout", elapsed, timeout)
	}
}

func TestPublishProto(t *testing.T) {
	t.Parallel()
	_, js := connect(t)
	ctx := testContext(t)
	if err := bus.Declare(ctx, js, bus.DefaultOptions()); err != nil {
		t.Fatalf("Declare: %v", err)
	}
	p := bus.NewPublisher(js, 5*time.Second)
	subject := bus.AuditSubject("write", "org1")
	if err := p.PublishProto(ctx, subject, "", wrapperspb.String("hello")); err != nil {
		t.Fatalf("PublishProto: %v", err)
	}
	s, err := js.Stream(ctx, bus.StreamAudit)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	var got wrapperspb.StringValue
	if err := proto.Unmarshal(m.Data, &got); err != nil || got.GetValue() != "hello" {
		t.Errorf("stored %x decodes to %q, %v", m.Data, got.GetValue(), err)
	}
}

func TestJitterStaysWithinAFifth(t *testing.T) {
	t.Parallel()
	d := 10 * time.Second
	seen := map[bool]bool{}
	for range 1000 {
		j := bus.Jitter(d)
		if j < d*8/10 || j > d*12/10 {
			t.Fatalf("Jitter(%v) = %v, want within ±20%%", d, j)
		}
		seen[j < d] = true
	}
	if !seen[true] || !seen[false] {
		t.Error("Jitter never went both below and above the delay")
	}
	if bus.Jitter(0) != 0 {
		t.Error("Jitter(0) != 0")
	}
}
