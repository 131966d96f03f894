// Package dataverse is a client of the Dataverse (Dynamics 365) Web API: the
// OData v4 endpoints under /api/data/v9.2, authenticated with OAuth2 client
// credentials. Its sibling dataversetest is an in-memory stand-in that
// speaks the same protocol, for tests and the devstack.
package dataverse

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// APIPath is the Web API root every request goes under.
const APIPath = "/api/data/v9.2"

// Credentials of an Entra ID application user (client credentials grant).
type Credentials struct {
	TokenURL     string // e.g. https://login.microsoftonline.com/<tenant>/oauth2/v2.0/token
	ClientID     string
	ClientSecret string
	// ClientSecretFile, when set, is where ClientSecret came from (a
	// mounted Secret): it is read again before every token fetch, so a
	// rotated secret is used from the next token on without a restart.
	ClientSecretFile string
	// Scope defaults to "<environment URL>/.default".
	Scope string
}

// Client talks to one Dataverse environment.
type Client struct {
	base *url.URL
	http *http.Client
}

// Options tune a client.
type Options struct {
	// Timeout of one request (the token fetch included).
	Timeout time.Duration
	// OnTokenFetch is called whenever a new access token was fetched.
	OnTokenFetch func()
	// OnRateLimit is called with the service protection headers of every
	// response that carries them.
	OnRateLimit func(RateLimit)
}

// New returns a client of the environment at baseURL
// (https://<org>.crm.dynamics.com). Tokens are fetched with creds, cached,
// refreshed a minute before they expire and on a 401; tokenCtx bounds
// their fetching.
func New(tokenCtx context.Context, baseURL string, creds Credentials, opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("dataverse URL %q: want https://<org>.crm.dynamics.com", baseURL)
	}
	scope := creds.Scope
	if scope == "" {
		scope = u.Scheme + "://" + u.Host + "/.default"
	}
	if opts.Timeout > 0 {
		// x/oauth2 fetches tokens with the client in the context, else with
		// http.DefaultClient, which never times out: a hanging token endpoint
		// would hold every request of the environment behind the cache's
		// lock, whatever their own deadline.
		tokenCtx = context.WithValue(tokenCtx, oauth2.HTTPClient, &http.Client{Timeout: opts.Timeout})
	}
	tokens := &tokenCache{
		ctx: tokenCtx, onFetch: opts.OnTokenFetch, secretFile: creds.ClientSecretFile,
		cfg: &clientcredentials.Config{
			ClientID: creds.ClientID, ClientSecret: creds.ClientSecret,
			TokenURL: creds.TokenURL, Scopes: []string{scope},
		},
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.MaxIdleConnsPerHost = 64 // Dataverse allows 52 concurrent requests per user
	hc := &http.Client{
		Timeout:   opts.Timeout,
		Transport: &authTransport{tokens: tokens, base: base, observe: opts.OnRateLimit},
	}
	return &Client{base: u, http: hc}, nil
}

// StatusError is an answer other than 2xx, with Dataverse's error body.
type StatusError struct {
	Status     int
	Code       string // OData error code, e.g. "0x80040217"
	Message    string
	RetryAfter time.Duration // from Retry-After on 429 and 503
}

func (e *StatusError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("dataverse %d %s: %s", e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("dataverse %d: %s", e.Status, e.Message)
}

// Transient reports whether retrying later may succeed.
func (e *StatusError) Transient() bool {
	return e.Status == http.StatusTooManyRequests || e.Status == http.StatusRequestTimeout || e.Status >= 500
}

// FlagWrite sets one contact's flag column.
type FlagWrite struct {
	ContactID string
	Column    string
	Value     int
	// Tag comes back to our webhook as the shared variable "tag", which is
	// how ingest recognizes the change as our own.
	Tag string
	// Also are further columns set in the same write (the evidence beside
	// the flag); a nil value clears its column.
	Also map[string]any
}

// path is the write's request target; w must have passed Validate.
func (w FlagWrite) path() string {
	p := APIPath + "/contacts(" + w.ContactID + ")"
	if w.Tag != "" {
		p += "?tag=" + url.QueryEscape(w.Tag)
	}
	return p
}

func (w FlagWrite) body() []byte {
	if len(w.Also) == 0 {
		b, _ := json.Marshal(map[string]int{w.Column: w.Value})
		return b
	}
	cols := make(map[string]any, len(w.Also)+1)
	for k, v := range w.Also {
		cols[k] = v
	}
	cols[w.Column] = w.Value
	b, _ := json.Marshal(cols)
	return b
}

// writeHeaders are the headers of a flag write: never create a missing row
// (If-Match: *), and do not run our own webhook again for it.
func writeHeaders(h http.Header) {
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("If-Match", "*")
	h.Set("OData-Version", "4.0")
	h.Set("OData-MaxVersion", "4.0")
	h.Set("MSCRM.SuppressCallbackRegistrationExpanderJob", "true")
}

// PatchFlag writes one flag with its own request. A write that does not
// validate is an ErrInvalidRequest, and no request is made.
func (c *Client) PatchFlag(ctx context.Context, w FlagWrite) error {
	if err := w.Validate(); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, c.base.String()+w.path(), bytes.NewReader(w.body()))
	if err != nil {
		return err
	}
	writeHeaders(req.Header)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("patch contact %s: %w", w.ContactID, err)
	}
	defer resp.Body.Close()
	return statusError(resp.StatusCode, resp.Header, resp.Body)
}

// GetRow reads a row of entitySet ("contacts") with the selected columns.
// An entity set, id or column that does not validate is an
// ErrInvalidRequest, and no request is made.
func (c *Client) GetRow(ctx context.Context, entitySet, id string, columns ...string) (map[string]any, error) {
	if err := checkIdentifier("entity set", entitySet); err != nil {
		return nil, err
	}
	if err := checkGUID("id", id); err != nil {
		return nil, err
	}
	for _, col := range columns {
		if err := checkIdentifier("column", col); err != nil {
			return nil, err
		}
	}
	u := c.base.String() + APIPath + "/" + entitySet + "(" + id + ")"
	if len(columns) > 0 {
		u += "?$select=" + url.QueryEscape(strings.Join(columns, ","))
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("OData-Version", "4.0")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get %s %s: %w", entitySet, id, err)
	}
	defer resp.Body.Close()
	if err := statusError(resp.StatusCode, resp.Header, resp.Body); err != nil {
		return nil, err
	}
	var row map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&row); err != nil {
		return nil, fmt.Errorf("decode %s %s: %w", entitySet, id, err)
	}
	return row, nil
}

// statusError returns nil for 2xx, else a *StatusError read from the body.
func statusError(status int, h http.Header, body io.Reader) error {
	if status >= 200 && status < 300 {
		return nil
	}
	e := &StatusError{Status: status, Message: http.StatusText(status)}
	var odata struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if b, _ := io.ReadAll(io.LimitReader(body, 64<<10)); json.Unmarshal(b, &odata) == nil && odata.Error.Message != "" {
		e.Code, e.Message = odata.Error.Code, odata.Error.Message
	}
	e.RetryAfter = retryAfter(h)
	return e
}
