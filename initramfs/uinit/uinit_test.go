package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/rknas/firmware/board"
)

func TestAuthdArgs(t *testing.T) {
	base := []string{"-state", "/state/authd", "-listen", ":443", "-tls", "auto", "-http-redirect", ":80", "-mdns",
		"-board", "qnap-ts433", "-manage-network", "-secret-console", "/dev/console"}
	for _, tt := range []struct {
		prov provisioning
		want []string
	}{
		{provisioning{}, base},
		{provisioning{passwordFile: "/boot/rknas/default-password", hostname: "rknas-abc123"},
			append(append([]string{}, base...), "-default-password-file", "/boot/rknas/default-password", "-default-hostname", "rknas-abc123")},
	} {
		if got := authdArgs("qnap-ts433", tt.prov); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("authdArgs(%+v) = %q, want %q", tt.prov, got, tt.want)
		}
	}
}

// TestBoardParts checks the boot check looks for what each profile says
// must come up: always the network, the eMMC where there is one, and the
// button of the kind the board has.
func TestBoardParts(t *testing.T) {
	for name, want := range map[string]string{
		"qnap-ts433":           "network eMMC button",
		"hardkernel-odroid-m1": "network eMMC",
		"qemu-virt":            "network eMMC button",
		"none":                 "network",
	} {
		p, err := board.ByName(name)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, pt := range boardParts(p) {
			got = append(got, pt.name)
		}
		if strings.Join(got, " ") != want {
			t.Errorf("%s: checks %v, want %s", name, got, want)
		}
	}
}
