package valkey

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The cluster's key hash, checked against the values the cluster specification and the server
// give.
func TestCRC16IsTheClusterKeyHash(t *testing.T) {
	for s, want := range map[string]uint16{"123456789": 0x31C3} {
		if got := crc16(s); got != want {
			t.Errorf("crc16(%q) = %#x, want %#x", s, got, want)
		}
	}
	for key, slot := range map[string]uint16{"foo": 12182, "somekey": 11058} {
		if got := crc16(key) & 16383; got != slot {
			t.Errorf("slot of %q = %d, want %d", key, got, slot)
		}
	}
}

// Each slot's listing index is named with a tag of that slot, and the library names it with the
// same tag as the Go client.
func TestSlotTagsNameTheirSlotInGoAndInTheLibrary(t *testing.T) {
	tags := slotTags()
	for slot, tag := range tags {
		if int(crc16(tag)&16383) != slot || len(tag) != 3 {
			t.Fatalf("tag %q of slot %d hashes to slot %d", tag, slot, crc16(tag)&16383)
		}
	}
	src, err := os.ReadFile("lua/025_storage.lua")
	if err != nil {
		t.Fatal(err)
	}
	table := regexp.MustCompile(`(?s)local SLOT_TAGS = \{(.*?)\n\}`).FindSubmatch(src)
	if table == nil {
		t.Fatal("no SLOT_TAGS table in lua/025_storage.lua")
	}
	var lua strings.Builder
	for _, m := range regexp.MustCompile(`'([0-9A-Za-z]*)'`).FindAllSubmatch(table[1], -1) {
		if len(m[1]) != 64*3 {
			t.Fatalf("a SLOT_TAGS string holds %d characters, want 64 tags of 3", len(m[1]))
		}
		lua.Write(m[1])
	}
	if lua.String() != strings.Join(tags, "") {
		t.Error("the library's SLOT_TAGS differ from the Go client's slot tags")
	}
}
