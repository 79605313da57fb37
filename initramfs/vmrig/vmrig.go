// Package vmrig is the host side of the arm64 VM test rig: it talks to the
// VM's control channel and waits for markers on the VM's console log.
package vmrig

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Ctl sends one command line to the VM's control channel (a unix socket that
// QEMU connects to the guest's virtio-serial port rknas.ctl) and returns the
// reply line. A reply starting with "err" is returned as an error.
func Ctl(ctx context.Context, sock, line string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return "", fmt.Errorf("vmrig: connect control channel %s (is the VM running?): %w", sock, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = c.SetDeadline(time.Now()) })
	defer stop()
	if _, err := fmt.Fprintf(c, "%s\n", line); err != nil {
		return "", fmt.Errorf("vmrig: send %q: %w", line, err)
	}
	reply, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("vmrig: read reply to %q: %w", line, err)
	}
	reply = strings.TrimSpace(reply)
	if strings.HasPrefix(reply, "err") {
		return reply, fmt.Errorf("vmrig: %q: %s", line, reply)
	}
	return reply, nil
}

// Console follows a console log file that QEMU appends to.
type Console struct {
	Path string
	off  int64 // where the next wait starts reading
}

// Mark makes later waits look only at output written from now on.
func (c *Console) Mark() error {
	fi, err := os.Stat(c.Path)
	if os.IsNotExist(err) {
		c.off = 0
		return nil
	}
	if err != nil {
		return fmt.Errorf("vmrig: stat %s: %w", c.Path, err)
	}
	c.off = fi.Size()
	return nil
}

// Wait returns the first complete line containing marker written after the
// last Mark or Wait, and moves past it. It polls the file (QEMU offers no
// other event) until ctx ends, then returns an error quoting the log's tail.
func (c *Console) Wait(ctx context.Context, marker string) (string, error) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		b, _ := os.ReadFile(c.Path)
		if int64(len(b)) > c.off {
			chunk := b[c.off:]
			if i := bytes.Index(chunk, []byte(marker)); i >= 0 {
				if j := bytes.IndexByte(chunk[i:], '\n'); j >= 0 {
					start := bytes.LastIndexByte(chunk[:i], '\n') + 1
					line := strings.TrimRight(string(chunk[start:i+j]), "\r")
					c.off += int64(i + j + 1)
					return line, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			tail := b
			if len(tail) > 3000 {
				tail = tail[len(tail)-3000:]
			}
			return "", fmt.Errorf("vmrig: no %q on the console (%w); console tail:\n%s", marker, ctx.Err(), tail)
		case <-tick.C:
		}
	}
}
