package devstack

import "github.com/nats-io/nats-server/v2/server"

// NATSPasswords are the embedded server's generated passwords, one user per
// service and one for a person with the nats CLI.
type NATSPasswords struct {
	Ingest    string `json:"ingest"`
	Validator string `json:"validator"`
	Writer    string `json:"writer"`
	CLI       string `json:"cli"`
}

// NATS users of the devstack.
const (
	NATSUserIngest    = "nac-ingest"
	NATSUserValidator = "nac-validator"
	NATSUserWriter    = "nac-writer"
	NATSUserCLI       = "nac-cli"
)

// The streams' subjects (see bus), to deny publishing to those a service never produces.
var (
	crm, profile, admin = "nac.crm.>", "nac.profile.>", "nac.admin.>"
	work, deadletter    = "nac.work.>", "nac.deadletter.>"
	memberKeys          = "nac.memberkey.>"
	syncs               = "nac.sync.>"
	// The audit records of the pipeline, which ingest never writes; its
	// own (nac.audit.deadletter.>, the admin's redrives and discards) it may.
	pipelineAudit = []string{"nac.audit.decision.>", "nac.audit.write.>", "nac.audit.override.>", "nac.audit.erasure.>", "nac.audit.review.>"}
)

// natsDenied lists, per service, the stream subjects it may not publish to:
// only ingest takes webhooks in, only the validator decides. The writer's
// process runs the sync workers, which feed rows read from Dynamics in as
// CRM changes and hand decisions to the writer again (the writer holds the
// Dataverse credentials, so keeping those from it would protect nothing).
// Ingest's admin API redrives dead letters to where they came from, the
// decision and work streams included (SECURITY.md weighs what that
// widens); the pipeline's audit records, dead letters and member keys stay
// out of its reach.
// The JetStream API stays open to every service (each declares the topology).
var natsDenied = map[string][]string{
	NATSUserIngest:    append([]string{deadletter, memberKeys}, pipelineAudit...),
	NATSUserValidator: {crm, profile, admin, syncs},
	NATSUserWriter:    {profile, admin, work, memberKeys},
}

// natsUsers are the embedded server's users; with users set and no
// no-auth user, an unauthenticated connection is refused.
func natsUsers(pw NATSPasswords) []*server.User {
	users := []*server.User{{Username: NATSUserCLI, Password: pw.CLI}}
	for name, password := range map[string]string{NATSUserIngest: pw.Ingest, NATSUserValidator: pw.Validator, NATSUserWriter: pw.Writer} {
		users = append(users, &server.User{Username: name, Password: password,
			Permissions: &server.Permissions{Publish: &server.SubjectPermission{Deny: natsDenied[name]}}})
	}
	return users
}

// natsEnv is the NATS part of a service's environment in the devstack: its
// own user and password, and no other method (one from the caller's
// environment would be a second method).
func natsEnv(url, user, password string) map[string]string {
	return map[string]string{
		"NAC_NATS_URL": url, "NAC_NATS_USER": user, "NAC_NATS_PASSWORD": password,
		"NAC_NATS_PASSWORD_FILE": "", "NAC_NATS_TOKEN": "", "NAC_NATS_TOKEN_FILE": "",
		"NAC_NATS_NKEY_SEED_FILE": "", "NAC_NATS_CREDS_FILE": "",
		"NAC_NATS_TLS_CA_FILE": "", "NAC_NATS_TLS_CERT_FILE": "", "NAC_NATS_TLS_KEY_FILE": "",
	}
}
