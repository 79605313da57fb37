// Command crashchild runs one recovery against a state directory; the
// recovery crash test builds it without the race detector and kills it at
// random points.
package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/rknas/firmware/authd/account"
	"github.com/rknas/firmware/authd/atomicfile"
	"github.com/rknas/firmware/authd/clock"
	"github.com/rknas/firmware/authd/recovery"
	"github.com/rknas/firmware/authd/store"
)

// fileNetwork writes the default network configuration durably, as
// netconf.Manager.ResetToDefault does.
type fileNetwork struct{ path string }

func (n fileNetwork) ResetToDefault(context.Context) error {
	return atomicfile.Write(n.path, []byte(`{"hostname":"rknas","interfaces":[{"name":"eth0","mode":"dhcp"}]}`), 0o600)
}

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "crashchild:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 2 {
		return fmt.Errorf("usage: crashchild STATE-DIR DEFAULT-PASSWORD")
	}
	dir := args[0]
	s, err := store.Open(filepath.Join(dir, "auth.db"))
	if err != nil {
		return err
	}
	defer s.Close()
	h, err := account.NewHasher(account.Params{Time: 1, MemKiB: 8 * 1024, Threads: 1, KeyLen: 32, SaltLen: 16}, 1, time.Minute)
	if err != nil {
		return err
	}
	d := recovery.Deps{Store: s, Hasher: h, DefaultPassword: args[1], Network: fileNetwork{filepath.Join(dir, "network.json")},
		Clock: clock.System{}, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	return recovery.Run(context.Background(), d, "button")
}
