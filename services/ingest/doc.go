// Package ingest is the front door: it authenticates webhooks from Dynamics
// 365 and from profile sources, normalizes them into event contracts and
// publishes them to JetStream, answering 2xx only once JetStream has them.
// It never evaluates anything.
package ingest
