// Command writer writes the validator's decisions into Dynamics 365.
package main

import (
	"github.com/notatcompany/notatcompany/services/shared/conf"
	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
	"github.com/notatcompany/notatcompany/services/writer"
)

func main() { lifecycle.Main("writer", command().Run) }

// command is the writer as its main runs it: writer.ParseConfig, then
// writer.Build in a process of its own.
func command() lifecycle.Command[writer.Config] {
	return lifecycle.Command[writer.Config]{Name: "writer", Parse: writer.ParseConfig, Build: writer.Build,
		Common: func(c writer.Config) conf.Common { return c.Common }}
}
