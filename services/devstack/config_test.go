package devstack_test

import (
	"io"
	"strings"
	"testing"

	"github.com/notatcompany/notatcompany/services/devstack"
)

func TestParseConfigRefusesEveryProblem(t *testing.T) {
	t.Parallel()
	env := map[string]string{"NAC_LOG_LEVEL": "verbose", "NAC_LOG_FORMAT": "xml", "NAC_WRITER_REPLICAS": "9", "NAC_NATS_ADDR": "nowhere"}
	_, err := devstack.ParseConfig(nil, func(k string) string { return env[k] }, io.Discard)
	for _, want := range []string{"NAC_LOG_LEVEL", "NAC_LOG_FORMAT", "NAC_WRITER_REPLICAS=9", "NAC_NATS_ADDR"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseConfig = %v, want it to name %s", err, want)
		}
	}
}
