// Package bindgen generates the typed Go calls of internal/pgfn from the SQL functions of schema
// spendcap, as the database sees them after `migrate up`: argument names, types and defaults from
// pg_proc, result columns from the composite types the functions return, nullability from the
// "nullable" comments on those columns. Nothing about the API is written by hand.
package bindgen

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Function is one SQL function of the API.
type Function struct {
	Name      string // SQL name, e.g. report_usage
	Signature string // regprocedure text, e.g. spendcap.report_usage(text,jsonb,text,timestamp with time zone)
	Args      []Arg
	Result    *Composite
	ReturnSet bool
}

// Arg is one input argument.
type Arg struct {
	Name     string
	Type     string // format_type, e.g. "timestamp with time zone"
	Optional bool   // has a default
}

// Composite is a result type.
type Composite struct {
	Name    string // SQL type name, e.g. usage_outcome
	Columns []Column
}

// Column is one attribute of a result type.
type Column struct {
	Name     string
	Type     string
	Nullable bool
}

// Introspect reads every function of schema and the composite types they return. It refuses
// overloaded names, non-input arguments, and returns other than a named composite type.
func Introspect(ctx context.Context, conn *pgx.Conn, schema string) ([]Function, error) {
	rows, err := conn.Query(ctx, `
		SELECT p.proname, p.oid::regprocedure::text, p.proretset, p.prorettype, t.typtype::text,
		       t.typname::text, tn.nspname::text,
		       coalesce(p.proargnames, '{}'), coalesce(p.proargmodes::text[], '{}'),
		       ARRAY(SELECT format_type(a, NULL) FROM unnest(p.proargtypes) AS a),
		       p.pronargdefaults
		FROM pg_proc p
		JOIN pg_namespace n ON n.oid = p.pronamespace
		JOIN pg_type t ON t.oid = p.prorettype
		JOIN pg_namespace tn ON tn.oid = t.typnamespace
		WHERE n.nspname = $1 AND p.prokind = 'f'
		ORDER BY p.proname, p.oid`, schema)
	if err != nil {
		return nil, err
	}
	type raw struct {
		name, sig                  string
		retset                     bool
		retOID                     uint32
		typtype, typname, typeNS   string
		argNames, argModes, argTyp []string
		nDefaults                  int16
	}
	var raws []raw
	for rows.Next() {
		var r raw
		if err := rows.Scan(&r.name, &r.sig, &r.retset, &r.retOID, &r.typtype, &r.typname, &r.typeNS,
			&r.argNames, &r.argModes, &r.argTyp, &r.nDefaults); err != nil {
			return nil, err
		}
		raws = append(raws, r)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}

	seen := map[string]string{}
	composites := map[uint32]*Composite{}
	var fns []Function
	for _, r := range raws {
		if prev, ok := seen[r.name]; ok {
			return nil, fmt.Errorf("%s.%s is overloaded (%s and %s): drop the old signature", schema, r.name, prev, r.sig)
		}
		seen[r.name] = r.sig
		for _, m := range r.argModes {
			if m != "i" {
				return nil, fmt.Errorf("%s: only input arguments are supported (mode %q); return a named composite type instead of OUT/TABLE columns", r.sig, m)
			}
		}
		if r.typtype != "c" || r.typeNS != schema {
			return nil, fmt.Errorf("%s: returns %s.%s, not a composite type of schema %s", r.sig, r.typeNS, r.typname, schema)
		}
		fn := Function{Name: r.name, Signature: r.sig, ReturnSet: r.retset}
		if len(r.argNames) < len(r.argTyp) {
			return nil, fmt.Errorf("%s: every argument needs a name", r.sig)
		}
		for i, typ := range r.argTyp {
			if r.argNames[i] == "" {
				return nil, fmt.Errorf("%s: argument %d has no name", r.sig, i+1)
			}
			fn.Args = append(fn.Args, Arg{Name: r.argNames[i], Type: typ, Optional: i >= len(r.argTyp)-int(r.nDefaults)})
		}
		c, ok := composites[r.retOID]
		if !ok {
			if c, err = composite(ctx, conn, r.retOID, r.typname); err != nil {
				return nil, err
			}
			composites[r.retOID] = c
		}
		fn.Result = c
		fns = append(fns, fn)
	}
	sort.Slice(fns, func(i, j int) bool { return fns[i].Name < fns[j].Name })
	return fns, nil
}

func composite(ctx context.Context, conn *pgx.Conn, typeOID uint32, name string) (*Composite, error) {
	rows, err := conn.Query(ctx, `
		SELECT a.attname::text, format_type(a.atttypid, a.atttypmod), coalesce(col_description(t.typrelid, a.attnum), '')
		FROM pg_type t JOIN pg_attribute a ON a.attrelid = t.typrelid
		WHERE t.oid = $1 AND a.attnum > 0 AND NOT a.attisdropped
		ORDER BY a.attnum`, typeOID)
	if err != nil {
		return nil, err
	}
	c := &Composite{Name: name}
	for rows.Next() {
		var col Column
		var comment string
		if err := rows.Scan(&col.Name, &col.Type, &comment); err != nil {
			return nil, err
		}
		col.Nullable = strings.HasPrefix(comment, "nullable")
		c.Columns = append(c.Columns, col)
	}
	return c, rows.Err()
}
