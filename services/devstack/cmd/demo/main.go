// Command nac-demo loads a demo organization into a running devstack
// (`make run`) through its public paths and prints what notatcompany made
// of it: `make demo`.
package main

import (
	"context"
	"io"

	"github.com/notatcompany/notatcompany/services/devstack/demoorg"
	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
)

func main() { lifecycle.Main("demo", run) }

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := demoorg.ParseConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	_, err = demoorg.Run(ctx, cfg, stdout)
	return err
}
