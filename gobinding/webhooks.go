package gobinding

import (
	"context"
	"time"

	"github.com/spendcap/spendcap/internal/pgfn"
)

// Webhook is a registered webhook, without its secret.
type Webhook struct {
	URL string
	// Kinds are the event kinds posted to it, sorted; nil means every kind.
	Kinds     []string
	CreatedAt time.Time
}

// CreateWebhook registers url for the events of kinds (nil: every kind), signed with secret
// (16..1024 bytes); for a url already registered it replaces the secret and kinds, which is how
// a secret is rotated. The jobs worker posts every event dispatched from then on. Admin role.
func (c *Client) CreateWebhook(ctx context.Context, url, secret string, kinds []string) (Webhook, error) {
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.CreateWebhookRow, error) {
		return q.CreateWebhook(ctx, pgfn.CreateWebhookParams{URL: url, Secret: secret, Kinds: kinds})
	})
	return Webhook(r), err
}

// DeleteWebhook stops posting to url; deliveries still queued for it are cancelled. It reports
// whether a webhook had that url. Admin role.
func (c *Client) DeleteWebhook(ctx context.Context, url string) (bool, error) {
	r, err := call(ctx, c, func(q *pgfn.Queries) (pgfn.DeleteWebhookRow, error) {
		return q.DeleteWebhook(ctx, pgfn.DeleteWebhookParams{URL: url})
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
		out[i] = Webhook(r)
	}
	return out, err
}
