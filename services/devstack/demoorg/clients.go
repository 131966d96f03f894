package demoorg

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/notatcompany/notatcompany/services/shared/dataverse"
)

// crm is the stand-in's Web API, as the demo's people use it: the
// devstack's application user, impersonating a seller (MSCRMCallerID) for
// what that seller does.
type crm struct{ c *dataverse.Client }

func (c crm) create(ctx context.Context, set string, cols map[string]any, as user) (string, error) {
	res, err := dataverse.Set(set)
	if err != nil {
		return "", err
	}
	var opts *dataverse.RequestOptions
	if as.id != "" {
		opts = &dataverse.RequestOptions{CallerID: as.id}
	}
	id, err := c.c.Create(ctx, res, cols, opts)
	if err != nil {
		return "", fmt.Errorf("create %s as %s: %w", set, as.name, err)
	}
	return id, nil
}

func (c crm) update(ctx context.Context, set, id string, cols map[string]any, as user) error {
	res, err := dataverse.RowOf(set, id)
	if err != nil {
		return err
	}
	if err := c.c.Update(ctx, res, cols, &dataverse.RequestOptions{CallerID: as.id}); err != nil {
		return fmt.Errorf("update %s(%s) as %s: %w", set, id, as.name, err)
	}
	return nil
}

// get reads the columns of one row; ok is false when it does not exist.
func (c crm) get(ctx context.Context, set, id string, cols ...string) (row map[string]any, ok bool, err error) {
	res, err := dataverse.RowOf(set, id)
	if err != nil {
		return nil, false, err
	}
	err = c.c.Get(ctx, res, map[string][]string{"$select": {strings.Join(cols, ",")}}, nil, &row)
	var status *dataverse.StatusError
	if errors.As(err, &status) && status.Status == http.StatusNotFound {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("read %s(%s): %w", set, id, err)
	}
	return row, true, nil
}

// whoAmI is the organization the stand-in is.
func (c crm) whoAmI(ctx context.Context) (string, error) {
	res, _ := dataverse.Operation("WhoAmI")
	var out struct{ OrganizationId string }
	if err := c.c.Get(ctx, res, nil, nil, &out); err != nil {
		return "", fmt.Errorf("WhoAmI: %w", err)
	}
	return strings.ToLower(out.OrganizationId), nil
}

// ingest is notatcompany's public API: the signed profile feed and the
// admin API.
type ingest struct {
	base          string
	http          *http.Client
	adminToken    string
	profileSecret string
}

// postEvents posts events as one signed batch and fails unless every
// event was accepted.
func (in ingest) postEvents(ctx context.Context, events []event) error {
	body, err := json.Marshal(events)
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, []byte(in.profileSecret))
	mac.Write(body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.base+"/webhooks/profile", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-LI-Signature", hex.EncodeToString(mac.Sum(nil)))
	var res struct {
		Accepted, Refused int
	}
	status, raw, err := in.do(req, &res)
	if err != nil {
		return fmt.Errorf("POST /webhooks/profile: %w", err)
	}
	if status != http.StatusOK || res.Refused > 0 || res.Accepted != len(events) {
		return fmt.Errorf("POST /webhooks/profile: %d, %d of %d events accepted: %s", status, res.Accepted, len(events), raw)
	}
	return nil
}

// admin calls the admin API and decodes a JSON answer into out.
func (in ingest) admin(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, in.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+in.adminToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	status, raw, err := in.do(req, out)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	if status/100 != 2 {
		return fmt.Errorf("%s %s: %d %s", method, path, status, raw)
	}
	return nil
}

func (in ingest) do(req *http.Request, out any) (int, []byte, error) {
	resp, err := in.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return resp.StatusCode, nil, err
	}
	if out != nil && resp.StatusCode/100 == 2 && len(raw) > 0 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, raw, fmt.Errorf("decode the answer: %w", err)
		}
	}
	return resp.StatusCode, bytes.TrimSpace(raw), nil
}

// poll calls done every interval until it reports true, fails, or the
// timeout passes.
func poll(ctx context.Context, timeout, interval time.Duration, what string, done func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok, err := done()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: not after %s", what, timeout)
		case <-tick.C:
		}
	}
}
