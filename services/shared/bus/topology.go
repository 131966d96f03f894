// Package bus is the one place that knows the JetStream topology: the
// subjects, streams, consumers and KV buckets the services share, how to
// publish with deduplication and a bounded wait, and how to consume with
// explicit acks, backoff and dead letters.
package bus

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Streams. Subjects are lower case and dotted, general to specific.
const (
	// StreamCRM holds normalized Dataverse changes:
	// nac.crm.<organization>.<table>.<row>.
	StreamCRM = "NAC_CRM"
	// StreamProfile holds profile source events:
	// nac.profile.member.<member>, nac.profile.company.<company>,
	// nac.profile.erasure.<member>.
	StreamProfile = "NAC_PROFILE"
	// StreamDecisions holds the latest decision per contact:
	// nac.decision.<organization>.<contact>.
	StreamDecisions = "NAC_DECISIONS"
	// StreamAudit is the audit trail: nac.audit.<kind>.<organization>.
	StreamAudit = "NAC_AUDIT"
	// StreamDeadLetter holds messages set aside with their reason:
	// nac.deadletter.<consumer>.
	StreamDeadLetter = "NAC_DEADLETTER"
	// StreamAdmin holds the latest admin change per subject:
	// nac.admin.<organization>.syncuser.<user>, nac.admin.<organization>.settings,
	// nac.admin.<organization>.review.<contact>.
	StreamAdmin = "NAC_ADMIN"
	// StreamWork is a work queue of evaluation chunks of large fan-outs:
	// nac.work.<organization>.
	StreamWork = "NAC_WORK"
	// StreamMemberKeys holds each member's data key, which seals what
	// decisions say about the member; erasing the member erases the key:
	// nac.memberkey.member.<member key>, nac.memberkey.id.<key id>. A stream,
	// not a KV bucket, because KV buckets refuse the secure delete (which
	// overwrites the message where it is stored) that destroying a key needs.
	StreamMemberKeys = "NAC_MEMBER_KEYS"
	// StreamSync holds back-fill and sweep requests: nac.sync.<organization>.request.
	StreamSync = "NAC_SYNC"
)

// Durable consumers.
const (
	ConsumerValidatorCRM     = "validator-crm"
	ConsumerValidatorProfile = "validator-profile"
	ConsumerWriter           = "writer"
	ConsumerValidatorAdmin   = "validator-admin"
	ConsumerValidatorWork    = "validator-work"
	// The sync workers (in the writer's process): requests, the settings
	// change that switches data validation on, and the CRM changes that
	// need a read-back or show a person's flag over our decision.
	ConsumerSyncRequests = "sync-requests"
	ConsumerSyncAdmin    = "sync-admin"
	ConsumerSyncCRM      = "sync-crm"
)

// KV buckets of the validator's materialized state.
const (
	BucketContacts  = "nac_contacts"
	BucketAccounts  = "nac_accounts"
	BucketMembers   = "nac_members"
	BucketCompanies = "nac_companies"
	BucketIndex     = "nac_index"
	// BucketRows holds opportunities and system users.
	BucketRows      = "nac_rows"
	BucketSyncUsers = "nac_syncusers"
	BucketOrgs      = "nac_orgs"
	// BucketNames counts full names under a keyed hash: the contacts of an
	// organization and of an account, the members, the members at a
	// company, and what each contact and member is counted under. Written
	// with WriteKeys.
	BucketNames = "nac_names"
)

// BucketEvaluations holds the validator's latest evaluation of each
// contact, whatever its outcome, for the admin API's explain, with one index
// key per contact flagged, per candidate below the threshold and per open
// opportunity of a flagged contact, and the review verdicts:
// <organization>.eval.<contact>, <organization>.flagged.<contact>,
// <organization>.candidate.<contact>, <organization>.atrisk.<opportunity>.<contact>,
// <organization>.review.<contact>. Index keys that go are purged with a
// marker that expires.
const BucketEvaluations = "nac_evaluations"

// KV buckets of the writer, shared by its replicas.
const (
	// BucketWriteLeases holds one lease per contact being written, with a
	// per-key TTL: <organization>.<contact>.
	BucketWriteLeases = "nac_write_leases"
	// BucketBudgets holds the Dataverse budget of each environment and
	// application user: one ledger of requests, execution time and
	// requests in progress per key (the writer's budget.go).
	BucketBudgets = "nac_budgets"
)

