package errcode_test

import (
	"testing"

	"github.com/spendcap/spendcap/internal/errcode"
)

func TestOnlySpendcapCodesAreKnown(t *testing.T) {
	for _, c := range []string{"SC001", "SC002", "SC003", "SC004", "SC005", "SC006", "SC007"} {
		if !errcode.Known(c) {
			t.Errorf("%s is not known", c)
		}
	}
	for _, c := range []string{"", "SC000", "SC008", "42501", "P0001", "ERR"} {
		if errcode.Known(c) {
			t.Errorf("%q is known", c)
		}
	}
}
