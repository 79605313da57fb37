package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// startDaemon builds authd, starts it on a free loopback port with fresh
// state and returns its URL, process and default password.
func startDaemon(tb testing.TB, args ...string) (string, *exec.Cmd, string) {
	tb.Helper()
	dir := tb.TempDir()
	bin := filepath.Join(dir, "authd")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		tb.Fatalf("build: %v\n%s", err, out)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	state := filepath.Join(dir, "state")
	cmd := exec.Command(bin, append([]string{"-state", state, "-listen", addr, "-board", "none"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			if strings.Contains(sc.Text(), "authd ready") {
				once.Do(func() { close(ready) })
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(30 * time.Second):
		tb.Fatal("authd did not print 'authd ready' within 30 s")
	}
	pw, err := os.ReadFile(filepath.Join(state, "default-password"))
	if err != nil {
		tb.Fatal(err)
	}
	return "http://" + addr, cmd, strings.TrimSpace(string(pw))
}

// procKiB reads a "VmXxx:" line of /proc/PID/status.
func procKiB(tb testing.TB, pid int, field string) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if rest, ok := strings.CutPrefix(l, field+":"); ok {
			v, _ := strconv.ParseFloat(strings.Fields(rest)[0], 64)
			return v
		}
	}
	tb.Fatalf("%s not in /proc/%d/status", field, pid)
	return 0
}

// BenchmarkDaemonMemory starts the real daemon with its default argon2id
// parameters, reads its idle RSS, then sends 200 concurrent logins and reads
// its peak RSS (VmHWM). Goals: idle <= 20 MiB; peak <= cap x argon2 memory
// + 32 MiB, with cap = -hash-concurrency (4 here, as on a 4-core board).
func BenchmarkDaemonMemory(b *testing.B) {
	const hashCap = 4
	for n := 0; n < b.N; n++ {
		url, cmd, pw := startDaemon(b, "-hash-concurrency", strconv.Itoa(hashCap))
		time.Sleep(500 * time.Millisecond) // let start-up garbage settle; a reading, not a synchronisation
		idle := procKiB(b, cmd.Process.Pid, "VmRSS") / 1024
		var ok, busy atomic.Int32
		var wg sync.WaitGroup
		body := `{"username":"admin","password":"` + pw + `"}`
		client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 200}}
		for i := 0; i < 200; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				resp, err := client.Post(url+"/api/v1/login", "application/json", strings.NewReader(body))
				if err != nil {
					b.Error(err)
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				switch resp.StatusCode {
				case 200:
					ok.Add(1)
				case 503:
					busy.Add(1)
				default:
					b.Errorf("login: status %d", resp.StatusCode)
				}
			}()
		}
		wg.Wait()
		peak := procKiB(b, cmd.Process.Pid, "VmHWM") / 1024
		goal := float64(hashCap*32 + 32)
		b.ReportMetric(idle, "idle_MiB")
		b.ReportMetric(peak, "peak_MiB")
		b.ReportMetric(goal, "goal_peak_MiB")
		b.ReportMetric(peak/goal, "peak/goal")
		b.ReportMetric(float64(ok.Load()), "logins_ok")
		b.ReportMetric(float64(busy.Load()), "logins_503")
	}
}
