package migrator

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Status is what `migrate status` reports: applied and pending items of each component.
type Status struct {
	Release   ReleaseStatus    `json:"release"`
	Schema    SchemaStatus     `json:"schema"`
	Functions []FunctionStatus `json:"functions"`
	River     RiverStatus      `json:"river"`
	// LeftoverFunctions are the functions in spendcap's schemas that no file defines (left by a
	// deleted or renamed file); `up` drops them.
	LeftoverFunctions []string `json:"leftover_functions"`
	// Pending is true when `migrate up` would change something.
	Pending bool `json:"pending"`
}

// ReleaseStatus names the release the database runs and the one this migrate deploys.
type ReleaseStatus struct {
	// Database is the release last deployed on the database ("" when unknown).
	Database string `json:"database"`
	// Inferred is true when the database predates release records and Database was read from its
	// schema version.
	Inferred bool `json:"inferred"`
	// Binary is the release this migrate deploys.
	Binary string `json:"binary"`
}

// SchemaStatus lists the schema migrations.
type SchemaStatus struct {
	Version    uint              `json:"version"`
	Dirty      bool              `json:"dirty"`
	Migrations []MigrationStatus `json:"migrations"`
}

// MigrationStatus is one schema migration.
type MigrationStatus struct {
	Version uint   `json:"version"`
	Name    string `json:"name"`
	Applied bool   `json:"applied"`
}

// FunctionStatus is one sql/functions file: "applied", "pending" (never applied), "changed"
// (applied with another content or onto another schema version) or "removed" (applied once, no
// longer in sql/functions: `up` forgets it and drops the functions no file defines).
type FunctionStatus struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	State  string `json:"state"`
}

// RiverStatus lists River's migration versions.
type RiverStatus struct {
	Applied []int `json:"applied"`
	Pending []int `json:"pending"`
}

// Status reads the state of every component without writing or locking.
func (m *Migrator) Status(ctx context.Context) (*Status, error) {
	conn, err := m.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	st := &Status{Functions: []FunctionStatus{}, River: RiverStatus{Applied: []int{}, Pending: []int{}}}
	st.Schema.Version, st.Schema.Dirty, err = schemaVersion(ctx, conn)
	if err != nil {
		return nil, err
	}
	migs, err := Migrations(m.opts.FS)
	if err != nil {
		return nil, err
	}
	for _, mg := range migs {
		applied := mg.Version <= st.Schema.Version
		st.Schema.Migrations = append(st.Schema.Migrations, MigrationStatus{Version: mg.Version, Name: mg.Name, Applied: applied})
		st.Pending = st.Pending || !applied
	}
	st.Pending = st.Pending || st.Schema.Dirty
	st.Release.Binary = CurrentRelease(m.opts.FS)
	if st.Release.Database, st.Release.Inferred, err = databaseRelease(ctx, conn, m.opts.FS, st.Schema.Version); err != nil {
		return nil, err
	}
	st.Pending = st.Pending || st.Release.Database != st.Release.Binary

	files, err := FunctionFiles(m.opts.FS)
	if err != nil {
		return nil, err
	}
	recs, err := functionRecords(ctx, conn)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		state := "applied"
		if r, ok := recs[f.Name]; !ok {
			state = "pending"
		} else if r.sha256 != f.SHA256 || r.schemaVersion != int64(st.Schema.Version) {
			state = "changed"
		}
		st.Pending = st.Pending || state != "applied"
		st.Functions = append(st.Functions, FunctionStatus{Name: f.Name, SHA256: f.SHA256, State: state})
	}
	var removed []string
	for name := range recs {
		if !slices.ContainsFunc(files, func(f FunctionFile) bool { return f.Name == name }) {
			removed = append(removed, name)
		}
	}
	slices.Sort(removed)
	for _, name := range removed {
		st.Functions = append(st.Functions, FunctionStatus{Name: name, SHA256: recs[name].sha256, State: "removed"})
		st.Pending = true
	}
	if st.LeftoverFunctions, err = leftoverFunctions(ctx, conn, files); err != nil {
		return nil, err
	}
	if st.LeftoverFunctions == nil {
		st.LeftoverFunctions = []string{}
	}
	st.Pending = st.Pending || len(st.LeftoverFunctions) > 0

	rm, pool, err := m.riverMigrator(ctx)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	var riverExists bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('river_migration') IS NOT NULL`).Scan(&riverExists); err != nil {
		return nil, err
	}
	applied := map[int]bool{}
	if riverExists {
		existing, err := rm.ExistingVersions(ctx)
		if err != nil {
			return nil, fmt.Errorf("river versions: %w", err)
		}
		for _, v := range existing {
			applied[v.Version] = true
			st.River.Applied = append(st.River.Applied, v.Version)
		}
	}
	for _, v := range rm.AllVersions() {
		if !applied[v.Version] {
			st.River.Pending = append(st.River.Pending, v.Version)
		}
	}
	slices.Sort(st.River.Applied)
	st.Pending = st.Pending || len(st.River.Pending) > 0
	return st, nil
}

// Text renders the status for people.
func (st *Status) Text() string {
	var b strings.Builder
	dirty := ""
	if st.Schema.Dirty {
		dirty = " (dirty)"
	}
	fmt.Fprintf(&b, "release %s, this migrate deploys %s\n", releaseText(st.Release.Database, st.Release.Inferred), orUnknown(st.Release.Binary))
	fmt.Fprintf(&b, "schema version %d%s\n", st.Schema.Version, dirty)
	for _, mg := range st.Schema.Migrations {
		fmt.Fprintf(&b, "  %-8s %06d_%s\n", state(mg.Applied), mg.Version, mg.Name)
	}
	fmt.Fprintf(&b, "functions\n")
	for _, f := range st.Functions {
		fmt.Fprintf(&b, "  %-8s %s\n", f.State, f.Name)
	}
	for _, f := range st.LeftoverFunctions {
		fmt.Fprintf(&b, "  %-8s %s (no file defines it)\n", "leftover", f)
	}
	fmt.Fprintf(&b, "river\n  applied  %v\n  pending  %v\n", st.River.Applied, st.River.Pending)
	return b.String()
}

func state(applied bool) string {
	if applied {
		return "applied"
	}
	return "pending"
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// releaseText is a database's release for people: "v0.3.0", "v0.3.0 (from its schema version)"
// or "unknown".
func releaseText(name string, inferred bool) string {
	if inferred {
		return name + " (from its schema version)"
	}
	return orUnknown(name)
}
