// Package porttest hands tests loopback TCP ports that nothing listens on,
// each a different one.
package porttest

import (
	"net"
	"sync"
	"testing"
)

// handed are the ports Free has handed out in this process.
var handed sync.Map

// Free returns a loopback port nothing listens on now, never one it
// returned before in this process: the kernel may give a port it just gave
// (and got back) again, and a test that asks for four needs four.
func Free(t testing.TB) int {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("porttest: %v", err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		ln.Close()
		if _, seen := handed.LoadOrStore(port, true); !seen {
			return port
		}
	}
	t.Fatal("porttest: every free port the kernel offered was handed out before")
	return 0
}
