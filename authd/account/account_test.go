package account

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var fast = Params{Time: 1, MemKiB: 8 * 1024, Threads: 1, KeyLen: 32, SaltLen: 16}

func TestHashVerify(t *testing.T) {
	h, err := NewHasher(fast, 2, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	phc, err := h.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(phc, "$argon2id$v=19$m=8192,t=1,p=1$") {
		t.Fatalf("PHC string %q", phc)
	}
	for _, tc := range []struct {
		pw, stored string
		want       bool
	}{
		{"correct horse", phc, true},
		{"correct horse ", phc, false},
		{"", phc, false},
		{"correct horse", "", false},
		{"correct horse", "$argon2id$v=19$m=8192,t=1,p=1$bad", false},
	} {
		before := h.Runs()
		ok, err := h.Verify(ctx, tc.pw, tc.stored)
		if err != nil || ok != tc.want {
			t.Errorf("Verify(%q, %.30q) = %v, %v; want %v", tc.pw, tc.stored, ok, err, tc.want)
		}
		// One argon2 run whatever the stored hash: a missing or broken
		// one must cost as much as a real one.
		if n := h.Runs() - before; n != 1 {
			t.Errorf("Verify(%q, %.30q) ran argon2 %d times, want once", tc.pw, tc.stored, n)
		}
	}
	// The same password hashes differently each time (random salt).
	again, _ := h.Hash(ctx, "correct horse")
	if again == phc {
		t.Error("two hashes of one password are equal")
	}
	if NeedsRehash(phc, fast) || !NeedsRehash(phc, DefaultParams) {
		t.Error("NeedsRehash wrong")
	}
}

// TestInteropWithReferenceCLI checks both directions against Debian's
// argon2 command (the reference implementation): its hash verifies here,
// and our hash of the same input with the same salt is byte-identical.
func TestInteropWithReferenceCLI(t *testing.T) {
	bin, err := exec.LookPath("argon2")
	if err != nil {
		t.Fatal("argon2 not found: install Debian's argon2 (scripts/deps.sh does)")
	}
	cmd := exec.Command(bin, "somesaltsomesalt", "-id", "-t", "2", "-m", "13", "-p", "2", "-l", "32", "-e")
	cmd.Stdin = strings.NewReader("password")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("argon2: %v", err)
	}
	ref := strings.TrimSpace(string(out))
	h, err := NewHasher(fast, 1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for pw, want := range map[string]bool{"password": true, "Password": false} {
		if ok, err := h.Verify(context.Background(), pw, ref); err != nil || ok != want {
			t.Errorf("Verify(%q, reference) = %v, %v", pw, ok, err)
		}
	}
	ours := hashWith("password", []byte("somesaltsomesalt"), Params{Time: 2, MemKiB: 8192, Threads: 2, KeyLen: 32, SaltLen: 16})
	if ours != ref {
		t.Errorf("our PHC %q, reference %q", ours, ref)
	}
}

func TestParsePHCRejects(t *testing.T) {
	for _, s := range []string{
		"", "$argon2i$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=16$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=8192,t=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=99999999999,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5",
		"$argon2id$v=19$m=8192,t=1,p=1,x=2$c2FsdHNhbHRzYWx0c2FsdA$a2V5",
		"$argon2id$v=19$m=4,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5",
	} {
		if _, err := parsePHC(s); !errors.Is(err, ErrBadHash) {
			t.Errorf("parsePHC(%q) = %v", s, err)
		}
	}
}

func FuzzParsePHC(f *testing.F) {
	f.Add("$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5")
	f.Add("$$$$$")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := parsePHC(s)
		if err == nil {
			if p.params.Validate() != nil {
				t.Fatalf("accepted invalid params %+v", p.params)
			}
		} else if !errors.Is(err, ErrBadHash) {
			t.Fatalf("error not ErrBadHash: %v", err)
		}
	})
}

