// Command ingest serves the webhook endpoints of notatcompany and publishes
// what it receives to JetStream.
package main

import (
	"github.com/notatcompany/notatcompany/services/ingest"
	"github.com/notatcompany/notatcompany/services/shared/conf"
	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
)

func main() { lifecycle.Main("ingest", command().Run) }

// command is ingest as its main runs it: ingest.ParseConfig, then
// ingest.Build in a process of its own.
func command() lifecycle.Command[ingest.Config] {
	return lifecycle.Command[ingest.Config]{Name: "ingest", Parse: ingest.ParseConfig, Build: ingest.Build,
		Common: func(c ingest.Config) conf.Common { return c.Common }}
}
