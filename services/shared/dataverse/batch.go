package dataverse

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"strconv"

	"github.com/google/uuid"
)

// MaxBatch is the most requests Dataverse accepts in one $batch.
const MaxBatch = 1000

// EncodeBatch writes flag writes as a $batch body (multipart/mixed, one
// application/http part per write, no change set, so that each part
// succeeds or fails on its own) and returns its Content-Type. A write that
// does not validate fails the whole encoding.
func EncodeBatch(buf *bytes.Buffer, writes []FlagWrite) (string, error) {
	for i, w := range writes {
		if err := w.Validate(); err != nil {
			return "", fmt.Errorf("write %d: %w", i+1, err)
		}
	}
	mw := multipart.NewWriter(buf)
	if err := mw.SetBoundary("batch_" + uuid.NewString()); err != nil {
		return "", err
	}
	for i, w := range writes {
		ph := textproto.MIMEHeader{}
		ph.Set("Content-Type", "application/http")
		ph.Set("Content-Transfer-Encoding", "binary")
		ph.Set("Content-ID", strconv.Itoa(i+1))
		part, err := mw.CreatePart(ph)
		if err != nil {
			return "", err
		}
		body := w.body()
		fmt.Fprintf(part, "PATCH %s HTTP/1.1\r\n", w.path())
		h := http.Header{}
		writeHeaders(h)
		h.Set("Content-Length", strconv.Itoa(len(body)))
		if err := h.Write(part); err != nil {
			return "", err
		}
		fmt.Fprint(part, "\r\n")
		part.Write(body)
	}
	if err := mw.Close(); err != nil {
		return "", err
	}
	return "multipart/mixed; boundary=" + mw.Boundary(), nil
}

// DecodeBatchResponse reads a $batch response and returns, in request order,
// nil for each part that succeeded and a *StatusError for each that failed.
func DecodeBatchResponse(contentType string, body io.Reader, n int) ([]error, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		return nil, fmt.Errorf("batch response: Content-Type %q is not multipart/mixed", contentType)
	}
	results := make([]error, 0, n)
	mr := multipart.NewReader(body, params["boundary"])
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("batch response part %d: %w", len(results)+1, err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(part), nil)
		if err != nil {
			return nil, fmt.Errorf("batch response part %d: %w", len(results)+1, err)
		}
		results = append(results, statusError(resp.StatusCode, resp.Header, resp.Body))
		resp.Body.Close()
	}
	if len(results) != n {
		return nil, fmt.Errorf("batch response: %d parts for %d requests", len(results), n)
	}
	return results, nil
}

// Batch sends writes in one $batch request with odata.continue-on-error. The
// error is for the batch as a whole (nothing is known of its parts); the
// slice holds each write's outcome in order. A write that does not validate
// is left out of the request and its outcome is an ErrInvalidRequest; when
// none validates, no request is made.
func (c *Client) Batch(ctx context.Context, writes []FlagWrite) ([]error, error) {
	if len(writes) == 0 || len(writes) > MaxBatch {
		return nil, fmt.Errorf("batch of %d writes: want 1-%d", len(writes), MaxBatch)
	}
	results := make([]error, len(writes))
	send := make([]FlagWrite, 0, len(writes))
	sent := make([]int, 0, len(writes)) // index in writes of each part
	for i, w := range writes {
		if results[i] = w.Validate(); results[i] == nil {
			send, sent = append(send, w), append(sent, i)
		}
	}
	if len(send) == 0 {
		return results, nil
	}
	parts, err := c.sendBatch(ctx, send)
	if err != nil {
		return nil, err
	}
	for j, r := range parts {
		results[sent[j]] = r
	}
	return results, nil
}

func (c *Client) sendBatch(ctx context.Context, writes []FlagWrite) ([]error, error) {
	var buf bytes.Buffer
	ct, err := EncodeBatch(&buf, writes)
	if err != nil {
		return nil, fmt.Errorf("encode batch: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+APIPath+"/$batch", &buf)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("OData-Version", "4.0")
	req.Header.Set("OData-MaxVersion", "4.0")
	req.Header.Set("Prefer", "odata.continue-on-error")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("batch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if err := statusError(resp.StatusCode, resp.Header, resp.Body); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("batch: unexpected status %d", resp.StatusCode)
	}
	return DecodeBatchResponse(resp.Header.Get("Content-Type"), resp.Body, len(writes))
}
