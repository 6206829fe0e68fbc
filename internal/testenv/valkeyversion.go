package testenv

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/spendcap/spendcap/valkey"
)

// ValkeyVersion reads the server's valkey_version and says whether it is older than
// valkey.MinServerVersion, for tests of the warnings about old servers. It parses the version on
// its own (not with the code under test) so that a broken comparison there is caught.
func ValkeyVersion(t testing.TB, rdb *redis.Client) (version string, older bool) {
	t.Helper()
	info, err := rdb.Info(context.Background(), "server").Result()
	if err != nil {
		t.Fatalf("testenv: INFO server: %v", err)
	}
	for _, line := range strings.Split(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "valkey_version:"); ok {
			version = v
		}
	}
	if version == "" {
		t.Fatalf("testenv: the server reports no valkey_version")
	}
	var got, minimum [3]int
	if _, err := fmt.Sscanf(version, "%d.%d.%d", &got[0], &got[1], &got[2]); err != nil {
		t.Fatalf("testenv: valkey_version %q: %v", version, err)
	}
	if _, err := fmt.Sscanf(valkey.MinServerVersion, "%d.%d.%d", &minimum[0], &minimum[1], &minimum[2]); err != nil {
		t.Fatalf("testenv: MinServerVersion %q: %v", valkey.MinServerVersion, err)
	}
	return version, slices.Compare(got[:], minimum[:]) < 0
}
