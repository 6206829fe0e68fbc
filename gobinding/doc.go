// Package gobinding is spendcap's PostgreSQL backend for Go: typed bindings generated from the SQL
// functions of schema spendcap (functions_gen.go: one params struct, one result struct and one
// method per function), and Client, which implements spendcap.Budgets on top of them.
//
// Everything takes a DBTX — a *pgxpool.Pool, a *pgx.Conn or a pgx.Tx — so a service can report
// usage inside its own business transaction: if that transaction rolls back, so does the usage.
//
// Errors raised with a spendcap error code come back as *spendcap.Error, which matches the spendcap sentinel
// errors with errors.Is and unwraps to the *pgconn.PgError.
package gobinding
