// Command authd is the NAS login daemon: the login API with TOTP two-factor
// authentication, the clock, security mail and the RESET button.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "authd:", err)
		if errors.Is(err, errConfig) {
			// Exit code 3 tells the supervisor not to restart: a
			// restart cannot fix a configuration error.
			os.Exit(3)
		}
		os.Exit(1)
	}
}
