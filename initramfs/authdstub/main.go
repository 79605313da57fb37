// Command authdstub stands in for authd while the real daemon is not built: it
// speaks authd's command line and console markers and serves /healthz, so the
// VM rig and the baseline measurements can run without it.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/rknas/firmware/authd/atomicfile"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "authdstub:", err)
		os.Exit(3)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("authdstub", flag.ContinueOnError)
	state := fs.String("state", "", "state directory")
	listen := fs.String("listen", ":8080", "API address")
	fs.String("default-password-file", "", "per-device default password file")
	fs.String("board", "auto", "board profile")
	fs.String("ntp", "", "NTP servers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *state == "" {
		return errors.New("-state is required")
	}
	pwFile := filepath.Join(*state, "default-password")
	// Like authd: generated and printed once, on the first start.
	if _, err := os.Stat(pwFile); errors.Is(err, os.ErrNotExist) {
		b := make([]byte, 10)
		_, _ = rand.Read(b)
		pw := []byte(strings.ToLower(base32.StdEncoding.EncodeToString(b)))
		if err := os.MkdirAll(*state, 0o700); err != nil {
			return err
		}
		if err := atomicfile.Write(pwFile, pw, 0o600); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "authdstub: default admin password: %s\n", pw)
	} else if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	srv := &http.Server{Handler: mux}
	go func() { <-ctx.Done(); srv.Close() }()
	fmt.Fprintf(stderr, "authdstub: authd ready on %s\n", ln.Addr())
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
