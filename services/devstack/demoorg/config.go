package demoorg

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/notatcompany/notatcompany/services/devstack"
	"github.com/notatcompany/notatcompany/services/shared/conf"
)

// ParseConfig reads the demo command's settings: the devstack's addresses
// as `make run` reads them (NAC_HTTP_ADDR, NAC_STANDIN_ADDR), and its
// secrets from the environment or, as the devstack keeps them, from
// NAC_DATA_DIR/secrets.json.
func ParseConfig(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	var c Config
	var httpAddr, standinAddr, dataDir string
	p := conf.NewParser("demo", getenv, out)
	p.String(&httpAddr, "http-addr", "NAC_HTTP_ADDR", "127.0.0.1:8080", "the devstack's public API")
	p.String(&standinAddr, "standin-addr", "NAC_STANDIN_ADDR", "127.0.0.1:8081", "the devstack's Dataverse stand-in")
	p.String(&dataDir, "data-dir", "NAC_DATA_DIR", ".data", "the devstack's data directory, whose secrets.json holds the keys not in the environment")
	p.Duration(&c.Timeout, "timeout", "NAC_DEMO_TIMEOUT", time.Minute, "longest wait for the pipeline")
	p.Secret(&c.AdminToken, "NAC_ADMIN_TOKEN")
	p.Secret(&c.ProfileSecret, "NAC_PROFILE_SECRET")
	p.Secret(&c.ClientSecret, "NAC_DATAVERSE_CLIENT_SECRET")
	if err := p.Parse(args); err != nil {
		return c, err
	}
	c.APIURL, c.StandinURL, c.ClientID = "http://"+httpAddr, "http://"+standinAddr, devstack.ClientID
	// A rotating value is "new,old": the new one is the one to use.
	c.AdminToken, c.ProfileSecret = first(c.AdminToken), first(c.ProfileSecret)
	if c.AdminToken == "" || c.ProfileSecret == "" || c.ClientSecret == "" {
		stored, err := readSecrets(filepath.Join(dataDir, "secrets.json"))
		p.Check(err == nil, "%v", err)
		c.AdminToken = cmp.Or(c.AdminToken, stored.AdminToken)
		c.ProfileSecret = cmp.Or(c.ProfileSecret, stored.ProfileSecret)
		c.ClientSecret = cmp.Or(c.ClientSecret, stored.ClientSecret)
	}
	p.Check(c.Timeout > 0, "NAC_DEMO_TIMEOUT=%s: want more than 0", c.Timeout)
	return c, p.Err()
}

func readSecrets(path string) (devstack.Secrets, error) {
	var s devstack.Secrets
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, fmt.Errorf("%s does not exist: start the devstack (make run) first, or set NAC_DATA_DIR or the secrets", path)
	}
	if err != nil {
		return s, fmt.Errorf("read the devstack's secrets: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("decode %s: %w", path, err)
	}
	return s, nil
}

func first(list string) string {
	v, _, _ := strings.Cut(list, ",")
	return strings.TrimSpace(v)
}
