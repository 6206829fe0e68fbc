package migrator

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// deploy applies the pending schema migrations and the changed function files in one
// transaction, and records the release. Callers see the old schema and functions or the new
// ones, never a mix: split in two, the old functions would run against the new schema (42804,
// "function return row and query-specified return row do not match") until the second
// transaction committed. A failure leaves the database as it was, never dirty.
func (m *Migrator) deploy(ctx context.Context, conn *pgx.Conn, res *UpResult) error {
	from, dirty, err := schemaVersion(ctx, conn)
	if err != nil {
		return err
	}
	if dirty {
		return &DirtyError{Version: int(from)}
	}
	migs, err := Migrations(m.opts.FS)
	if err != nil {
		return err
	}
	var latest uint
	if len(migs) > 0 {
		latest = migs[len(migs)-1].Version
	}
	release := CurrentRelease(m.opts.FS)
	if from > latest {
		return fmt.Errorf("the database is at schema version %d, newer than this migrate's %d (release %q): deploy with the migrate of the newer release", from, latest, release)
	}
	res.Schema.From, res.Schema.To = from, from
	if current, err := m.upToDate(ctx, conn, from, latest, release); err != nil {
		return err
	} else if current {
		// Nothing to deploy: leave the gate open (pipelines run `up` from every replica).
		uf, err := FunctionFiles(m.opts.FS)
		if err != nil {
			return err
		}
		res.Functions.Unchanged, res.Release = len(uf), release
		return nil
	}
	if _, err := m.prepareEntryPoints(ctx, conn); err != nil {
		return err
	}
	deadline := time.Now().Add(m.opts.LockTimeout)
	for attempt := 1; ; attempt++ {
		*res = UpResult{Schema: SchemaChange{From: from, To: from, Applied: []uint{}}, Functions: FunctionChange{Applied: []string{}}, River: res.River}
		err = m.deployTx(ctx, conn, migs, from, release, res)
		if !isLockTimeout(err) || time.Now().After(deadline) {
			break
		}
		// A transaction that called spendcap (or holds a table the migrations alter) is still
		// open: give the held calls way, then try again.
		m.opts.Logger.Warn("a transaction that uses spendcap kept the deploy waiting; calls were held meanwhile; trying again",
			"component", "schema", "attempt", attempt, "gate_timeout", m.opts.GateTimeout)
		time.Sleep(min(time.Duration(attempt)*time.Second, 10*time.Second))
	}
	if err != nil {
		return err
	}
	if len(res.Schema.Applied) > 0 {
		m.opts.Logger.Info("schema migrated", "component", "schema", "from", res.Schema.From, "to", res.Schema.To)
	}
	res.Release = release
	return nil
}

// deployTx is deploy's transaction: it closes the deploy gate, then applies what is pending.
func (m *Migrator) deployTx(ctx context.Context, conn *pgx.Conn, migs []Migration, from uint, release string, res *UpResult) error {
	return pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SET LOCAL client_min_messages = warning`); err != nil {
			return err
		}
		// Calls wait at the gate while the deploy runs: never longer than this for one lock.
		if _, err := tx.Exec(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, m.opts.GateTimeout.Milliseconds())); err != nil {
			return err
		}
		if err := closeGate(ctx, tx); err != nil {
			return err
		}
		to := from
		var applied []uint
		for _, mg := range migs {
			if mg.Version <= from {
				continue
			}
			if _, err := tx.Exec(ctx, mg.Up); err != nil {
				return fmt.Errorf("migration %06d_%s: %w", mg.Version, mg.Name, err)
			}
			to = mg.Version
			applied = append(applied, mg.Version)
		}
		if len(applied) > 0 {
			if _, err := tx.Exec(ctx, migrationsTableDDL); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `DELETE FROM public.`+MigrationsTable); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO public.`+MigrationsTable+` (version, dirty) VALUES ($1, false)`, int64(to)); err != nil {
				return err
			}
		}
		if err := m.applyFunctions(ctx, tx, to, &res.Functions); err != nil {
			return err
		}
		if err := recordRelease(ctx, tx, release, to); err != nil {
			return err
		}
		res.Schema.To, res.Schema.Applied = to, append(res.Schema.Applied, applied...)
		return nil
	})
}

// upToDate says whether the database already runs what this migrate deploys: no pending
// migration, every function file applied as it is onto this schema version, no function left over
// from a removed file, and the release recorded.
func (m *Migrator) upToDate(ctx context.Context, conn *pgx.Conn, from, latest uint, release string) (bool, error) {
	if from != latest {
		return false, nil
	}
	files, err := FunctionFiles(m.opts.FS)
	if err != nil {
		return false, err
	}
	recs, err := functionRecords(ctx, conn)
	if err != nil || len(recs) != len(files) {
		return false, err
	}
	for _, f := range files {
		if r, ok := recs[f.Name]; !ok || r.sha256 != f.SHA256 || r.schemaVersion != int64(from) {
			return false, nil
		}
	}
	if leftover, err := leftoverFunctions(ctx, conn, files); err != nil || len(leftover) > 0 {
		return false, err
	}
	db, inferred, err := databaseRelease(ctx, conn, m.opts.FS, from)
	return err == nil && db == release && !inferred, err
}
