package control

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPrivateDirTightensAnExistingDirectory: a state or socket directory
// that already exists with looser permissions is set to 0700, which
// MkdirAll alone would leave as it is.
func TestPrivateDirTightensAnExistingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := PrivateDir(dir); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Fatalf("mode %v, want 0700", fi.Mode().Perm())
	}
	fresh := filepath.Join(t.TempDir(), "a", "b")
	if err := PrivateDir(fresh); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != 0o700 {
		t.Fatalf("new dir mode %v", fi.Mode().Perm())
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := PrivateDir(file); err == nil {
		t.Fatal("a file was accepted as a directory")
	}
}

// TestSocketIsPrivate: the socket is 0600 in a 0700 directory, however
// loose the directory was.
func TestSocketIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	if err := os.Mkdir(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "control.sock")
	s, err := Listen(path, &fakeBackend{}, &Presses{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for p, want := range map[string]os.FileMode{dir: 0o700, path: 0o600} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s: %v %v, want %v", p, fi.Mode().Perm(), err, want)
		}
	}
}

// TestPeerUnderAnotherUIDIsRefused: with the socket opened to everyone by
// mistake (mode 0666 in a 0777 directory), a process under another uid
// reaches it and is still refused: the peer check reads the caller's uid
// from the kernel (SO_PEERCRED). Needs root, to start that process.
func TestPeerUnderAnotherUIDIsRefused(t *testing.T) {
	if os.Getuid() != 0 {
		t.Fatal("this test starts a process under another uid and needs root (CI runs as root)")
	}
	dir, err := os.MkdirTemp("", "control-peer-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "run", "control.sock")
	b := &fakeBackend{}
	s, err := Listen(path, b, &Presses{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// The mistake, and a copy of this test binary "nobody" may run.
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "control.test")
	for _, step := range []error{
		os.WriteFile(bin, self, 0o755), os.Chmod(dir, 0o755), os.Chmod(filepath.Dir(path), 0o777), os.Chmod(path, 0o666),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	for _, tc := range []struct {
		uid     uint32
		refused bool
	}{{65534, true}, {0, false}} {
		cmd := exec.Command(bin, "-test.run=^TestPeerHelper$", "-test.count=1")
		cmd.Env = append(os.Environ(), "CONTROL_PEER_SOCKET="+path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: tc.uid, Gid: tc.uid}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper as uid %d: %v\n%s", tc.uid, err, out)
		}
		refused := strings.Contains(string(out), "peer: refused")
		if refused != tc.refused || !strings.Contains(string(out), "peer: ") {
			t.Errorf("uid %d: refused=%v, want %v:\n%s", tc.uid, refused, tc.refused, out)
		}
	}
	if b.resets != 0 {
		t.Fatal("a peer reset the admin")
	}
}

// TestPeerHelper is the other process of TestPeerUnderAnotherUIDIsRefused;
// it does nothing in a normal run.
func TestPeerHelper(t *testing.T) {
	path := os.Getenv("CONTROL_PEER_SOCKET")
	if path == "" {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := NewClient(path).Status(ctx)
	switch {
	case err == nil:
		fmt.Println("peer: admitted")
	case strings.Contains(err.Error(), "forbidden"):
		fmt.Println("peer: refused:", err)
	default:
		fmt.Println("peer: error:", err)
	}
}
