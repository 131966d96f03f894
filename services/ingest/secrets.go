package ingest

import (
	"context"
	"time"
)

// credentials are what requests are authenticated against. A rotation of
// the secrets replaces them whole, so a request sees one set or the other.
type credentials struct {
	dataverse      *authenticator
	profileSecrets []string
	profileSources []ProfileSource
	adminTokens    []string
}

func newCredentials(c *Config) *credentials {
	return &credentials{
		dataverse:      &authenticator{orgs: c.DataverseOrgs, anyOrg: c.DataverseKeys},
		profileSecrets: c.ProfileSecrets,
		profileSources: c.ProfileSources,
		adminTokens:    c.AdminTokens,
	}
}

// ApplySecrets makes values (the secret settings by variable name) the
// credentials requests are checked against, when they are valid; else it
// returns every problem and the current credentials stay.
func (s *Service) ApplySecrets(values map[string]string) error {
	c, err := s.cfg.withSecrets(values)
	if err != nil {
		return err
	}
	s.creds.Store(newCredentials(&c))
	return nil
}

// WatchSecrets re-reads the secret files of the configuration every
// interval until ctx ends, applying a changed set that is valid: during a
// rotation the Secret holds "new,old", and both are accepted.
func (s *Service) WatchSecrets(ctx context.Context, interval time.Duration) error {
	if s.cfg.Secrets == nil {
		<-ctx.Done()
		return nil
	}
	return s.cfg.Secrets.Watch(ctx, interval, s.ApplySecrets, func(changed []string, err error) {
		if err != nil {
			s.log.Error("secrets not rotated; the current ones stay", "changed", changed, "err", err)
			return
		}
		s.log.Info("secrets rotated", "changed", changed)
	})
}
