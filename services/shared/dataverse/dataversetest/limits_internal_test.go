package dataversetest

import (
	"testing"
	"time"
)

func TestSecondsWithSeparator(t *testing.T) {
	t.Parallel()
	for d, want := range map[time.Duration]string{
		0: "0.00", 160 * time.Millisecond: "0.16", 1199460 * time.Millisecond: "1,199.46",
		20 * time.Minute: "1,200.00", 1234567 * time.Second: "1,234,567.00", 999 * time.Second: "999.00",
	} {
		if got := secondsWithSeparator(d); got != want {
			t.Errorf("secondsWithSeparator(%s) = %q, want %q", d, got, want)
		}
	}
}
