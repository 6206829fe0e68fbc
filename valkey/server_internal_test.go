package valkey

import (
	"strings"
	"testing"
)

func TestVersionsCompareNumericallyPartByPart(t *testing.T) {
	for _, c := range []struct {
		a, b string
		less bool
	}{
		{"8.0.1", "8.0.6", true},
		{"8.0.6", "8.0.6", false},
		{"8.0.10", "8.0.6", false},
		{"8.1.0", "8.0.6", false},
		{"7.2.4", "8.0.6", true},
		{"9", "8.0.6", false},
		{"8.0", "8.0.6", true},
	} {
		if got := versionLess(c.a, c.b); got != c.less {
			t.Errorf("versionLess(%q, %q) = %v, want %v", c.a, c.b, got, c.less)
		}
	}
}

func TestAServerOlderThanTheMinimumIsNamedInTheWarning(t *testing.T) {
	for _, c := range []struct {
		info, want string
	}{
		{"# Server\r\nredis_version:7.2.4\r\nvalkey_version:8.0.1\r\n", "valkey-server 8.0.1 is older than 8.0.6"},
		{"# Server\r\nredis_version:7.2.4\r\nvalkey_version:8.0.6\r\n", ""},
		{"# Server\r\nredis_version:8.1.0\r\n", "not Valkey (redis_version 8.1.0)"},
	} {
		got := versionWarning(c.info)
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("versionWarning(%q) = %q, want %q", c.info, got, c.want)
		}
	}
}
