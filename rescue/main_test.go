package main

import (
	"bytes"
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/rescue/console"
	"github.com/rknas/firmware/rescue/console/consoletest"
	"github.com/rknas/firmware/rescue/internal/ptytest"

	"github.com/rknas/firmware/internal/waittest"
)

// TestNoWayToRunCommands proves from the import graph and the source that
// the rescue binary cannot start a process: no os/exec or plugin anywhere in
// its dependencies, and no call of the process-starting functions of os,
// syscall or x/sys/unix in its own code.
func TestNoWayToRunCommands(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the import graph: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", ".", "./console", "./lineread", "./serialport", "./sysactions",
		"./attach").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 20 {
		t.Fatalf("go list gave only %d packages: %q", len(deps), deps)
	}
	for _, d := range deps {
		switch d {
		case "os/exec", "plugin":
			t.Errorf("the rescue binary depends on %s", d)
		}
	}

	files := 0
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		files++
		calls, err := processCalls(path, nil)
		for _, c := range calls {
			t.Errorf("%s calls %s", path, c)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 8 {
		t.Fatalf("scanned only %d files", files)
	}
}

// processCalls lists the calls in a Go file (src, or the file at path when
// src is nil) of functions that start or replace a process, or that make raw
// system calls which could.
func processCalls(path string, src any) ([]string, error) {
	forbidden := map[string]map[string]bool{
		"os":      {"StartProcess": true},
		"syscall": {"Exec": true, "ForkExec": true, "StartProcess": true, "RawSyscall": true, "Syscall": true},
		"unix":    {"Exec": true, "Syscall": true, "RawSyscall": true, "Syscall6": true},
	}
	f, err := parser.ParseFile(token.NewFileSet(), path, src, 0)
	if err != nil {
		return nil, err
	}
	var found []string
	ast.Inspect(f, func(n ast.Node) bool {
		if sel, ok := n.(*ast.SelectorExpr); ok {
			if id, ok := sel.X.(*ast.Ident); ok && forbidden[id.Name][sel.Sel.Name] {
				found = append(found, id.Name+"."+sel.Sel.Name)
			}
		}
		return true
	})
	return found, nil
}

func TestProcessCallsFindsExec(t *testing.T) {
	src := `package p
import ("os"; "syscall")
func f() { os.StartProcess("/bin/sh", nil, nil); syscall.Exec("/bin/sh", nil, nil); os.Getpid() }`
	got, err := processCalls("p.go", src)
	if err != nil || strings.Join(got, ",") != "os.StartProcess,syscall.Exec" {
		t.Errorf("processCalls = %q, %v", got, err)
	}
}

// board runs `rescue console` on a pty joined to a PC-side pty, with fake
// actions.
func boardSide(t *testing.T, a *consoletest.Actions, args ...string) (pcPath string) {
	t.Helper()
	dir := t.TempDir()
	b, pc := ptytest.NewPort(t, dir, "ttyS2"), ptytest.NewPort(t, dir, "ttyUSB0")
	ptytest.Join(b, pc)
	old := wire
	wire = func(*slog.Logger, wireOptions) (console.Actions, console.Button, error) { return a, nil, nil }
	t.Cleanup(func() { wire = old })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var stderr bytes.Buffer
	go func() {
		done <- run(ctx, append([]string{"console", "--port", b.Path()}, args...), nil, io.Discard, &stderr)
	}()
	t.Cleanup(func() {
		cancel()
		if err := waittest.Recv(t, done, "the console to stop after cancel"); err != nil {
			t.Errorf("rescue console: %v", err)
		}
		t.Logf("console log:\n%s", stderr.String())
	})
	return pc.Path()
}

func attachRun(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	err := run(context.Background(), append([]string{"attach"}, args...), strings.NewReader(""), &out, &errb)
	code = exitCode(err, &errb)
	return out.String(), errb.String(), code
}

