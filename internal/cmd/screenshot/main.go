// Command screenshot is `make screenshot`: it starts a PostgreSQL server as the tests do, creates
// the console's demo budgets (internal/consoledemo), serves the console and saves a budget's page
// as rendered by headless Chromium to docs/console.png, the picture in the README.
//
// Usage:
//
//	screenshot [-out docs/console.png] [-budget acme/team/key] [-width 1000]
package main

import (
	"context"
	"flag"
	"log"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendcap/spendcap/console"
	"github.com/spendcap/spendcap/gobinding"
	"github.com/spendcap/spendcap/internal/consoledemo"
	"github.com/spendcap/spendcap/internal/testenv"
)

func main() {
	out := flag.String("out", "docs/console.png", "where to write the PNG")
	budget := flag.String("budget", "acme/team/key", "the budget whose page to show")
	width := flag.Int("width", 1000, "the browser window's width in CSS pixels")
	flag.Parse()
	if err := run(*out, *budget, *width); err != nil {
		log.Fatal(err)
	}
}

func run(out, budget string, width int) error {
	defer testenv.Arrange()()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, testenv.ExampleDatabase())
	if err != nil {
		return err
	}
	defer pool.Close()
	client := gobinding.NewClient(pool, gobinding.Options{})
	if err := consoledemo.Create(ctx, client, time.Now()); err != nil {
		return err
	}
	h, err := console.NewHandler(console.Options{Backend: client, Title: "spendcap · PostgreSQL"})
	if err != nil {
		return err
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	path, err := exec.LookPath("chromium")
	if err != nil {
		return err
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.WindowSize(width, 700))...)
	defer cancelAlloc()
	bctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	bctx, cancelTimeout := context.WithTimeout(bctx, time.Minute)
	defer cancelTimeout()
	if err := chromedp.Do(bctx, chromedp.Navigate(srv.URL+"/budget?id="+url.QueryEscape(budget)),
		chromedp.WaitVisible(chromedp.CSS("table.dims"))); err != nil {
		return err
	}
	png, err := chromedp.Run(bctx, chromedp.FullScreenshot(100))
	if err != nil {
		return err
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		return err
	}
	log.Printf("wrote %s (%d bytes)", out, len(png))
	return nil
}
