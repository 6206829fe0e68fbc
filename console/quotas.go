package console

import (
	"net/http"
	"strings"

	"github.com/spendcap/spendcap"
)

type quotasPage struct {
	Common   common
	Prefix   string // the search
	After    string
	Policies []quotaView
	Next     string
	Err      string
}

// quotaView is one policy with the shares its bars show.
type quotaView struct {
	spendcap.QuotaStatus
	// WindowPct and ActivePct are the window count's share of MaxRequests and the live leases'
	// share of MaxConcurrent (0 without that limit), at most 100.
	WindowPct, ActivePct float64
}

func quotaViewOf(q spendcap.QuotaStatus) quotaView {
	v := quotaView{QuotaStatus: q}
	if q.MaxRequests > 0 {
		v.WindowPct = min(100, 100*float64(q.InWindow)/float64(q.MaxRequests))
	}
	if q.MaxConcurrent > 0 {
		v.ActivePct = min(100, 100*float64(q.Active)/float64(q.MaxConcurrent))
	}
	return v
}

func (h *Handler) quotas(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	p := quotasPage{Common: h.common("Quotas"), Prefix: strings.TrimSpace(q.Get("q")), After: q.Get("after")}
	page, err := h.opts.Backend.ListQuotaPolicies(r.Context(), spendcap.ListQuotaPoliciesParams{IDPrefix: p.Prefix, After: p.After})
	switch {
	case err == nil:
		for _, s := range page.Policies {
			p.Policies = append(p.Policies, quotaViewOf(s))
		}
		p.Next = page.Next
	case errorsIsInvalid(err):
		p.Err = err.Error()
	default:
		h.fail(w, r, err)
		return
	}
	h.render(w, r, "quotas.html", p)
}

type quotaPage struct {
	Common common
	Policy quotaView
}

func (h *Handler) quota(w http.ResponseWriter, r *http.Request) {
	st, err := h.opts.Backend.QuotaStatus(r.Context(), spendcap.QuotaStatusParams{PolicyID: r.URL.Query().Get("id")})
	if err != nil {
		h.fail(w, r, err)
		return
	}
	h.render(w, r, "quota.html", quotaPage{Common: h.common("Quota"), Policy: quotaViewOf(st)})
}
