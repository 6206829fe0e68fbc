// Package console is spendcap's operator console: an http.Handler that shows every budget, its
// current window, its parents and children and its past windows, in a browser. Mount it in your
// own server behind your own authentication, as riverui is mounted:
//
//	h, err := console.NewHandler(console.Options{Backend: client, Prefix: "/console"})
//	mux.Handle("/console/", http.StripPrefix("/console", h))
//
// or run it with the jobs worker (`jobs --console-addr 127.0.0.1:8090`). Pages are rendered on
// the server from embedded templates, one stylesheet and one small script (the live feed of
// events, Server-Sent Events): no build step, nothing loaded from elsewhere. It reads through the Backend (either client: PostgreSQL with a reader's role is
// enough) and writes nothing unless Options.Admin turns the admin actions on.
package console

import (
	"crypto/rand"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"

	"github.com/spendcap/spendcap"
)

// Backend is what the console reads: either spendcap client.
type Backend interface {
	spendcap.Budgets
	spendcap.Lister
	spendcap.EventLog
	spendcap.ReservationLister
	spendcap.SeriesReader
	spendcap.Quotas
	spendcap.QuotaLister
}

// Options configure a Handler.
type Options struct {
	// Backend is the client the console reads (required).
	Backend Backend
	// Prefix is the path the handler is mounted under ("/console"; empty at the root): links
	// start with it. The handler itself serves paths without it (use http.StripPrefix).
	Prefix string
	// Title names the deployment in the page header (default "spendcap").
	Title string
	// Logger receives the errors of pages that failed and a line for every admin action, done
	// or refused (default slog.Default()).
	Logger *slog.Logger
	// Admin turns the admin actions on (set limits, switch enforce/observe, reset a budget,
	// cancel a reservation), each confirmed on a second page and protected against cross-site
	// requests: either client, on a connection whose role may change budgets. Nil (the
	// default) keeps the console read-only.
	Admin Admin
	// Worker, when set, lets the overview show when the jobs worker last rolled, purged and
	// audited, the last audit's findings and the webhook deliveries (RiverWorker reads them).
	Worker Worker
	// Webhooks, when set, lists the webhooks for their screen (the gobinding client).
	Webhooks WebhookLister
	// CSRFKey signs the admin forms' tokens (at least 32 bytes). Replicas behind one address
	// share one; by default each Handler makes its own.
	CSRFKey []byte
}

// Handler serves the console's pages.
type Handler struct {
	opts  Options
	pages *template.Template
	mux   *http.ServeMux
	feeds chan struct{} // a slot per live feed open
	hub   *hub          // nil when the backend cannot watch events
	// csrfKey signs the admin forms' tokens; origin refuses cross-origin posts.
	csrfKey []byte
	origin  *http.CrossOriginProtection
}

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed assets
var assetFiles embed.FS

// NewHandler returns the console for opts.
func NewHandler(opts Options) (*Handler, error) {
	if opts.Backend == nil {
		return nil, errors.New("console: Options.Backend is required")
	}
	opts.Prefix = strings.TrimSuffix(opts.Prefix, "/")
	if opts.Prefix != "" && !strings.HasPrefix(opts.Prefix, "/") {
		return nil, errors.New("console: Options.Prefix must start with /")
	}
	if opts.Title == "" {
		opts.Title = "spendcap"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	pages, err := template.New("").Funcs(funcs).ParseFS(templateFiles, "templates/*.html")
	if err != nil {
		return nil, err
	}
	h := &Handler{opts: opts, pages: pages, mux: http.NewServeMux(), feeds: make(chan struct{}, maxFeeds)}
	h.csrfKey = opts.CSRFKey
	if h.csrfKey == nil {
		h.csrfKey = make([]byte, 32)
		_, _ = rand.Read(h.csrfKey)
	} else if len(h.csrfKey) < 32 {
		return nil, errors.New("console: Options.CSRFKey must be at least 32 bytes")
	}
	h.origin = http.NewCrossOriginProtection()
	w, canWatch := opts.Backend.(spendcap.EventWatcher)
	s, canRead := opts.Backend.(spendcap.EventSource)
	if canWatch && canRead {
		h.hub = newHub(w, s, func(err error) { opts.Logger.Error("console: watching events", "err", err) })
	}
	assets, err := fs.Sub(assetFiles, "assets")
	if err != nil {
		return nil, err
	}
	h.mux.Handle("GET /assets/", http.StripPrefix("/assets/", http.FileServerFS(assets)))
	h.mux.HandleFunc("GET /{$}", h.overview)
	h.mux.HandleFunc("GET /budgets", h.budgets)
	h.mux.HandleFunc("GET /budget", h.budget)
	h.mux.HandleFunc("GET /events", h.events)
	h.mux.HandleFunc("GET /webhooks", h.webhooks)
	h.mux.HandleFunc("GET /quotas", h.quotas)
	h.mux.HandleFunc("GET /quota", h.quota)
	h.mux.HandleFunc("GET /events/stream", h.eventStream)
	h.mux.HandleFunc("POST /admin/confirm", h.confirm)
	h.mux.HandleFunc("POST /admin/apply", h.apply)
	return h, nil
}

// contentSecurityPolicy allows the console's own stylesheet and script (the events page's live
// feed) and inline SVG only: no inline script runs, and nothing is loaded from another origin.
const contentSecurityPolicy = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// ServeHTTP serves a page, with headers that keep the browser from running or framing anything.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("X-Frame-Options", "DENY")
	h.mux.ServeHTTP(w, r)
}

// render writes page name with data, or an error page.
func (h *Handler) render(w http.ResponseWriter, r *http.Request, name string, data any) {
	var b strings.Builder
	if err := h.pages.ExecuteTemplate(&b, name, data); err != nil {
		h.fail(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_, _ = w.Write([]byte(b.String()))
}

// fail answers an error page: 404 for an unknown budget, 400 for a bad argument, else 500 (the
// error logged, its text not shown).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := http.StatusInternalServerError, "The console could not read this page; the error is in the server's log."
	switch {
	case errors.Is(err, spendcap.ErrBudgetNotFound):
		status, msg = http.StatusNotFound, "No such budget."
	case errors.Is(err, spendcap.ErrPolicyNotFound):
		status, msg = http.StatusNotFound, "No such quota policy."
	case errors.Is(err, spendcap.ErrInvalidArgument):
		status, msg = http.StatusBadRequest, err.Error()
	default:
		h.opts.Logger.Error("console: page failed", "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = h.pages.ExecuteTemplate(w, "error.html", page{Common: h.common("Error"), Message: msg, Status: status})
}

// common is what every page shows.
type common struct {
	Title  string
	Page   string
	Prefix string
}

func (h *Handler) common(page string) common {
	return common{Title: h.opts.Title, Page: page, Prefix: h.opts.Prefix}
}

// page is the data of the error page.
type page struct {
	Common  common
	Message string
	Status  int
}
