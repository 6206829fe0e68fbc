package cli

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendcap/spendcap/console"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/valkey"
)

// serveConsole starts the console on o.consoleAddr (a port alone: loopback), reading o's
// backend, behind basic auth when SPENDCAP_CONSOLE_USER and SPENDCAP_CONSOLE_PASSWORD are set
// (and signing its admin forms with SPENDCAP_CONSOLE_CSRF_KEY when set), and returns how to stop
// it.
func serveConsole(o options, pool *pgxpool.Pool, vk *valkey.Client, logger *slog.Logger) (func(), error) {
	var backend console.Backend
	title := "spendcap · PostgreSQL"
	switch o.consoleBackend {
	case "postgres":
		backend = gobinding.NewClient(pool, gobinding.Options{})
	case "valkey":
		if vk == nil {
			return nil, errors.New("--console-backend valkey needs --valkey-url")
		}
		backend, title = vk, "spendcap · Valkey"
	default:
		return nil, errors.New("--console-backend must be postgres or valkey")
	}
	// Rolls, purges, audits and webhook deliveries are River jobs in PostgreSQL, whichever
	// backend the console shows; so are the webhooks.
	worker, err := console.RiverWorker(pool)
	if err != nil {
		return nil, err
	}
	opts := console.Options{Backend: backend, Title: title, Logger: logger, Worker: worker,
		Webhooks: gobinding.NewClient(pool, gobinding.Options{})}
	user, password := os.Getenv("SPENDCAP_CONSOLE_USER"), os.Getenv("SPENDCAP_CONSOLE_PASSWORD")
	if (user == "") != (password == "") {
		return nil, errors.New("set both SPENDCAP_CONSOLE_USER and SPENDCAP_CONSOLE_PASSWORD, or neither")
	}
	addr := o.consoleAddr
	if host, port, err := net.SplitHostPort(addr); err == nil && host == "" {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	// Workers behind one address share the key that signs the admin forms' tokens.
	if k := os.Getenv("SPENDCAP_CONSOLE_CSRF_KEY"); k != "" {
		if len(k) < 32 {
			return nil, errors.New("SPENDCAP_CONSOLE_CSRF_KEY must be at least 32 bytes")
		}
		opts.CSRFKey = []byte(k)
	}
	if o.consoleAdmin {
		// Whoever reaches the console could change budgets: off loopback, only with a password.
		if host, _, err := net.SplitHostPort(addr); user == "" && (err != nil || !isLoopback(host)) {
			return nil, errors.New("--console-admin off a loopback address needs SPENDCAP_CONSOLE_USER and SPENDCAP_CONSOLE_PASSWORD")
		}
		opts.Admin = backend
	}
	h, err := console.NewHandler(opts)
	if err != nil {
		return nil, err
	}
	var handler http.Handler = h
	if user != "" {
		handler = console.BasicAuth(h, "spendcap console", user, password)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("console server", "err", err)
		}
	}()
	logger.Info("serving the console", "url", "http://"+ln.Addr().String()+"/", "backend", o.consoleBackend,
		"auth", user != "", "admin", o.consoleAdmin)
	return func() { _ = srv.Close() }, nil
}

// isLoopback says whether host names this machine only (127.0.0.0/8, ::1, localhost).
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