// KV buckets of the sync workers.
const (
	// BucketSyncJobs holds each organization's sync job, claimed by
	// compare-and-set so one replica runs it: <organization>.
	BucketSyncJobs = "nac_sync_jobs"
	// BucketSyncLinks holds the delta link of each table, stored once every
	// event of the read it ends is stored: <organization>.<table>.
	BucketSyncLinks = "nac_sync_links"
)

// Subject builders. Every token is made safe: Dataverse ids are GUIDs and
// pass through; ids from outside sources are encoded by Token.

func CRMSubject(org, table, row string) string {
	return "nac.crm." + Token(org) + "." + Token(table) + "." + Token(row)
}

func ProfileMemberSubject(member string) string   { return "nac.profile.member." + Token(member) }
func ProfileCompanySubject(company string) string { return "nac.profile.company." + Token(company) }
func ProfileErasureSubject(member string) string  { return "nac.profile.erasure." + Token(member) }

func DecisionSubject(org, contact string) string {
	return "nac.decision." + Token(org) + "." + Token(contact)
}

// AuditSubject is where kind ("decision", "write") records for org go.
func AuditSubject(kind, org string) string { return "nac.audit." + kind + "." + Token(org) }

func DeadLetterSubject(consumer string) string { return "nac.deadletter." + Token(consumer) }

func AdminSyncUserSubject(org, user string) string {
	return "nac.admin." + Token(org) + ".syncuser." + Token(user)
}

func AdminSettingsSubject(org string) string { return "nac.admin." + Token(org) + ".settings" }

// AdminReviewSubject is where an admin's review of a candidate goes.
func AdminReviewSubject(org, contact string) string {
	return "nac.admin." + Token(org) + ".review." + Token(contact)
}

func WorkSubject(org string) string { return "nac.work." + Token(org) }

// SyncRequestSubject is where back-fill and sweep requests of org go.
func SyncRequestSubject(org string) string { return "nac.sync." + Token(org) + ".request" }

// MemberKeySubject holds the data key of the member whose key (a
// pseudonym) is memberKey; MemberKeyIDSubject the same key by its id.
func MemberKeySubject(memberKey string) string { return "nac.memberkey.member." + Token(memberKey) }
func MemberKeyIDSubject(id string) string      { return "nac.memberkey.id." + Token(id) }

// Token returns s unchanged when it is safe as one subject token and KV key
// part (letters, digits, '-' and '_'), otherwise "b64_" and its unpadded
// base64url encoding, so that a dot or wildcard in an outside id can never
// change the subject's shape.
func Token(s string) string {
	if s != "" && !strings.HasPrefix(s, "b64_") && strings.IndexFunc(s, unsafeRune) < 0 {
		return s
	}
	return "b64_" + base64.RawURLEncoding.EncodeToString([]byte(s))
}

func unsafeRune(r rune) bool {
	return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_')
}

// Options size the topology for a deployment.
type Options struct {
	// Replicas of every stream and bucket: 1 embedded, 3 in production.
	Replicas int
	// AuditMaxAge is how long the audit trail is kept.
	AuditMaxAge time.Duration
	// AckWait is how long a consumer waits for an ack before redelivering.
	AckWait time.Duration
	// Retry is the retry policy of each durable consumer, by name; a
	// consumer without one has ConsumerRetry.
	Retry map[string]RetryPolicy
}

// ConsumerRetry is the retry policy of the validator's consumers: eight
// deliveries over about four minutes. Their failures are JetStream's own
// (a KV bucket briefly unavailable), which clear in seconds.
func ConsumerRetry() RetryPolicy {
	return RetryPolicy{MaxAttempts: 8, Backoff: []time.Duration{
		time.Second, 2 * time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second, time.Minute,
	}}
}

// WriterRetry is the retry policy of the writer: a decision that Dataverse
// cannot take now (5xx, timeouts, token errors) is retried for at least
// six hours, every five minutes at the latest, so that an outage of
// Dataverse or of the identity provider loses no flag. Waiting for the
// request budget or for a 429's Retry-After is not a failure and is never
// given up.
func WriterRetry() RetryPolicy {
	return RetryPolicy{MaxAttempts: 10, Horizon: 6 * time.Hour, Backoff: []time.Duration{
		time.Second, 2 * time.Second, 5 * time.Second, 15 * time.Second, 30 * time.Second,
		time.Minute, 2 * time.Minute, 5 * time.Minute,
	}}
}

