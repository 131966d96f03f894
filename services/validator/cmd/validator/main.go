// Command validator keeps the materialized state and decides, contact by
// contact, whether the person is still at the company.
package main

import (
	"github.com/notatcompany/notatcompany/services/shared/conf"
	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
	"github.com/notatcompany/notatcompany/services/validator"
)

func main() { lifecycle.Main("validator", command().Run) }

// command is the validator as its main runs it: validator.ParseConfig, then
// validator.Build in a process of its own.
func command() lifecycle.Command[validator.Config] {
	return lifecycle.Command[validator.Config]{Name: "validator", Parse: validator.ParseConfig, Build: validator.Build,
		Common: func(c validator.Config) conf.Common { return c.Common }}
}
