package localserver

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"
)

// UnderTestEnv is set (to 1) by the test harness for the test binaries and the programs they
// start: a server started under it must take a free port, never a fixed one.
const UnderTestEnv = "SPENDCAP_UNDER_TEST"

// refuseFixedPort fails a fixed port in a test. `go test ./...` runs packages at once, so two
// tests that ask for one port (the dev defaults, say) shut each other's servers down, and whether
// that happens depends on timing: a test asks for port 0 instead.
func refuseFixedPort(what string, port int) error {
	if port == 0 || !(testing.Testing() || os.Getenv(UnderTestEnv) != "") {
		return nil
	}
	return fmt.Errorf("%s: a test asked for the fixed port %d; tests must use free ports (Port: 0), "+
		"since packages run at the same time (%s is set or this is a test binary)", what, port, UnderTestEnv)
}

// pickPort returns preferred on the first attempt when it is free, else a free port.
func pickPort(preferred, attempt int) (int, error) {
	if preferred != 0 && attempt == 0 {
		if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(preferred))); err == nil {
			_ = l.Close()
			return preferred, nil
		}
	}
	return freePort()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
