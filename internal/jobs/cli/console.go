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
// backend, behind basic auth when SPENDCAP_CONSOLE_USER and SPENDCAP_CONSOLE_PASSWORD are set,
// and returns how to stop it.
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
	h, err := console.NewHandler(console.Options{Backend: backend, Title: title, Logger: logger})
	if err != nil {
		return nil, err
	}
	var handler http.Handler = h
	user, password := os.Getenv("SPENDCAP_CONSOLE_USER"), os.Getenv("SPENDCAP_CONSOLE_PASSWORD")
	if user != "" || password != "" {
		if user == "" || password == "" {
			return nil, errors.New("set both SPENDCAP_CONSOLE_USER and SPENDCAP_CONSOLE_PASSWORD, or neither")
		}
		handler = console.BasicAuth(h, "spendcap console", user, password)
	}
	addr := o.consoleAddr
	if host, port, err := net.SplitHostPort(addr); err == nil && host == "" {
		addr = net.JoinHostPort("127.0.0.1", port)
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
		"auth", user != "")
	return func() { _ = srv.Close() }, nil
}
