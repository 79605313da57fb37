package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseModuleList(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{"# comment\n\nkernel/fs/configfs/configfs.ko\n extra/gpio-sim.ko \n", "kernel/fs/configfs/configfs.ko,extra/gpio-sim.ko", ""},
		{"", "", ""},
		{"/lib/x.ko\n", "", "line 1"},
		{"a.ko\n../../etc/x.ko\n", "", "line 2"},
		{"kernel/notes.txt\n", "", "not a relative .ko path"},
	}
	for _, tt := range tests {
		got, err := parseModuleList(strings.NewReader(tt.in))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseModuleList(%q) err = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || strings.Join(got, ",") != tt.want {
			t.Errorf("parseModuleList(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func FuzzParseModuleList(f *testing.F) {
	f.Add("a/b.ko\n#x\n")
	f.Add("../x.ko")
	f.Fuzz(func(t *testing.T, in string) {
		mods, err := parseModuleList(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, m := range mods {
			if !filepath.IsLocal(m) {
				t.Fatalf("accepted non-local path %q", m)
			}
		}
	})
}

// TestExt4Label checks the superblock reader against a file system made by
// the real mkfs.ext4 (e2fsprogs), the tool the rig uses for the state disk.
func TestExt4Label(t *testing.T) {
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		t.Fatal("mkfs.ext4 not found: install e2fsprogs (scripts/deps.sh)")
	}
	img := filepath.Join(t.TempDir(), "state.img")
	if out, err := exec.Command(mkfs, "-q", "-F", "-L", "RKNAS-STATE", img, "4M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if l, ok := ext4Label(f); !ok || l != "RKNAS-STATE" {
		t.Fatalf("ext4Label = %q, %v; want RKNAS-STATE", l, ok)
	}
	if l, ok := ext4Label(bytes.NewReader(make([]byte, 4096))); ok {
		t.Fatalf("ext4Label on zeros = %q, true", l)
	}
}

func FuzzExt4Label(f *testing.F) {
	sb := make([]byte, 2048)
	sb[1024+0x38], sb[1024+0x39] = 0x53, 0xEF
	copy(sb[1024+0x78:], "RKNAS-STATE")
	f.Add(sb)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if l, ok := ext4Label(bytes.NewReader(b)); ok && len(l) > 16 {
			t.Fatalf("label longer than 16 bytes: %q", l)
		}
	})
}
