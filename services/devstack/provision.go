package devstack

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/notatcompany/notatcompany/services/nacctl/provision"
	"github.com/notatcompany/notatcompany/services/shared/crmschema"
	"github.com/notatcompany/notatcompany/services/shared/dataverse"
	"github.com/notatcompany/notatcompany/services/shared/dataverse/dataversetest"
	"github.com/notatcompany/notatcompany/services/shared/lifecycle"
)

// provisionStandin builds the worker that provisions the stand-in at
// start with nacctl provision's code path, as an admin provisions a
// customer's organization: the columns, the four views, and the webhook
// registration pointing at this stack's ingest (built before it) with its
// key. The stack is ready only once it is done.
func (s *Stack) provisionStandin(cols crmschema.Columns) lifecycle.Build {
	return func(_ context.Context, env lifecycle.Env) (lifecycle.Parts, error) {
		env.Ready.Add("dataverse stand-in provisioned", func() error {
			if !s.provisioned.Load() {
				return errors.New("not yet")
			}
			return nil
		})
		return lifecycle.Parts{Workers: []func(context.Context) error{s.provisioner(cols)}}, nil
	}
}

func (s *Stack) provisioner(cols crmschema.Columns) func(context.Context) error {
	cfg := provision.Defaults()
	cfg.FlagColumn, cfg.ProfileURLColumn, cfg.MemberIDColumn, cfg.CompanyIDColumn = cols.Flag, cols.ProfileURL, cols.MemberID, cols.CompanyID
	cfg.Endpoint = provision.Endpoint{URL: s.HTTPURL + "/webhooks/dataverse", Auth: provision.AuthWebhookKey, Key: s.Secrets.WebhookKey}
	cfg.SetKey = true // the key may come from the environment, different each start
	return func(ctx context.Context) error {
		if err := cfg.Validate(true); err != nil {
			return fmt.Errorf("provision the Dataverse stand-in: %w", err)
		}
		client, err := dataverse.New(ctx, s.StandinURL, dataverse.Credentials{TokenURL: s.StandinURL + dataversetest.TokenPath,
			ClientID: ClientID, ClientSecret: s.Secrets.ClientSecret}, dataverse.Options{Timeout: 10 * time.Second})
		if err != nil {
			return err
		}
		runner := &provision.Runner{Client: client, Config: cfg, Progress: func(it provision.Item) {
			if it.Drifted() {
				s.log.Info("provisioning the Dataverse stand-in", "component", it.Component, "action", string(it.Action), "detail", it.Detail)
			}
		}}
		res, err := runner.Provision(ctx, provision.Apply)
		if err != nil {
			return fmt.Errorf("provision the Dataverse stand-in: %w", err)
		}
		s.log.Info("provisioned the Dataverse stand-in", "summary", res.Summary(false))
		s.provisioned.Store(true)
		return nil
	}
}
