package nacctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// adminClient calls the admin API with the bearer token, naming the actor
// (X-Nac-Actor) for the audit trail when one is set.
type adminClient struct {
	hc    *http.Client
	base  string
	token string
	actor string
}

func newAdminClient(hc *http.Client, apiURL, token, actor string) adminClient {
	return adminClient{hc: hc, base: strings.TrimRight(apiURL, "/"), token: token, actor: actor}
}

// adminError is an answer other than 2xx, with what its problem document says.
type adminError struct {
	status int
	detail string
}

func (e *adminError) Error() string { return fmt.Sprintf("admin API %d: %s", e.status, e.detail) }

// raw sends body (JSON, when not nil) and returns the answer's body.
func (a adminClient) raw(ctx context.Context, method, path string, body []byte) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if a.actor != "" {
		req.Header.Set("X-Nac-Actor", a.actor)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var p struct {
			Title, Detail string
			Errors        []struct{ Field, Reason string }
		}
		_ = json.Unmarshal(raw, &p)
		detail := p.Title + ": " + p.Detail
		for _, e := range p.Errors {
			detail += "; " + e.Field + ": " + e.Reason
		}
		return nil, &adminError{status: resp.StatusCode, detail: detail}
	}
	return raw, nil
}

// call is raw with body encoded as JSON and the answer decoded into out.
func (a adminClient) call(ctx context.Context, method, path string, body, out any) error {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return err
		}
	}
	raw, err := a.raw(ctx, method, path, b)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	return nil
}
