package tests

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spendcap/spendcap/internal/localserver"
	"github.com/spendcap/spendcap/internal/testenv"
)

// A psql transcript in the docs: a code block whose lines start with "=> " for each statement
// (continued on the following lines until one ends with ";"), each followed by the output psql
// prints for it.
type transcriptStep struct {
	line  int // in the doc file, 1-based
	query string
	want  string
}

// transcripts reads every psql transcript of a Markdown file, in order.
func transcripts(t *testing.T, path string) []transcriptStep {
	t.Helper()
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var steps []transcriptStep
	inBlock, inQuery := false, false
	for i, line := range strings.Split(string(doc), "\n") {
		switch {
		case strings.HasPrefix(line, "```"):
			inBlock, inQuery = !inBlock, false
		case !inBlock:
		case strings.HasPrefix(line, "=> "):
			steps = append(steps, transcriptStep{line: i + 1, query: strings.TrimPrefix(line, "=> ")})
			inQuery = !strings.HasSuffix(strings.TrimSpace(line), ";")
		case len(steps) == 0:
			// a code block that is not a transcript
		case inQuery:
			s := &steps[len(steps)-1]
			s.query += "\n" + line
			inQuery = !strings.HasSuffix(strings.TrimSpace(line), ";")
		default:
			s := &steps[len(steps)-1]
			s.want += strings.TrimRight(line, " ") + "\n"
		}
	}
	return steps
}

func psqlPath(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("psql"); err == nil {
		return p
	}
	bin, err := localserver.FindPostgresBin()
	if err != nil {
		t.Fatalf("no psql: %v", err)
	}
	return filepath.Join(bin, "psql")
}

// Every psql transcript in docs/ runs, in order, against a fresh database of its own file and
// prints exactly what the doc shows.
func TestDocsTranscriptsRunAndPrintWhatTheyShow(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, path := range files {
		steps := transcripts(t, path)
		if len(steps) == 0 {
			continue
		}
		ran += len(steps)
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			runTranscript(t, path, steps)
		})
	}
	if ran < 20 {
		t.Errorf("found %d transcript statements in docs/, want the SQL API's examples", ran)
	}
}

const transcriptMarker = "-- spendcap transcript step --"

func runTranscript(t *testing.T, path string, steps []transcriptStep) {
	var script strings.Builder
	script.WriteString("\\pset footer off\n")
	for _, s := range steps {
		fmt.Fprintf(&script, "\\echo '%s'\n%s\n", transcriptMarker, s.query)
	}
	cmd := exec.Command(psqlPath(t), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", testenv.NewDatabase(t))
	cmd.Env = append(os.Environ(), "PGTZ=UTC") // timestamps print as the docs show them
	cmd.Stdin = strings.NewReader(script.String())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	outputs := strings.Split(stdout.String(), transcriptMarker+"\n")[1:]
	for i, s := range steps {
		if i >= len(outputs) {
			t.Errorf("%s:%d: %s\nnot run: %v\n%s", path, s.line, s.query, runErr, stderr.String())
			return
		}
		var got strings.Builder
		for _, line := range strings.Split(strings.TrimRight(outputs[i], "\n"), "\n") {
			got.WriteString(strings.TrimRight(line, " ") + "\n")
		}
		if want := strings.TrimRight(s.want, "\n") + "\n"; got.String() != want {
			t.Errorf("%s:%d: %s\nprints:\n%s\nthe doc shows:\n%s", path, s.line, s.query, got.String(), want)
		}
	}
	if runErr != nil {
		t.Errorf("%s: psql: %v\n%s", path, runErr, stderr.String())
	}
}

// The project's docs and comments point at its own docs: no reference to a contract file outside
// the repository, and every link to docs/semantics.md#<section> names a section that exists.
func TestReferencesPointAtSectionsOfTheProjectDocs(t *testing.T) {
	t.Parallel()
	semantics, err := os.ReadFile("../docs/semantics.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(semantics), "\n") {
		if title, ok := strings.CutPrefix(line, "## "); ok {
			anchors[githubAnchor(title)] = true
		}
	}
	outside := regexp.MustCompile(`SPEC(\.md| ?§)`)
	link := regexp.MustCompile(`semantics\.md#([a-z0-9-]+)((?:, #[a-z0-9-]+)*)`)
	links := 0
	err = filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != "..") {
			return filepath.SkipDir
		}
		if d.IsDir() && (path == "../"+filepath.Join("tests", releasesDir) || path == "../tests/compat") {
			return filepath.SkipDir // earlier releases, frozen: they cite what was true then
		}
		switch filepath.Ext(path) {
		case ".go", ".md", ".sql", ".lua", ".sh":
		default:
			return nil
		}
		if path == "../tests/docs_test.go" {
			return nil // this test spells out what it looks for
		}
		text, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(text), "\n") {
			if outside.MatchString(line) {
				t.Errorf("%s:%d cites a file the project does not have: %s", path, i+1, strings.TrimSpace(line))
			}
			for _, m := range link.FindAllStringSubmatch(line, -1) {
				for _, a := range append([]string{m[1]}, strings.Split(strings.TrimPrefix(m[2], ", #"), ", #")...) {
					if a == "" {
						continue
					}
					links++
					if !anchors[a] {
						t.Errorf("%s:%d links to semantics.md#%s, which has no such section", path, i+1, a)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if links < 20 {
		t.Errorf("found %d links to docs/semantics.md sections, want the code's references", links)
	}
}

// githubAnchor is the anchor GitHub gives a heading: lower case, spaces to hyphens, punctuation
// dropped.
func githubAnchor(title string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(title) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// The webhook receiver that docs/operations.md shows is, line for line, the one
// example_webhook_test.go runs.
func TestDocsWebhookReceiverIsTheTestedExample(t *testing.T) {
	t.Parallel()
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("../example_webhook_test.go")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "```go\nfunc webhookReceiver(")
	if !ok {
		t.Fatal("docs/operations.md shows no webhookReceiver")
	}
	block, _, ok := strings.Cut(rest, "```")
	if !ok {
		t.Fatal("docs/operations.md: the webhookReceiver block does not end")
	}
	if code := "func webhookReceiver(" + block; !strings.Contains(string(example), code) {
		t.Errorf("docs/operations.md's webhookReceiver differs from example_webhook_test.go's:\n%s", code)
	}
}
