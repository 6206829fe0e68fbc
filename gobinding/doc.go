// Package gobinding is spendcap's PostgreSQL backend for Go: Client, which implements
// spendcap.Budgets, spendcap.Quotas, spendcap.BatchReporter, spendcap.EventSource,
// spendcap.EventWatcher (with LISTEN/NOTIFY on a pool) and spendcap.Operator, and manages webhooks,
// on calls generated from the SQL functions of schema spendcap (internal/pgfn/functions_gen.go,
// made by `make generate` from pg_proc: one params struct, one result struct and one method per
// function). NewClient(db, Options{}) makes one, as valkey.NewClient does on Valkey.
//
// Everything takes a DBTX — a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx — so a service can report
// usage inside its own business transaction: if that transaction rolls back, so does the usage.
//
// Errors raised with a spendcap error code come back as *spendcap.Error, which matches the spendcap sentinel
// errors with errors.Is and unwraps to the *pgconn.PgError.
package gobinding
