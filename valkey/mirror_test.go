package valkey_test

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The Valkey library mirrors sql/functions: valkey/lua/NNN_name.lua holds what
// sql/functions/NNN_name.sql holds, under the same names. The tables below are the exceptions,
// each with its reason; a function or file added on one side alone fails the test until it has a
// counterpart or a line here.

// sqlOnlyFiles are the SQL files with no Lua counterpart.
var sqlOnlyFiles = map[string]string{
	"400_roll_due_windows": "Valkey has no scheduler of its own: every call rolls lazily (the worker rolls PostgreSQL only)",
	"420_due_windows":      "lists the budgets roll_due_windows would roll: PostgreSQL's scheduler only",
	"430_webhooks":         "webhooks live in PostgreSQL; the worker delivers Valkey's events to them from Go",
	"440_budget_gauges":    "on Valkey the worker ranks budgets from budget_status replies in Go (valkey/gauges.go)",
	"001_entry_points":     "entry points and the deploy gate: how PostgreSQL deploys a release under load (FUNCTION LOAD REPLACE is atomic)",
	"990_entry_points":     "the list of entry points; the library registers its functions in 900_registration",
}

// luaOnlyFiles are the Lua files with no SQL counterpart.
var luaOnlyFiles = map[string]string{
	"000_library":      "the library's header: constants, JSON, key names and the clock, which PostgreSQL provides itself",
	"025_storage":      "the storage encoding of a budget; in PostgreSQL the tables of sql/migrations",
	"900_registration": "registers the functions of api as sc_<name>; PostgreSQL's CREATE FUNCTION does that",
}

// sqlOnlyInternal are the spendcap_internal functions with no Lua function of the same name in
// the file of the same name.
var sqlOnlyInternal = map[string]string{
	"future_skew":     "a constant in Lua: FUTURE_SKEW",
	"may_replay":      "a constant in Lua: ALLOW_REPLAY, which the loader rewrites (Valkey has no roles)",
	"known_timezone":  "Valkey has no zone database: the Go client sends a zone's offsets and zone() checks them",
	"max_qty":         "a constant in Lua: MAX_QTY",
	"max_depth":       "a constant in Lua: MAX_DEPTH",
	"max_set":         "a constant in Lua: MAX_SET",
	"ancestors":       "Lua walks a chain from the call's keys where it reads it (charged_set, lock_parent)",
	"record_bring":    "Lua's brought queues these writes itself (one FCALL: nothing to split)",
	"lock_set":        "a Valkey call runs alone: charged_set reads and brings the set, nothing is locked",
	"replay":          "Lua's admit answers a replay inline, after bringing the set as lock_set does",
	"judge":           "Lua's admit judges inline: evaluate and set_outcome are shared",
	"usage_outcome":   "a PostgreSQL result type conversion; Lua answers JSON",
	"batch_text":      "Lua reads each item with quick_report_args or batch_item",
	"batch_ids":       "Lua's lock_batch walks the items' budgets",
	"quick_batch":     "a Valkey call runs alone: each item takes the fast path (fast_apply) or admit in turn",
	"policy_findings": "Valkey keeps no quota counters to check: a policy counts its ZSETs on every acquire",
	"ms_until":        "Lua's times are milliseconds already",
	"purge_rows":      "Valkey expires dedup keys by TTL and purge_events trims a stream with XTRIM",
	"save_policies":   "Valkey keeps no quota counters: the ZSETs are the counts",
	"listed":          "Lua's list_budgets walks its listing index (sorted sets) instead of querying a table",
	"listed_by_id":    "Lua's list_budgets walks its listing index (sorted sets) instead of querying a table",
	"listable":        "Lua's list_budgets tests an entry's id before it reads the budget, its mode and parent after",
	"keys_of":         "Lua's remaining_into walks the deltas table itself",
}

// sqlOnlyAPI are the spendcap functions with no api.<name> in the Lua file of the same name.
var sqlOnlyAPI = map[string]string{
	"purge_expired": "Valkey expires dedup keys and history itself; sc_purge_events trims an event stream",
}

var (
	sqlFunction = regexp.MustCompile(`(?m)^CREATE FUNCTION (spendcap|spendcap_internal)\.(\w+)\(`)
	entryPoint  = regexp.MustCompile(`ensure_entry_point\('(\w+)'`)
	luaFunction = regexp.MustCompile(`(?m)^(?:local )?function (api\.)?(\w+)\(`)
)

// TestLuaMirrorsSQLFunctions holds valkey/lua to the layout and names of sql/functions.
func TestLuaMirrorsSQLFunctions(t *testing.T) {
	sqlFiles := stems(t, "../sql/functions", ".sql")
	luaFiles := stems(t, "lua", ".lua")
	for name := range sqlFiles {
		if _, ok := luaFiles[name]; !ok && sqlOnlyFiles[name] == "" {
			t.Errorf("sql/functions/%s.sql has no valkey/lua/%s.lua (add it, or a reason to sqlOnlyFiles)", name, name)
		}
		if _, ok := luaFiles[name]; ok && sqlOnlyFiles[name] != "" {
			t.Errorf("valkey/lua/%s.lua exists: drop %s from sqlOnlyFiles", name, name)
		}
	}
	for name := range luaFiles {
		if _, ok := sqlFiles[name]; !ok && luaOnlyFiles[name] == "" {
			t.Errorf("valkey/lua/%s.lua has no sql/functions/%s.sql (rename it after its SQL counterpart, or add a reason to luaOnlyFiles)", name, name)
		}
	}
	// The implementation of an entry point (spendcap_internal.<name> behind spendcap.<name>) is the
	// API function the library mirrors as api.<name>.
	api := map[string]bool{}
	for _, m := range entryPoint.FindAllStringSubmatch(sqlFiles["990_entry_points"], -1) {
		api[m[1]] = true
	}
	if len(api) == 0 {
		t.Fatal("sql/functions/990_entry_points.sql lists no entry point")
	}
	used := map[string]bool{}
	for _, name := range sorted(sqlFiles) {
		lua := map[string]bool{}
		for _, m := range luaFunction.FindAllStringSubmatch(luaFiles[name], -1) {
			lua[m[1]+m[2]] = true
		}
		for _, m := range sqlFunction.FindAllStringSubmatch(sqlFiles[name], -1) {
			schema, fn := m[1], m[2]
			want, except := fn, sqlOnlyInternal
			if schema == "spendcap" || api[fn] {
				want, except = "api."+fn, sqlOnlyAPI
			}
			if sqlOnlyFiles[name] != "" {
				continue
			}
			if reason, ok := except[fn]; ok {
				used[fn] = true
				if lua[want] {
					t.Errorf("%s.%s has a Lua counterpart now: drop its exception (%s)", schema, fn, reason)
				}
				continue
			}
			if !lua[want] {
				t.Errorf("%s.%s (sql/functions/%s.sql) has no function %s in valkey/lua/%s.lua", schema, fn, name, want, name)
			}
		}
	}
	for _, except := range []map[string]string{sqlOnlyInternal, sqlOnlyAPI} {
		for fn := range except {
			if !used[fn] {
				t.Errorf("exception %s names no SQL function any more: drop it", fn)
			}
		}
	}
}

// stems reads the files of dir with extension ext: name without extension -> text.
func stems(t *testing.T, dir, ext string) map[string]string {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(dir, "*"+ext))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no %s files in %s: %v", ext, dir, err)
	}
	out := map[string]string{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[strings.TrimSuffix(filepath.Base(p), ext)] = string(b)
	}
	return out
}

func sorted(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
