package vmrig

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/internal/waittest"
)

func TestConsoleWait(t *testing.T) {
	path := filepath.Join(t.TempDir(), "console.log")
	if err := os.WriteFile(path, []byte("old authd ready\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := &Console{Path: path}
	if err := c.Mark(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// A partial line is not a match until its newline arrives.
	if _, err := f.WriteString("x=1 authd re"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan string, 1)
	go func() {
		l, err := c.Wait(ctx, "authd ready")
		if err != nil {
			l = err.Error()
		}
		got <- l
	}()
	if _, err := f.WriteString("ady now\r\nnext\n"); err != nil {
		t.Fatal(err)
	}
	if l := waittest.Recv(t, got, "the awaited line"); l != "x=1 authd ready now" {
		t.Fatalf("Wait = %q", l)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if _, err := c.Wait(short, "authd ready"); err == nil || !strings.Contains(err.Error(), "next") {
		t.Fatalf("Wait past the only match = %v, want a timeout quoting the tail", err)
	}
}

func TestCtl(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "ctl.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadString('\n')
			if strings.TrimSpace(line) == "ping" {
				c.Write([]byte("pong\n"))
			} else {
				c.Write([]byte("err bad command\n"))
			}
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := Ctl(ctx, sock, "ping"); err != nil || r != "pong" {
		t.Fatalf("Ctl ping = %q, %v", r, err)
	}
	if _, err := Ctl(ctx, sock, "dance"); err == nil {
		t.Fatal("an err reply was not an error")
	}
	if _, err := Ctl(ctx, filepath.Join(t.TempDir(), "none.sock"), "ping"); err == nil {
		t.Fatal("Ctl to a missing socket succeeded")
	}
}
