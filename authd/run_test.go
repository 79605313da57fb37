package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rknas/firmware/authd/account"
)

// TestGeneratedPasswordOnTheConsoleOnly: a default password authd makes up
// is shown on the secret console alone, never on standard error, which the
// firmware also writes to the log file on the state partition.
func TestGeneratedPasswordOnTheConsoleOnly(t *testing.T) {
	dir := t.TempDir()
	console := filepath.Join(dir, "console")
	if err := os.WriteFile(console, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	out, closeOut := secretConsole(console, &stderr)
	p, source, err := defaultPassword(&options{state: dir}, out)
	closeOut()
	if err != nil {
		t.Fatal(err)
	}
	shown, _ := os.ReadFile(console)
	if !strings.Contains(string(shown), p) {
		t.Errorf("the console shows %q, not the password", shown)
	}
	if strings.Contains(stderr.String(), p) {
		t.Errorf("the password went to standard error: %q", stderr.String())
	}
	stored, err := os.Stat(filepath.Join(dir, "default-password"))
	if err != nil || stored.Mode().Perm() != 0o600 || !strings.Contains(source, "generated") {
		t.Errorf("stored: %v %v, source %q", stored, err, source)
	}
	// Without a console to open it says so on stderr, where the log goes,
	// and shows the password nowhere: it is only in its file.
	stderr.Reset()
	out, closeOut = secretConsole(filepath.Join(dir, "no", "such"), &stderr)
	defer closeOut()
	if out != nil || !strings.Contains(stderr.String(), "-secret-console") {
		t.Errorf("fallback: %v %q", out, stderr.String())
	}
	again := t.TempDir()
	p, _, err = defaultPassword(&options{state: again}, out)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stderr.String(), p) {
		t.Errorf("with no console the password went to standard error: %q", stderr.String())
	}
	if kept, err := account.ReadPasswordFile(filepath.Join(again, "default-password")); err != nil || kept != p {
		t.Errorf("with no console the password was not kept: %q, %v", kept, err)
	}
}
