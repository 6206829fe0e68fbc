package valkey

import (
	"testing"
	"time"
)

func TestZoneOffsetsFollowGoZoneData(t *testing.T) {
	at := time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)
	ny := zoneOffsets("America/New_York", at)
	// 2026-03-08 07:00 UTC: EST (-5h) becomes EDT (-4h).
	found := false
	for _, p := range ny {
		found = found || (p[0] == time.Date(2026, 3, 8, 7, 0, 0, 0, time.UTC).UnixMilli() && p[1] == -4*3600)
	}
	last := ny[len(ny)-1][0]
	if !found || last < time.Date(2055, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli() {
		t.Errorf("New York table lacks the 2026 change or ends at %v", time.UnixMilli(last))
	}
	if k := zoneOffsets("Asia/Kolkata", at); len(k) != 1 || k[0][1] != 19800 {
		t.Errorf("Kolkata: %v", k)
	}
	for _, z := range []string{"UTC", "+05:30", "-03:00", "", "Not/AZone"} {
		if o := zoneOffsets(z, at); o != nil {
			t.Errorf("%q: %v, want nil", z, o)
		}
	}
}
