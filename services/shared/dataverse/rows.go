package dataverse

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// RequestOptions are the Dataverse headers a generic request may carry.
type RequestOptions struct {
	// SolutionUniqueName puts what a create makes into that solution.
	SolutionUniqueName string
	// CallerID impersonates a systemuser (MSCRMCallerID).
	CallerID string
	// MergeLabels keeps labels in other languages on a metadata update.
	MergeLabels bool
}

func (o *RequestOptions) apply(h http.Header) error {
	if o == nil {
		return nil
	}
	if o.SolutionUniqueName != "" {
		if !IsLogicalName(o.SolutionUniqueName) {
			return fmt.Errorf("solution %q: not a unique name", o.SolutionUniqueName)
		}
		h.Set("MSCRM.SolutionUniqueName", o.SolutionUniqueName)
	}
	if o.CallerID != "" {
		if !IsGUID(o.CallerID) {
			return fmt.Errorf("caller id %q: not a GUID", o.CallerID)
		}
		h.Set("MSCRMCallerID", o.CallerID)
	}
	if o.MergeLabels {
		h.Set("MSCRM.MergeLabels", "true")
	}
	return nil
}

// do sends one request to res (or to the absolute URL next, a nextLink)
// and decodes a JSON answer into out when out is not nil.
func (c *Client) do(ctx context.Context, method string, res Resource, next string, query url.Values, body any, opts *RequestOptions, header http.Header, out any) (http.Header, error) {
	u := c.base.String() + APIPath + "/" + res.path
	if next != "" {
		nu, err := url.Parse(next)
		if err != nil || nu.Scheme != c.base.Scheme || nu.Host != c.base.Host || !strings.HasPrefix(nu.Path, APIPath+"/") {
			// The token must never go anywhere but the environment.
			return nil, fmt.Errorf("nextLink %q is not under %s", next, c.base)
		}
		u = next
	} else if len(query) > 0 {
		// OData wants %20, not +, and keeps $ and , readable.
		u += "?" + strings.ReplaceAll(query.Encode(), "+", "%20")
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode %s body: %w", res, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("OData-Version", "4.0")
	req.Header.Set("OData-MaxVersion", "4.0")
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if err := opts.apply(req.Header); err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, res, err)
	}
	defer resp.Body.Close()
	if err := statusError(resp.StatusCode, resp.Header, resp.Body); err != nil {
		return nil, err
	}
	if out != nil && resp.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(io.LimitReader(resp.Body, 64<<20)).Decode(out); err != nil {
			return nil, fmt.Errorf("decode %s %s: %w", method, res, err)
		}
	}
	return resp.Header, nil
}

// Get reads one resource into out.
func (c *Client) Get(ctx context.Context, res Resource, query url.Values, opts *RequestOptions, out any) error {
	_, err := c.do(ctx, http.MethodGet, res, "", query, nil, opts, nil, out)
	return err
}

// List reads a collection, following @odata.nextLink to the end, at most
// maxRows rows (0: no limit).
func (c *Client) List(ctx context.Context, res Resource, query url.Values, opts *RequestOptions, maxRows int) ([]map[string]any, error) {
	var rows []map[string]any
	next := ""
	for {
		var page struct {
			Value    []map[string]any `json:"value"`
			NextLink string           `json:"@odata.nextLink"`
		}
		if _, err := c.do(ctx, http.MethodGet, res, next, query, nil, opts, nil, &page); err != nil {
			return nil, err
		}
		rows = append(rows, page.Value...)
		if maxRows > 0 && len(rows) >= maxRows {
			return rows[:maxRows], nil
		}
		if page.NextLink == "" {
			return rows, nil
		}
		next = page.NextLink
	}
}

var entityIDRE = regexp.MustCompile(`\(([0-9a-fA-F-]{36})\)$`)

// Create POSTs a new row (or column definition) to res and returns its id,
// read from OData-EntityId.
func (c *Client) Create(ctx context.Context, res Resource, body any, opts *RequestOptions) (string, error) {
	h, err := c.do(ctx, http.MethodPost, res, "", nil, body, opts, nil, nil)
	if err != nil {
		return "", err
	}
	m := entityIDRE.FindStringSubmatch(h.Get("OData-EntityId"))
	if m == nil || !IsGUID(m[1]) {
		return "", fmt.Errorf("create %s: no id in OData-EntityId %q", res, h.Get("OData-EntityId"))
	}
	return strings.ToLower(m[1]), nil
}

// Update PATCHes an existing row; a missing row is an error, never created.
func (c *Client) Update(ctx context.Context, res Resource, body any, opts *RequestOptions) error {
	_, err := c.do(ctx, http.MethodPatch, res, "", nil, body, opts, http.Header{"If-Match": {"*"}}, nil)
	return err
}

// Delete deletes a row.
func (c *Client) Delete(ctx context.Context, res Resource, opts *RequestOptions) error {
	_, err := c.do(ctx, http.MethodDelete, res, "", nil, nil, opts, nil, nil)
	return err
}

// Invoke calls an unbound action (POST) and decodes its answer into out
// when out is not nil.
func (c *Client) Invoke(ctx context.Context, action Resource, body any, opts *RequestOptions, out any) error {
	if body == nil {
		body = map[string]any{}
	}
	_, err := c.do(ctx, http.MethodPost, action, "", nil, body, opts, nil, out)
	return err
}
