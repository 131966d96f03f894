// Package validator applies CRM and profile events to the materialized state,
// works out which contacts each event can affect, evaluates exactly those and
// publishes a decision when it differs from the last one.
package validator
