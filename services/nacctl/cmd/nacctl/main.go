// Command nacctl is the admin's CLI: nacctl provision [--dry-run|--check],
// nacctl deprovision [--dry-run], nacctl backfill|sync --org <id>,
// nacctl explain|list|review, nacctl dlq list|show|redrive|discard.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/notatcompany/notatcompany/services/nacctl"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	if code := nacctl.ExitCode(err); code != 0 {
		fmt.Fprintln(os.Stderr, "nacctl:", err)
		os.Exit(code)
	}
}

// run is the composition root of nacctl.
func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if nacctl.IsDLQCommand(args) {
		cfg, err := nacctl.ParseDLQConfig(args, getenv, stdout)
		if err != nil {
			return err
		}
		return nacctl.RunDLQ(ctx, cfg, &http.Client{Timeout: time.Minute}, stdout)
	}
	if nacctl.IsSyncCommand(args) {
		cfg, err := nacctl.ParseSyncConfig(args, getenv, stdout)
		if err != nil {
			return err
		}
		return nacctl.RunSync(ctx, cfg, &http.Client{Timeout: 30 * time.Second}, stdout)
	}
	if nacctl.IsExplainCommand(args) {
		cfg, err := nacctl.ParseExplainConfig(args, getenv, stdout)
		if err != nil {
			return err
		}
		return nacctl.RunExplain(ctx, cfg, &http.Client{Timeout: 60 * time.Second}, stdout)
	}
	cfg, err := nacctl.ParseConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	client, err := dataverse.New(ctx, cfg.URL, cfg.Credentials, dataverse.Options{Timeout: cfg.Timeout})
	if err != nil {
		return err
	}
	return nacctl.Run(ctx, cfg, client, stdout)
}
