package console

import (
	"net/http"
	"net/url"

	"github.com/spendcap/spendcap"
)

type webhooksPage struct {
	Common common
	// Available is false when the console cannot list webhooks (no Options.Webhooks).
	Available bool
	Hooks     []hookView
	// Worker is nil when the console cannot read the worker's jobs.
	Worker *WorkerStatus
	// Gone are the deliveries to endpoints no longer registered.
	Gone Deliveries
}

// hookView is one endpoint as the webhooks screen shows it.
type hookView struct {
	// URL is shown with any password in it replaced (url.URL.Redacted).
	URL        string
	Kinds      []spendcap.EventKind
	Created    string
	Deliveries Deliveries
}

func (h *Handler) webhooks(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	p := webhooksPage{Common: h.common("Webhooks"), Available: h.opts.Webhooks != nil}
	var err error
	if p.Worker, err = h.workerStatus(ctx); err != nil {
		h.fail(w, r, err)
		return
	}
	if p.Available {
		hooks, err := h.opts.Webhooks.Webhooks(ctx)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		seen := map[string]bool{}
		for _, hk := range hooks {
			v := hookView{URL: redacted(hk.URL), Kinds: hk.Kinds, Created: hk.CreatedAt.UTC().Format("2006-01-02 15:04 UTC")}
			if p.Worker != nil {
				v.Deliveries = p.Worker.Deliveries[hk.URL]
			}
			seen[hk.URL] = true
			p.Hooks = append(p.Hooks, v)
		}
		if p.Worker != nil {
			for u, d := range p.Worker.Deliveries {
				if !seen[u] {
					p.Gone.Pending += d.Pending
					p.Gone.Retrying += d.Retrying
					p.Gone.Failed += d.Failed
				}
			}
		}
	}
	h.render(w, r, "webhooks.html", p)
}

// redacted is raw with the password of its user info, if any, replaced by "xxxxx".
func redacted(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	return u.Redacted()
}
