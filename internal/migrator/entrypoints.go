package migrator

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// entryPointsFile defines spendcap_internal.ensure_entry_point, which creates the wrappers.
const entryPointsFile = "001_entry_points.sql"

// wrapExisting turns every function of schema spendcap into an entry point of itself: it moves the
// function to spendcap_internal, unchanged, and creates in its place a wrapper with the same
// signature that calls it through the deploy gate.
const wrapExisting = `DO $wrap$
DECLARE
    r record;
BEGIN
    FOR r IN SELECT p.oid::regprocedure AS sig, p.proname::text AS name,
                    pg_catalog.pg_get_function_arguments(p.oid) AS args, pg_catalog.pg_get_function_result(p.oid) AS result,
                    p.provolatile AS v,
                    (SELECT pg_catalog.min(g.rolname) FROM pg_catalog.aclexplode(p.proacl) AS a
                       JOIN pg_catalog.pg_roles AS g ON g.oid = a.grantee
                      WHERE a.privilege_type = 'EXECUTE' AND g.rolname LIKE 'spendcap\_%') AS grantee
               FROM pg_catalog.pg_proc AS p
              WHERE p.pronamespace = 'spendcap'::regnamespace
              ORDER BY p.proname LOOP
        EXECUTE pg_catalog.format('ALTER FUNCTION %s SET SCHEMA spendcap_internal', r.sig);
        PERFORM spendcap_internal.ensure_entry_point(r.name, r.args, r.result, r.v, r.grantee);
    END LOOP;
END
$wrap$`

// prepareEntryPoints readies a database deployed by a release before entry points (v0.4.0) for a
// deploy without errors. It runs, in a transaction of its own before the deploy's, only when schema
// spendcap has functions but no deploy gate: it creates the gate and wraps the release's own
// functions (wrapExisting). Callers see the same signatures, results and behaviour, so it needs no
// gate itself and fails no call in flight; a prepared statement plans again once and keeps its
// columns. The deploy that follows then holds calls at the gate while it replaces the
// implementations and changes the schema, and re-creates only the wrappers whose signature
// changed.
func (m *Migrator) prepareEntryPoints(ctx context.Context, conn *pgx.Conn) (bool, error) {
	var needed bool
	if err := conn.QueryRow(ctx, `SELECT to_regclass('spendcap.deploy_gate') IS NULL
		AND EXISTS (SELECT FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'spendcap')`).Scan(&needed); err != nil {
		return false, err
	}
	if !needed {
		return false, nil
	}
	files, err := FunctionFiles(m.opts.FS)
	if err != nil {
		return false, err
	}
	var helper string
	for _, f := range files {
		if f.Name == entryPointsFile {
			helper = f.SQL
		}
	}
	if helper == "" {
		return false, fmt.Errorf("functions/%s is missing", entryPointsFile)
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		for _, sql := range []string{
			`SET LOCAL client_min_messages = warning`,
			`CREATE TABLE IF NOT EXISTS spendcap.deploy_gate (); REVOKE ALL ON spendcap.deploy_gate FROM PUBLIC`,
			helper,
			wrapExisting,
		} {
			if _, err := tx.Exec(ctx, sql); err != nil {
				return fmt.Errorf("entry points: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	m.opts.Logger.Info("the release's functions are now entry points behind the deploy gate", "component", "functions")
	return true, nil
}

// closeGate takes the deploy gate in tx, when the database has one: it waits for the transactions
// running spendcap code to end and holds new calls until tx ends.
func closeGate(ctx context.Context, tx pgx.Tx) error {
	var exists bool
	if err := tx.QueryRow(ctx, `SELECT to_regclass('spendcap.deploy_gate') IS NOT NULL`).Scan(&exists); err != nil || !exists {
		return err
	}
	_, err := tx.Exec(ctx, `LOCK TABLE spendcap.deploy_gate IN ACCESS EXCLUSIVE MODE`)
	return err
}

// isLockTimeout says whether err is PostgreSQL's lock_timeout (55P03).
func isLockTimeout(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "55P03"
}