func TestAttachToConsole(t *testing.T) {
	a := &consoletest.Actions{
		StatusValue: console.Status{Board: "Test Board", Version: "v9", Addresses: []string{"eth0 10.0.2.15/24"},
			AuthdOK: true, Authd: "ok"},
		ResetAdminMsg: "admin reset",
	}
	pc := boardSide(t, a)

	out, errs, code := attachRun(t, "--port", pc, "--run", "status")
	if code != exitOK || !strings.Contains(out, "address: eth0 10.0.2.15/24\n") {
		t.Errorf("status: code %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	// No terminal on stdin and no --yes: refused, exit 4.
	out, errs, code = attachRun(t, "--port", pc, "--run", "reset-admin")
	if code != exitNotConfirmed || !strings.Contains(errs, "not confirmed") {
		t.Errorf("reset-admin without --yes: code %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	if n := a.Called(console.ActionResetAdmin); n != 0 {
		t.Fatalf("reset-admin ran without confirmation")
	}
	out, errs, code = attachRun(t, "--port", pc, "--run", "reset-admin", "--yes")
	if code != exitOK || !strings.Contains(out, "admin reset\n") {
		t.Errorf("reset-admin --yes: code %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	a.RebootErr = errors.New("reboot: operation not permitted")
	out, errs, code = attachRun(t, "--port", pc, "--run", "reboot", "--yes")
	if code != exitFailed || !strings.Contains(errs, "reboot failed on the board: reboot: reboot: operation not permitted") {
		t.Errorf("failing reboot: code %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
}

func TestFailsafeFlag(t *testing.T) {
	pc := boardSide(t, &consoletest.Actions{}, "--failsafe", "--baud", "115200")
	// The console in failsafe mode has its menu open; attach copes.
	if _, errs, code := attachRun(t, "--port", pc, "--baud", "115200", "--run", "clock"); code != exitOK {
		t.Errorf("clock: code %d: %s", code, errs)
	}
}

func TestAttachErrors(t *testing.T) {
	dir := t.TempDir()
	silent := ptytest.NewPort(t, dir, "ttyUSB1") // nothing on the far end
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no port", []string{"--run", "status"}, exitUsage, "--port is needed"},
		{"bad baud", []string{"--port", silent.Path(), "--baud", "0", "--run", "status"}, exitUsage, "baud"},
		{"unknown action", []string{"--port", silent.Path(), "--run", "shell"}, exitUsage, `unknown action "shell"`},
		{"set-clock without time", []string{"--port", silent.Path(), "--run", "set-clock"}, exitUsage, "needs --time"},
		{"bad time", []string{"--port", silent.Path(), "--run", "set-clock", "--time", "noon"}, exitUsage, "not a time"},
		{"missing port", []string{"--port", filepath.Join(dir, "gone"), "--run", "status"}, exitNoConsole, "no such file"},
		{"no console", []string{"--port", silent.Path(), "--run", "status", "--timeout", "300ms"}, exitNoConsole,
			"no rescue console answered within 300ms on " + silent.Path() + " at 1500000 baud"},
	}
	for _, tt := range tests {
		_, errs, code := attachRun(t, tt.args...)
		if code != tt.code || !strings.Contains(errs, tt.want) {
			t.Errorf("%s: code %d, stderr %q; want code %d and %q", tt.name, code, errs, tt.code, tt.want)
		}
	}
}

func TestConsoleUsage(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "no subcommand"},
		{[]string{"shell"}, `unknown subcommand "shell"`},
		{[]string{"console", "--baud", "-5"}, "baud"},
		{[]string{"console", "--port", ""}, "no device path"},
		{[]string{"console", "--idle", "0s"}, "--idle must be positive"},
		{[]string{"console", "extra"}, `unexpected argument "extra"`},
		{[]string{"attach"}, "attach: --port is needed"},
		{[]string{"attach", "--run", "status"}, "usage:"},
	}
	for _, tt := range tests {
		var errb bytes.Buffer
		err := run(context.Background(), tt.args, nil, io.Discard, &errb)
		if code := exitCode(err, &errb); code != exitUsage || !strings.Contains(errb.String(), tt.want) {
			t.Errorf("%q: code %d, stderr %q; want %q", tt.args, code, errb.String(), tt.want)
		}
	}
}

// TestHelpIsNoError: -h prints the flags and exits 0.
func TestHelpIsNoError(t *testing.T) {
	for _, args := range [][]string{{"console", "-h"}, {"attach", "--help"}, {"help"}} {
		var out, errb bytes.Buffer
		err := run(context.Background(), args, nil, &out, &errb)
		if code := exitCode(err, &errb); code != exitOK || strings.Contains(errb.String(), "help requested") || out.Len()+errb.Len() == 0 {
			t.Errorf("%q: code %d, stdout %q, stderr %q; want 0 and the help", args, code, out.String(), errb.String())
		}
	}
}

// TestConsoleWaitsForMissingPort starts the console before its port exists,
// as when the UART driver or a USB adapter shows up late.
func TestConsoleWaitsForMissingPort(t *testing.T) {
	dir := t.TempDir()
	b, pc := ptytest.NewPort(t, dir, "ttyS2"), ptytest.NewPort(t, dir, "ttyUSB0")
	ptytest.Join(b, pc)
	b.Unplug()
	old := wire
	wire = func(*slog.Logger, wireOptions) (console.Actions, console.Button, error) {
		return &consoletest.Actions{}, nil, nil
	}
	defer func() { wire = old }()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	stderr := &syncWriter{ch: make(chan string, 256)}
	go func() { done <- run(ctx, []string{"console", "--port", b.Path()}, nil, io.Discard, stderr) }()
	stderr.waitFor(t, "rescue: open port")
	b.Plug()
	if _, errs, code := attachRun(t, "--port", pc.Path(), "--run", "clock"); code != exitOK {
		t.Errorf("clock: code %d: %s", code, errs)
	}
	cancel()
	if err := waittest.Recv(t, done, "the console to stop after cancel"); err != nil {
		t.Fatal(err)
	}
}

// syncWriter collects log output and lets a test wait for a message.
type syncWriter struct{ ch chan string }

func (w *syncWriter) Write(p []byte) (int, error) {
	select {
	case w.ch <- string(p):
	default:
	}
	return len(p), nil
}

func (w *syncWriter) waitFor(t *testing.T, want string) {
	t.Helper()
	limit := time.After(10 * time.Second)
	for {
		select {
		case s := <-w.ch:
			if strings.Contains(s, want) {
				return
			}
		case <-limit:
			t.Fatalf("log line %q did not come", want)
		}
	}
}
