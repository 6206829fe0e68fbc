package testenv

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

type builtBinary struct {
	once sync.Once
	path string
	err  error
	out  []byte
}

var binaries sync.Map // package directory -> *builtBinary

// Binary builds the main package in dir (relative to the test's directory, "." for its own) once
// per test binary and returns the executable's path; the build directory goes at Shutdown.
func Binary(t testing.TB, dir string) string {
	t.Helper()
	v, _ := binaries.LoadOrStore(dir, &builtBinary{})
	b := v.(*builtBinary)
	b.once.Do(func() {
		tmp, err := os.MkdirTemp("", "spendcap-bin-")
		if err != nil {
			b.err = err
			return
		}
		onStop(func() { _ = os.RemoveAll(tmp) })
		abs, err := filepath.Abs(dir)
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(tmp, filepath.Base(abs))
		cmd := exec.Command("go", "build", "-o", b.path, ".")
		cmd.Dir = dir
		b.out, b.err = cmd.CombinedOutput()
	})
	if b.err != nil {
		t.Fatalf("testenv: go build %s: %v: %s", dir, b.err, b.out)
	}
	return b.path
}

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// HTTPGet returns the status and body of a GET, or 0 and the error's text.
func HTTPGet(url string) (int, string) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// SyncBuffer is a bytes.Buffer that a child process's output and the test may use at once.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
