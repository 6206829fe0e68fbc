package testenv

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
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

// UnhealthyFor polls the /healthz of addr for d while a process waits for a server that is down:
// the test fails when the process exits meanwhile (exited closes) or /healthz never answers 503.
func UnhealthyFor(t testing.TB, addr string, d time.Duration, out *SyncBuffer, exited <-chan struct{}) {
	t.Helper()
	sawUnhealthy := false
	for start := time.Now(); time.Since(start) < d; {
		select {
		case <-exited:
			t.Fatalf("the process exited while it waited:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if code, _ := HTTPGet("http://" + addr + "/healthz"); code == http.StatusServiceUnavailable {
			sawUnhealthy = true
		}
	}
	if !sawUnhealthy {
		t.Errorf("/healthz never answered 503 while the process waited:\n%s", out.String())
	}
}

// WaitForOutput waits until out holds s; the test fails after timeout, or when the process exits
// first (exited closes; nil: not watched).
func WaitForOutput(t testing.TB, out *SyncBuffer, s string, timeout time.Duration, exited <-chan struct{}) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !strings.Contains(out.String(), s); {
		select {
		case <-exited:
			t.Fatalf("the process exited before it printed %q:\n%s", s, out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q not printed within %s:\n%s", s, timeout, out.String())
		}
	}
}
