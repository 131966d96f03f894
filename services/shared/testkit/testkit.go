// Package testkit holds what the services' tests share: an embedded
// nats-server and JetStream on it with the topology declared, a dump of KV
// buckets, a service run as its main runs it (RunService), a recording
// jetstream.Msg, a buffer logs can be written to concurrently, and waiting
// for a condition.
package testkit

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Eventually polls cond until it holds, failing the test after timeout;
// detail, when given, adds to the failure what was last seen.
func Eventually(tb testing.TB, what string, timeout time.Duration, cond func() bool, detail ...func() string) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("%s: not within %s", what, timeout)
			for _, d := range detail {
				msg += " (" + d() + ")"
			}
			tb.Fatal(msg)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// WaitHTTP polls url until it answers status, failing the test after
// timeout with the last answer.
func WaitHTTP(tb testing.TB, url string, status int, timeout time.Duration) {
	tb.Helper()
	waitHTTP(tb, url, status, timeout, nil)
}

// waitHTTP is WaitHTTP that also fails the test as soon as stopped
// reports an error.
func waitHTTP(tb testing.TB, url string, status int, timeout time.Duration, stopped func() error) {
	tb.Helper()
	client := &http.Client{Timeout: time.Second}
	var last string
	Eventually(tb, url+" answering "+http.StatusText(status), timeout, func() bool {
		if stopped != nil {
			if err := stopped(); err != nil {
				tb.Fatal(err)
			}
		}
		res, err := client.Get(url)
		if err != nil {
			last = err.Error()
			return false
		}
		_ = res.Body.Close()
		last = res.Status
		return res.StatusCode == status
	}, func() string { return "last: " + last })
}