// DefaultOptions are the settings of a single embedded server.
func DefaultOptions() Options {
	return Options{Replicas: 1, AuditMaxAge: 400 * 24 * time.Hour, AckWait: 30 * time.Second,
		Retry: map[string]RetryPolicy{ConsumerWriter: WriterRetry()}}
}

// RetryFor is the retry policy of consumer.
func (o Options) RetryFor(consumer string) RetryPolicy {
	if p, ok := o.Retry[consumer]; ok {
		return p
	}
	return ConsumerRetry()
}

// Validate reports what is wrong with o.
func (o Options) Validate() error {
	var errs []error
	if o.Replicas < 1 {
		errs = append(errs, fmt.Errorf("topology: Replicas %d: want at least 1", o.Replicas))
	}
	if o.AckWait <= 0 {
		errs = append(errs, fmt.Errorf("topology: AckWait %s: want more than 0", o.AckWait))
	}
	for name, p := range o.Retry {
		if err := p.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("topology: retry policy of %s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func (o Options) streams() []jetstream.StreamConfig {
	day := 24 * time.Hour
	base := func(name, subjects, desc string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    []string{subjects},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    o.Replicas,
			Discard:     jetstream.DiscardOld,
			MaxAge:      7 * day,
			Duplicates:  time.Hour,
		}
	}
	crm := base(StreamCRM, "nac.crm.>", "Normalized Dataverse row changes")
	profile := base(StreamProfile, "nac.profile.>", "Profile source events")
	profile.Duplicates = day
	decisions := base(StreamDecisions, "nac.decision.>", "Latest decision per contact")
	// Only the latest decision for a contact is worth writing: a newer one
	// supersedes an older one still waiting, in the stream itself.
	decisions.MaxMsgsPerSubject = 1
	decisions.MaxAge = 0
	// On one server the validator reads the last decisions of many
	// contacts in one batched direct get. Replicated, a direct get may be
	// answered by a follower a moment behind, and the writer's check that a
	// decision is still the latest must not be: every read goes to the
	// leader then.
	decisions.AllowDirect = o.Replicas == 1
	audit := base(StreamAudit, "nac.audit.>", "Audit trail of decisions and writes")
	audit.MaxAge = o.AuditMaxAge
	dead := base(StreamDeadLetter, "nac.deadletter.>", "Messages set aside with their reason")
	dead.MaxAge = 30 * day
	admin := base(StreamAdmin, "nac.admin.>", "Latest admin change per sync user and organization")
	admin.MaxMsgsPerSubject, admin.MaxAge = 1, 0
	work := base(StreamWork, "nac.work.>", "Evaluation chunks of large fan-outs")
	work.Retention = jetstream.WorkQueuePolicy
	keys := base(StreamMemberKeys, "nac.memberkey.>", "Members' data keys, erased with the member")
	keys.MaxMsgsPerSubject, keys.MaxAge, keys.AllowDirect = 1, 0, true
	syncs := base(StreamSync, "nac.sync.>", "Back-fill and sweep requests")
	syncs.Retention = jetstream.WorkQueuePolicy
	return []jetstream.StreamConfig{crm, profile, decisions, audit, dead, admin, work, keys, syncs}
}

type consumerSpec struct {
	stream string
	config jetstream.ConsumerConfig
}

func (o Options) consumers() []consumerSpec {
	c := func(name, desc string) jetstream.ConsumerConfig {
		return jetstream.ConsumerConfig{
			Durable:       name,
			Description:   desc,
			AckPolicy:     jetstream.AckExplicitPolicy,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			AckWait:       o.AckWait,
			MaxDeliver:    o.RetryFor(name).MaxDeliver(),
			MaxAckPending: 1000,
			Replicas:      o.Replicas,
		}
	}
	// The writer's policy has a horizon: the server never stops delivering
	// a decision, the writer gives up on one itself.
	writer := c(ConsumerWriter, "Writer sending decisions to Dataverse")
	return []consumerSpec{
		{StreamCRM, c(ConsumerValidatorCRM, "Validator applying CRM changes")},
		{StreamProfile, c(ConsumerValidatorProfile, "Validator applying profile events")},
		{StreamDecisions, writer},
		{StreamAdmin, c(ConsumerValidatorAdmin, "Validator applying admin changes")},
		{StreamWork, c(ConsumerValidatorWork, "Validator evaluating fan-out chunks")},
		{StreamSync, c(ConsumerSyncRequests, "Sync running back-fills and sweeps")},
		{StreamAdmin, settingsOnly(c(ConsumerSyncAdmin, "Sync back-filling organizations switched on"))},
		{StreamCRM, c(ConsumerSyncCRM, "Sync reading back oversized changes and auditing overrides")},
	}
}

func settingsOnly(c jetstream.ConsumerConfig) jetstream.ConsumerConfig {
	c.FilterSubject = "nac.admin.*.settings"
	return c
}

func (o Options) buckets() []jetstream.KeyValueConfig {
	kv := func(name, desc string) jetstream.KeyValueConfig {
		return jetstream.KeyValueConfig{Bucket: name, Description: desc, History: 1, Storage: jetstream.FileStorage, Replicas: o.Replicas}
	}
	// Leases expire on their own (a writer that died holding one), which
	// needs per-key TTLs; the markers of expired keys go after a minute.
	leases := kv(BucketWriteLeases, "Per-contact write leases of the writer replicas")
	leases.LimitMarkerTTL = time.Minute
	evaluations := kv(BucketEvaluations, "Latest evaluation per contact, its list indexes and reviews")
	evaluations.LimitMarkerTTL = time.Minute
	return []jetstream.KeyValueConfig{
		kv(BucketContacts, "Contacts by organization and id"),
		kv(BucketAccounts, "Accounts by organization and id"),
		kv(BucketMembers, "Member profiles by id"),
		kv(BucketCompanies, "Company pages by id"),
		kv(BucketIndex, "Lookup indexes, one key per edge"),
		kv(BucketRows, "Opportunities and system users by organization and id"),
		kv(BucketSyncUsers, "Sync users by organization and user"),
		kv(BucketOrgs, "Validation settings by organization"),
		kv(BucketNames, "Name counts under a keyed hash, and what each contact and member is counted under"),
		leases,
		kv(BucketBudgets, "Dataverse request budget per organization and application user"),
		kv(BucketSyncJobs, "Sync job of each organization"),
		kv(BucketSyncLinks, "Delta link of each organization's table"),
		evaluations,
	}
}

// Declare creates or updates every stream, KV bucket and durable consumer.
// It is idempotent, so every service calls it at start.
func Declare(ctx context.Context, js jetstream.JetStream, o Options) error {
	if err := o.Validate(); err != nil {
		return err
	}
	for _, cfg := range o.streams() {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("declare stream %s: %w", cfg.Name, o.replicasHint(err))
		}
	}
	for _, cfg := range o.buckets() {
		if err := declareBucket(ctx, js, cfg); err != nil {
			return fmt.Errorf("declare bucket %s: %w", cfg.Bucket, o.replicasHint(err))
		}
	}
	for _, c := range o.consumers() {
		if _, err := js.CreateOrUpdateConsumer(ctx, c.stream, c.config); err != nil {
			return fmt.Errorf("declare consumer %s on %s: %w", c.config.Durable, c.stream, err)
		}
	}
	return nil
}

