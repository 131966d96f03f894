package conf

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func writeSecret(t *testing.T, path, value string) {
	t.Helper()
	// Written beside and renamed into place, as the kubelet swaps a
	// Secret volume's files, so a reader never sees half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(value), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func secretParser(env map[string]string) *Parser {
	return NewParser("test", func(k string) string { return env[k] }, io.Discard)
}

func TestSecretsReadFromEnvOrFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "key")
	writeSecret(t, file, "  from-file\n")
	p := secretParser(map[string]string{
		"NAC_A": "from-env", "NAC_A_FILE": file, // env wins
		"NAC_B_FILE": file,
		"NAC_C_FILE": filepath.Join(dir, "missing"),
	})
	s := p.Secrets("NAC_A", "NAC_B", "NAC_C", "NAC_D")
	if got := s.Get("NAC_A"); got != "from-env" {
		t.Errorf("NAC_A = %q, want the environment's", got)
	}
	if got := s.Get("NAC_B"); got != "from-file" {
		t.Errorf("NAC_B = %q, want the trimmed file content", got)
	}
	if got := s.Get("NAC_D"); got != "" {
		t.Errorf("NAC_D = %q, want unset", got)
	}
	err := p.Err()
	if err == nil || !strings.Contains(err.Error(), "NAC_C_FILE") {
		t.Fatalf("Err() = %v, want the unreadable NAC_C_FILE reported", err)
	}
	if !s.Watched() {
		t.Error("Watched() = false with secrets from files")
	}
}

func TestSecretsReloadAppliesAChangedFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "key")
	writeSecret(t, file, "old-key")
	s := secretParser(map[string]string{"NAC_KEY_FILE": file, "NAC_ENV": "fixed"}).Secrets("NAC_KEY", "NAC_ENV")

	calls := 0
	accept := func(map[string]string) error { calls++; return nil }
	if changed, err := s.Reload(accept); err != nil || changed != nil || calls != 0 {
		t.Fatalf("unchanged file: changed %v, err %v, apply called %d times", changed, err, calls)
	}

	writeSecret(t, file, "new-key,old-key\n")
	var offered map[string]string
	changed, err := s.Reload(func(v map[string]string) error { offered = v; return nil })
	if err != nil || !slices.Equal(changed, []string{"NAC_KEY"}) {
		t.Fatalf("Reload = %v, %v; want [NAC_KEY], nil", changed, err)
	}
	if offered["NAC_KEY"] != "new-key,old-key" || offered["NAC_ENV"] != "fixed" {
		t.Errorf("apply got %v, want the whole new set", offered)
	}
	if got := s.Get("NAC_KEY"); got != "new-key,old-key" {
		t.Errorf("Get after reload = %q", got)
	}
	if got := s.Snapshot(); got["NAC_ENV"] != "fixed" || got["NAC_KEY"] != "new-key,old-key" {
		t.Errorf("Snapshot = %v", got)
	}
}

func TestSecretsReloadKeepsTheOldSetWhenApplyRefuses(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "key")
	writeSecret(t, file, "good")
	s := secretParser(map[string]string{"NAC_KEY_FILE": file}).Secrets("NAC_KEY")

	writeSecret(t, file, "bad")
	refuse := errors.New("too short")
	calls := 0
	_, err := s.Reload(func(map[string]string) error { calls++; return refuse })
	if !errors.Is(err, refuse) || !strings.Contains(err.Error(), "NAC_KEY") {
		t.Fatalf("Reload err = %v, want the refusal naming NAC_KEY", err)
	}
	if strings.Contains(err.Error(), "bad") {
		t.Errorf("error %q shows the secret's value", err)
	}
	if got := s.Get("NAC_KEY"); got != "good" {
		t.Errorf("Get = %q after a refused change, want the old value", got)
	}
	// The same refused content is not offered again at every poll...
	if changed, err := s.Reload(func(map[string]string) error { calls++; return refuse }); changed != nil || err != nil || calls != 1 {
		t.Errorf("second poll: changed %v, err %v, apply called %d times; want nothing", changed, err, calls)
	}
	// ...but a fixed file is.
	writeSecret(t, file, "fixed")
	if _, err := s.Reload(func(map[string]string) error { return nil }); err != nil || s.Get("NAC_KEY") != "fixed" {
		t.Errorf("after the fix: err %v, value %q", err, s.Get("NAC_KEY"))
	}
}

func TestSecretsReloadRetriesAfterAReadError(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "key")
	writeSecret(t, file, "one")
	s := secretParser(map[string]string{"NAC_KEY_FILE": file}).Secrets("NAC_KEY")
	if err := os.Remove(file); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reload(func(map[string]string) error { return nil }); err == nil || !strings.Contains(err.Error(), "NAC_KEY_FILE") {
		t.Fatalf("Reload of a missing file: err %v", err)
	}
	if s.Get("NAC_KEY") != "one" {
		t.Errorf("a read error changed the value to %q", s.Get("NAC_KEY"))
	}
	writeSecret(t, file, "two")
	if changed, err := s.Reload(func(map[string]string) error { return nil }); err != nil || len(changed) != 1 || s.Get("NAC_KEY") != "two" {
		t.Errorf("after the file is back: changed %v, err %v, value %q", changed, err, s.Get("NAC_KEY"))
	}
}

func TestSecretsWatchPollsUntilCancelled(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "key")
	writeSecret(t, file, "first")
	s := secretParser(map[string]string{"NAC_KEY_FILE": file}).Secrets("NAC_KEY")

	var mu sync.Mutex
	var reports [][]string
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Watch(ctx, 5*time.Millisecond, func(map[string]string) error { return nil }, func(changed []string, err error) {
			mu.Lock()
			defer mu.Unlock()
			reports = append(reports, changed)
		})
	}()
	writeSecret(t, file, "second")
	deadline := time.Now().Add(10 * time.Second)
	for s.Get("NAC_KEY") != "second" {
		if time.Now().After(deadline) {
			t.Fatal("the watcher never picked up the rewritten file")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reports) != 1 || !slices.Equal(reports[0], []string{"NAC_KEY"}) {
		t.Errorf("reports %v, want one naming NAC_KEY", reports)
	}
}

func TestSecretsWatchWithoutFilesWaitsForCancel(t *testing.T) {
	s := secretParser(map[string]string{"NAC_KEY": "env"}).Secrets("NAC_KEY")
	if s.Watched() {
		t.Fatal("Watched() = true with no files")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- s.Watch(ctx, time.Millisecond, func(map[string]string) error { t.Error("apply called"); return nil }, func([]string, error) {})
	}()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Watch = %v", err)
	}
}
