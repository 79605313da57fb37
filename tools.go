//go:build tools

// Package tools pins the modules that the daemon, the rescue console and the
// test rig use, so that go.mod carries them at fixed versions.
package tools

import (
	_ "github.com/beevik/ntp"
	_ "github.com/chromedp/chromedp"
	_ "github.com/creack/pty"
	_ "github.com/emersion/go-smtp"
	_ "github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	_ "github.com/pquerna/otp/totp"
	_ "github.com/vishvananda/netlink"
	_ "github.com/warthog618/go-gpiocdev"
	_ "github.com/warthog618/go-gpiosim"
	_ "github.com/wneessen/go-mail"
	_ "go.bug.st/serial"
	_ "go.etcd.io/bbolt"
	_ "golang.org/x/crypto/argon2"
	_ "golang.org/x/sys/unix"
	_ "golang.org/x/time/rate"
)