// JetStream's answers when a stream asks for more replicas than there are
// servers to hold them.
const (
	errCodeClusterNoPeers        jetstream.ErrorCode = 10005
	errCodeInsufficientResources jetstream.ErrorCode = 10023
	errCodeReplicasNotSupported  jetstream.ErrorCode = 10074
)

// replicasHint says what to do when err is JetStream refusing the replica
// count, which is otherwise a bare "replicas > 1 not supported".
func (o Options) replicasHint(err error) error {
	var apiErr *jetstream.APIError
	if o.Replicas <= 1 || !errors.As(err, &apiErr) {
		return err
	}
	switch apiErr.ErrorCode {
	case errCodeReplicasNotSupported:
		return fmt.Errorf("NAC_STREAM_REPLICAS=%d, but the NATS server is not clustered and keeps one replica: "+
			"run a JetStream cluster of at least %d servers, or set NAC_STREAM_REPLICAS=1 (chart: nats.streamReplicas=1) for a trial: %w",
			o.Replicas, o.Replicas, err)
	case errCodeClusterNoPeers, errCodeInsufficientResources:
		return fmt.Errorf("NAC_STREAM_REPLICAS=%d: the JetStream cluster has no %d servers with room for a replica each "+
			"(too few servers, or their storage limits are reached): add servers or storage, or lower NAC_STREAM_REPLICAS: %w",
			o.Replicas, o.Replicas, err)
	}
	return err
}
