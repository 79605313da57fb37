package main

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rknas/firmware/authd/connlimit"
	"github.com/rknas/firmware/internal/lockedbuf"
)

// TestServingHoldsUnderConnectionFloods runs authd over HTTPS and floods it
// as anyone on the LAN could: HTTP/2 is not offered; bare connects that
// fail their TLS handshake are reported in one line, not one line each;
// and one address opening more connections than its share gets the extra
// ones closed at once, while the owner's request from another address is
// served.
func TestServingHoldsUnderConnectionFloods(t *testing.T) {
	args := []string{"-state", filepath.Join(t.TempDir(), "state"), "-listen", "127.0.0.1:0", "-tls", "auto", "-board", "none",
		"-set-clock=false", "-ntp", "127.0.0.1:9", "-control-socket", "", "-argon2-memory", "8192", "-argon2-time", "1"}
	ctx, cancel := context.WithCancel(context.Background())
	logs := &lockedbuf.Buffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, args, io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("authd did not stop within 10 s")
		}
	})
	url := waitLog(t, logs, regexp.MustCompile(`"authd ready" url=(https://\S+)`))
	addr := strings.TrimPrefix(url, "https://")
	dialFrom := func(from string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 10 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	// No HTTP/2, even to a client that asks for it first.
	tc := tls.Client(dialFrom("127.0.0.4"), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if p := tc.ConnectionState().NegotiatedProtocol; p == "h2" {
		t.Fatal("HTTP/2 was negotiated")
	}
	tc.Close()

	// 50 bare connects, each a failed handshake: one line.
	for range 50 {
		dialFrom("127.0.0.5").Close()
	}
	waitLog(t, logs, regexp.MustCompile(`(TLS handshake)`))
	time.Sleep(200 * time.Millisecond) // the rest are logged, if they are
	if n := strings.Count(logs.String(), "TLS handshake"); n != 1 {
		t.Fatalf("50 failed handshakes gave %d log lines, want 1:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `msg="TLS handshakes failed" count=1 last="127.0.0.5:`) {
		t.Fatalf("the failed handshakes' line does not say how many and from where:\n%s", logs.String())
	}

	// One address opens more than its share: the extra ones are closed at
	// once, the others wait for their handshake.
	const opened = 40
	extra := opened - connlimit.DefaultLimits.PerClient
	var wg sync.WaitGroup
	var mu sync.Mutex
	closedAtOnce := 0
	for range opened {
		c := dialFrom("127.0.0.2")
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetReadDeadline(time.Now().Add(3 * time.Second))
			_, err := c.Read(make([]byte, 1))
			var ne net.Error
			if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
				mu.Lock()
				closedAtOnce++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if closedAtOnce != extra {
		t.Fatalf("of %d connections from one address %d were closed at once, want %d (the share is %d)",
			opened, closedAtOnce, extra, connlimit.DefaultLimits.PerClient)
	}
	owner := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		DialContext: (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}).DialContext}}
	resp, err := owner.Get(url + "/healthz")
	if err != nil {
		t.Fatalf("the owner's request beside the flood: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("the owner's request beside the flood: %s", resp.Status)
	}
	waitLog(t, logs, regexp.MustCompile(`(connections at their limit)`))
}
