package gobinding

import (
	"context"
	"time"

	"github.com/spendcap/spendcap"
	"github.com/spendcap/spendcap/internal/pgfn"
)

// Webhook is a registered webhook, without its secret.
type Webhook struct {
	URL string
	// Kinds are the event kinds posted to it, sorted; nil means every kind.
	Kinds     []spendcap.EventKind
	CreatedAt time.Time
}

// CreateWebhookParams are the arguments of CreateWebhook.
type CreateWebhookParams struct {
	URL string
	// Secret signs every request (spendcap.SignWebhook): 16..1024 bytes.
	Secret string
	// Kinds are the event kinds to post; nil means every kind.
	Kinds []spendcap.EventKind
}

// DeleteWebhookParams are the arguments of DeleteWebhook.
type DeleteWebhookParams struct {
	URL string
}

// CreateWebhook registers p.URL for the events of p.Kinds, signed with p.Secret; for a url already
// registered it replaces the secret and kinds, which is how a secret is rotated. The jobs worker
// posts every event dispatched from then on. Admin role.
func (c *Client) CreateWebhook(ctx context.Context, p CreateWebhookParams) (Webhook, error) {
	var kinds []string
	if p.Kinds != nil {
		kinds = make([]string, len(p.Kinds))
		for i, k := range p.Kinds {
			kinds[i] = string(k)
		}
	}
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.CreateWebhookRow, error) {
		return q.CreateWebhook(ctx, pgfn.CreateWebhookParams{URL: p.URL, Secret: p.Secret, Kinds: kinds})
	})
	return webhook(r.URL, r.Kinds, r.CreatedAt), err
}

// DeleteWebhook stops posting to p.URL; deliveries still queued for it are cancelled. It reports
// whether a webhook had that url. Admin role.
func (c *Client) DeleteWebhook(ctx context.Context, p DeleteWebhookParams) (bool, error) {
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.DeleteWebhookRow, error) {
		return q.DeleteWebhook(ctx, pgfn.DeleteWebhookParams{URL: p.URL})
	})
	return r.Deleted, err
}

// Webhooks lists the registered webhooks by url. Admin role.
func (c *Client) Webhooks(ctx context.Context) ([]Webhook, error) {
	rows, err := call(ctx, c, func(q *pgfn.Queries) ([]pgfn.WebhooksRow, error) {
		return q.Webhooks(ctx, pgfn.WebhooksParams{})
	})
	out := make([]Webhook, len(rows))
	for i, r := range rows {
		out[i] = webhook(r.URL, r.Kinds, r.CreatedAt)
	}
	return out, err
}

func webhook(url string, kinds []string, createdAt time.Time) Webhook {
	w := Webhook{URL: url, CreatedAt: createdAt}
	if kinds != nil {
		w.Kinds = make([]spendcap.EventKind, len(kinds))
		for i, k := range kinds {
			w.Kinds[i] = spendcap.EventKind(k)
		}
	}
	return w
}
