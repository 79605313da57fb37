//go:build soak

package soak

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// mountState makes a small ext4 file system of sizeMiB on a loop device
// and mounts it, as the state partition is on a board.
func mountState(t *testing.T, sizeMiB int) (img, mnt, dev string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the storage faults need root (a loop-mounted ext4 state partition)")
	}
	dir := t.TempDir()
	img, mnt = filepath.Join(dir, "state.ext4"), filepath.Join(dir, "state")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, c := range [][]string{
		{"truncate", "-s", fmt.Sprintf("%dM", sizeMiB), img},
		{"mkfs.ext4", "-q", "-F", img},
	} {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	dev = mount(t, img, mnt)
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() })
	return img, mnt, dev
}

// mount mounts img on mnt as uinit mounts the state partition, with the
// kernel's remount-ro on errors, and returns the loop device.
func mount(t *testing.T, img, mnt string) string {
	t.Helper()
	if out, err := exec.Command("mount", "-o", "loop,errors=remount-ro", img, mnt).CombinedOutput(); err != nil {
		t.Fatalf("mount %s: %v\n%s", img, err, out)
	}
	out, err := exec.Command("findmnt", "-n", "-o", "SOURCE", mnt).Output()
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(out))
}

// remount unmounts the state partition and mounts it again, as the next
// boot does: uinit mounts it without a check, and ext4 replays its journal.
func remount(t *testing.T, img, mnt string) {
	t.Helper()
	if out, err := exec.Command("umount", mnt).CombinedOutput(); err != nil {
		t.Fatalf("umount: %v\n%s", err, out)
	}
	mount(t, img, mnt)
}

// fill writes a filler file until the file system has no block left.
func fill(t *testing.T, dir string) string {
	t.Helper()
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 64<<10)
	for size := len(buf); size > 0; {
		if _, err := f.Write(buf[:size]); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			size /= 2 // the last blocks, to the last one
		}
	}
	f.Sync()
	return path
}

func fileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

// TestStorage fills the state partition to its last block, makes it
// read-only, and garbles and truncates the database: each write refused
// with a clear error while it lasts, nothing acknowledged lost, service
// back once space is freed or the partition writable again, and a broken
// database named and left alone, never silently made anew.
func TestStorage(t *testing.T) {
	_, sc := campaign()
	img, mnt, dev := mountState(t, 24)
	state := filepath.Join(mnt, "authd")
	addr := freeAddr(t)
	d, err := start(t, state, addr)
	if err != nil {
		t.Fatal(err)
	}
	const password = "owner passphrase 1"
	owner := ownerSetup(t, d, password)
	acked := []string{}
	create := func(name string) (int, string) {
		code, out, err := owner.call(context.Background(), "POST", "/api/v1/users", map[string]any{"name": name, "password": "user passphrase 1", "must_change_password": false})
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		if code == 201 {
			acked = append(acked, name)
		}
		e, _ := out["error"].(map[string]any)
		msg, _ := e["message"].(string)
		return code, msg
	}
	var refusedFull, refusedRO int
	var fullMessage, roMessage string
	for loop := range sc.storageLoops {
		filler := fill(t, mnt)
		for i := range 5 {
			code, msg := create(fmt.Sprintf("full%d-%d", loop, i))
			if code == 201 {
				continue // the database had a free page left
			}
			refusedFull++
			fullMessage = msg
			if code != 507 || !strings.Contains(msg, "full") {
				t.Errorf("a write on a full partition: %d %q, want a server error that says the storage is full", code, msg)
			}
		}
		if code, _, err := owner.call(context.Background(), "GET", "/api/v1/me", nil); err != nil || code != 200 {
			t.Errorf("reading on a full partition: %d %v", code, err)
		}
		os.Remove(filler)
		if code, msg := create(fmt.Sprintf("freed%d", loop)); code != 201 {
			t.Errorf("after space was freed: %d %q", code, msg)
		}
	}
	// An ext4 error: the kernel aborts the journal and remounts the state
	// partition read-only (errors=remount-ro), as after an I/O error.
	if err := os.WriteFile(filepath.Join("/sys/fs/ext4", filepath.Base(dev), "trigger_fs_error"), []byte("soak\n"), 0); err != nil {
		t.Fatalf("trigger an ext4 error: %v", err)
	}
	for i := range 3 {
		if code, msg := create(fmt.Sprintf("ro%d", i)); code != 201 {
			refusedRO++
			roMessage = msg
			if code != 503 || !strings.Contains(msg, "read-only") {
				t.Errorf("a write on a read-only partition: %d %q, want 503 saying so", code, msg)
			}
		}
	}
	// What a restart of the board does: mount it again.
	d.stop()
	remount(t, img, mnt)

	// Nothing acknowledged was lost.
	d, err = start(t, state, addr)
	if err != nil {
		t.Fatalf("authd does not start after the faults: %v", err)
	}
	lost := 0
	c := newClient(d.url(), "")
	c.must(t, 200, "POST", "/api/v1/login", login("admin", password))
	list := c.must(t, 200, "GET", "/api/v1/users", nil)
	have := map[string]bool{}
	for _, u := range list["users"].([]any) {
		have[u.(map[string]any)["name"].(string)] = true
	}
	for _, n := range acked {
		if !have[n] {
			t.Errorf("user %s was acknowledged and is gone", n)
			lost++
		}
	}
	d.stop()

	// A broken database: named, and left as it is for the rescue console
	// (or a backup) to deal with.
	db := filepath.Join(state, "auth.db")
	good, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	var named int
	for _, breakIt := range []struct {
		name string
		do   func() error
	}{
		{"truncated", func() error { return os.Truncate(db, int64(len(good)/2)) }},
		{"garbage", func() error {
			f, err := os.OpenFile(db, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.CopyN(f, rand.Reader, 8192)
			return err
		}},
		{"empty", func() error { return os.Truncate(db, 0) }},
	} {
		if err := os.WriteFile(db, good, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := breakIt.do(); err != nil {
			t.Fatal(err)
		}
		before := fileSum(t, db)
		d, err := start(t, state, addr)
		if err == nil {
			d.stop()
			t.Errorf("authd started on a %s database", breakIt.name)
			lost++
			continue
		}
		if !strings.Contains(err.Error(), "auth.db") {
			t.Errorf("a %s database: authd's words do not name auth.db:\n%v", breakIt.name, err)
		} else {
			named++
		}
		if fileSum(t, db) != before {
			t.Errorf("a %s database was changed by authd's start", breakIt.name)
			lost++
		}
	}
	if err := os.WriteFile(db, good, 0o600); err != nil {
		t.Fatal(err)
	}
	if d, err := start(t, state, addr); err != nil {
		t.Errorf("authd does not start on the database put back: %v", err)
	} else {
		d.stop()
	}
	record(row{
		what: "full, read-only and broken storage",
		did: fmt.Sprintf("a 24 MiB ext4 state partition filled to its last block %d times (%d writes refused), made read-only by an ext4 error (%d writes refused); auth.db truncated, garbled and emptied",
			sc.storageLoops, refusedFull, refusedRO),
		found: fmt.Sprintf("writes refused with %q and %q, served again once freed, or after the partition was mounted again (as at the next boot); %d acknowledged users all there after a restart; %d of 3 broken databases named and left untouched",
			fullMessage, roMessage, len(acked), named),
		lost: lost,
	})
}
