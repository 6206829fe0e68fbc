package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/gobinding"
)

// finding is one audit finding as `migrate audit --format=json` prints it.
type finding struct {
	Backend   string  `json:"backend"`
	BudgetID  *string `json:"budget_id"`
	PolicyID  *string `json:"policy_id"`
	Check     string  `json:"check"`
	Dimension *string `json:"dimension"`
	Expected  *string `json:"expected"`
	Found     *string `json:"found"`
	Repaired  bool    `json:"repaired"`
}

// audit runs the database's audit once (repairing with --repair) and prints its findings; the
// exit code is exitFindings when there were any, repaired or not.
func audit(o options, url string, stdout, stderr io.Writer, logger *slog.Logger) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return fail(stderr, fmt.Errorf("database url: %w", err))
	}
	defer pool.Close()
	var fs []finding
	rs, err := gobinding.NewClient(pool, gobinding.Options{}).Audit(ctx, spendcap.AuditParams{Repair: o.repair, BatchSize: o.auditBatch})
	if err != nil {
		return fail(stderr, err)
	}
	add := func(backend string, fs0 []spendcap.AuditFinding) {
		for _, f := range fs0 {
			fs = append(fs, finding{Backend: backend, BudgetID: orNil(f.BudgetID), PolicyID: orNil(f.PolicyID), Check: string(f.Check),
				Dimension: orNil(f.Dimension), Expected: jsonText(f.Expected), Found: jsonText(f.Found), Repaired: f.Repaired})
		}
	}
	add("postgres", rs)
	if o.valkeyURL != "" {
		vs, err := auditValkey(ctx, o, logger)
		if err != nil {
			return fail(stderr, err)
		}
		add("valkey", vs)
	}
	out := output{w: stdout, json: o.format == "json"}
	var text strings.Builder
	repaired := 0
	for _, r := range fs {
		what := r.Backend + " budget " + deref(r.BudgetID)
		if r.PolicyID != nil {
			what = r.Backend + " policy " + *r.PolicyID
		}
		check := r.Check
		if r.Dimension != nil {
			check += " " + *r.Dimension
		}
		fmt.Fprintf(&text, "%s: %s: expected %s, found %s", what, check, orNull(r.Expected), orNull(r.Found))
		if r.Repaired {
			repaired++
			text.WriteString(" (repaired)")
		}
		text.WriteString("\n")
	}
	if len(fs) == 0 {
		text.WriteString("clean\n")
		fs = []finding{} // [] in JSON, not null
	}
	out.print(fs, text.String())
	logger.Info("audited", "findings", len(fs), "repaired", repaired, "valkey", o.valkeyURL != "")
	if len(fs) > 0 {
		return exitFindings
	}
	return exitOK
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func orNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// jsonText is a finding's JSON value as text, nil for JSON null.
func jsonText(v json.RawMessage) *string {
	if len(v) == 0 || string(v) == "null" {
		return nil
	}
	s := string(v)
	return &s
}

func orNull(s *string) string {
	if s == nil {
		return "null"
	}
	return *s
}
