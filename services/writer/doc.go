// Package writer turns decisions into writes of the contact's flag column
// through the Dataverse Web API, batched and within the service protection
// limits, and records every outcome in the audit trail.
package writer