func TestHasherCapQueuesThenBusy(t *testing.T) {
	h, err := NewHasher(fast, 1, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	// Hold the only slot, then ask for another: busy after the wait.
	if err := h.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Hash(context.Background(), "password1"); !errors.Is(err, ErrBusy) {
		t.Fatalf("Hash with the slot taken: %v", err)
	}
	h.release()
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each waits its turn; with a short hash all get through or
			// are told busy, none fails otherwise.
			if _, err := h.Hash(context.Background(), "password1"); err != nil && !errors.Is(err, ErrBusy) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if CapFromMemory(DefaultParams) < 1 {
		t.Fatal("cap below 1")
	}
}

// TestUrgentCallersGetTheNextSlot: with the only slot taken and strangers
// queued, a caller marked Urgent gets the next free slot; the others then
// get theirs in arrival order, and one that gave up leaves the queue.
func TestUrgentCallersGetTheNextSlot(t *testing.T) {
	h, err := NewHasher(fast, 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	queued := func(urgent, others int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
			h.mu.Lock()
			u, o := len(h.urgent), len(h.others)
			h.mu.Unlock()
			if u == urgent && o == others {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d urgent and %d other callers queued, want %d and %d", u, o, urgent, others)
			}
		}
	}
	order := make(chan string, 4)
	wait := func(name string, ctx context.Context) {
		go func() {
			if err := h.acquire(ctx); err != nil {
				order <- name + ": " + err.Error()
				return
			}
			order <- name
		}()
	}
	wait("stranger 1", context.Background())
	queued(0, 1)
	wait("stranger 2", context.Background())
	queued(0, 2)
	gaveUp, giveUp := context.WithCancel(context.Background())
	wait("stranger 3", gaveUp)
	queued(0, 3)
	wait("owner", Urgent(context.Background()))
	queued(1, 3)
	giveUp()
	if got := <-order; !strings.HasPrefix(got, "stranger 3: ") {
		t.Fatalf("a caller that gave up: %q", got)
	}
	queued(1, 2)
	var got []string
	for range 3 {
		h.release()
		got = append(got, <-order)
	}
	if want := []string{"owner", "stranger 1", "stranger 2"}; !slices.Equal(got, want) {
		t.Fatalf("slots went to %v, want %v", got, want)
	}
	h.release()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.busy != 0 {
		t.Fatalf("%d slots taken after every caller released, want 0", h.busy)
	}
}

func TestCheckNewPassword(t *testing.T) {
	tests := []struct {
		pw, user, def string
		ok            bool
		why           string
	}{
		{"correct horse", "alice", "Dflt-Pass-1", true, ""},
		{"short", "alice", "", false, "at least 8"},
		{"Dflt-Pass-1", "alice", "Dflt-Pass-1", false, "default"},
		{"aliceALICE", "aliceALICE", "", false, "username"},
		{"AliceAlice", "alicealice", "", false, "username"},
		{strings.Repeat("x", 257), "alice", "", false, "at most 256"},
		{"pass\x00word", "alice", "", false, "control"},
		{"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", "alice", "", false, "UTF-8"},
		{"ünïcödé pässwörd", "alice", "", true, ""},
	}
	for _, tc := range tests {
		err := CheckNewPassword(tc.pw, tc.user, tc.def)
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), tc.why)) {
			t.Errorf("CheckNewPassword(%q) = %v, want ok=%v mentioning %q", tc.pw, err, tc.ok, tc.why)
		}
	}
}

func TestCheckName(t *testing.T) {
	for name, ok := range map[string]bool{
		"alice": true, "_svc": true, "bob.smith": true, "a-1": true,
		"": false, "Alice": false, "1abc": false, "-x": false, "a b": false, "ümlaut": false, strings.Repeat("a", 33): false, "a/b": false,
	} {
		if err := CheckName(name); (err == nil) != ok {
			t.Errorf("CheckName(%q) = %v, want ok=%v", name, err, ok)
		}
	}
}

func TestReadPasswordFile(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		content string
		want    string
		err     string
	}{
		"line":      {"Abcd-Efgh-2345\n", "Abcd-Efgh-2345", ""},
		"crlf":      {"Abcd-Efgh-2345\r\n", "Abcd-Efgh-2345", ""},
		"short":     {"short\n", "", "fewer than 8"},
		"two lines": {"Abcd-Efgh-2345\nsecond\n", "", "one line"},
		"binary":    {"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8", "", "one line"},
		"huge":      {strings.Repeat("a", 2000), "", "larger than 1 KiB"},
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := ReadPasswordFile(path)
		if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: %q, %v; want %q, %q", name, got, err, tc.want, tc.err)
		}
	}
	if _, err := ReadPasswordFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

// TestOnIdleWhenTheLastHashEnds checks the idle hook runs when the last
// hash in progress ends, and not while another still runs.
func TestOnIdleWhenTheLastHashEnds(t *testing.T) {
	h, err := NewHasher(fast, 2, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var idle atomic.Int32
	h.OnIdle(func() { idle.Add(1) })
	if _, err := h.Hash(context.Background(), "password1"); err != nil {
		t.Fatal(err)
	}
	if idle.Load() != 1 {
		t.Fatalf("idle after one hash: %d calls, want 1", idle.Load())
	}
	// One hash holds a slot: another ending is not the last.
	if err := h.acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Verify(context.Background(), "password1", ""); err != nil {
		t.Fatal(err)
	}
	if idle.Load() != 1 {
		t.Fatalf("idle while a hash was still running: %d calls", idle.Load())
	}
	h.release()
	if idle.Load() != 2 {
		t.Fatalf("idle after the last hash: %d calls, want 2", idle.Load())
	}
}

// TestUnknownAccountCheckCostsWhatARealOneDoes: the hash an unknown
// account is checked against has the hasher's own parameters (so the
// check takes as long as a real account's), a salt and key of full length,
// is different in every hasher, and matches no password.
func TestUnknownAccountCheckCostsWhatARealOneDoes(t *testing.T) {
	p := Params{Time: 1, MemKiB: 8 * 1024, Threads: 1, KeyLen: 32, SaltLen: 16}
	a, err := NewHasher(p, 1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewHasher(p, 1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if a.dummy.params != p {
		t.Errorf("dummy parameters %+v, want the hasher's %+v", a.dummy.params, p)
	}
	if len(a.dummy.salt) != int(p.SaltLen) || len(a.dummy.key) != int(p.KeyLen) {
		t.Errorf("dummy salt %d and key %d bytes, want %d and %d", len(a.dummy.salt), len(a.dummy.key), p.SaltLen, p.KeyLen)
	}
	if bytes.Equal(a.dummy.salt, b.dummy.salt) || bytes.Equal(a.dummy.key, b.dummy.key) {
		t.Error("two hashers have the same dummy")
	}
	for _, stored := range []string{"", "$argon2id$broken"} {
		if ok, err := a.Verify(context.Background(), "", stored); ok || err != nil {
			t.Errorf("Verify against %q: %v, %v; want false, nil", stored, ok, err)
		}
	}
}
