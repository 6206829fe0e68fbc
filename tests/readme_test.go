package tests

import (
	"os"
	"strings"
	"testing"

	"github.com/spendcap/spendcap/internal/testenv"
)

func TestReadmeSQLQuickStartRuns(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, found := strings.Cut(string(readme), "```sql\n")
	block, _, closed := strings.Cut(rest, "```")
	if !found || !closed {
		t.Fatal("README.md has no ```sql block")
	}
	db := testenv.Pool(t)
	if _, err := db.Exec(ctx, block); err != nil {
		t.Fatalf("README quick start: %v", err)
	}
	st := mustStatus(t, db, "team-a", nil)
	if st.Usage["tokens"] != 3950 || st.Reserved["tokens"] != 0 {
		t.Errorf("after the quick start: usage %v reserved %v", st.Usage, st.Reserved)
	}
}
