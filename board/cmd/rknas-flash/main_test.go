package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rknas/firmware/board/diskimage"
	"github.com/rknas/firmware/board/flash"
)

// TestConfirmShowsTheBoards: the question names the board the medium holds
// firmware for, when it holds one, beside the image's, and says what an
// update keeps and an erase loses.
func TestConfirmShowsTheBoards(t *testing.T) {
	target := &flash.Target{Path: "/dev/sdb", Name: "sdb", Size: 32 << 30, Removable: true, Transport: "usb",
		Partitions: []string{"sdb1", "sdb2"}}
	img := &flash.Image{Manifest: &diskimage.Manifest{Format: 1, Board: "qnap-ts433", Model: "QNAP TS-433", SoC: "rk3568",
		Version: "1.2.0"}}
	holds := &diskimage.Manifest{Format: 1, Board: "nanopi-r5s", Model: "FriendlyElec NanoPi R5S", SoC: "rk3568", Version: "1.1.0"}
	for _, tc := range []struct {
		name     string
		holds    *diskimage.Manifest
		update   bool
		typed    string
		want     []string
		notWant  []string
		accepted bool
	}{
		{name: "update", holds: holds, update: true, typed: "sdb\n", accepted: true,
			want: []string{"UPDATE the firmware on sdb", "from rknas 1.1.0 for FriendlyElec NanoPi R5S (nanopi-r5s)",
				"to rknas 1.2.0 for QNAP TS-433 (qnap-ts433)", "state, password and hostname stay", "Type sdb"},
			notWant: []string{"ERASE", "will be lost"}},
		{name: "erase a medium with firmware", holds: holds, typed: "sdb\n", accepted: true,
			want: []string{"ERASE sdb", "write rknas 1.2.0 for QNAP TS-433 (qnap-ts433)",
				"It holds rknas 1.1.0 for FriendlyElec NanoPi R5S (nanopi-r5s) now", "sdb1, sdb2 will be lost"}},
		{name: "erase another disk", typed: "sdb\n", accepted: true,
			want:    []string{"ERASE sdb", "sdb1, sdb2 will be lost"},
			notWant: []string{"It holds"}},
		{name: "another name typed", holds: holds, update: true, typed: "sdc\n",
			want: []string{"nanopi-r5s", "qnap-ts433"}},
		{name: "no answer", holds: holds, update: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			err := confirm(target, img, tc.holds, tc.update, strings.NewReader(tc.typed), &out)
			if tc.accepted != (err == nil) || (err != nil && !errors.Is(err, flash.ErrNotConfirmed)) {
				t.Errorf("typed %q: %v, want accepted %v (else ErrNotConfirmed)", tc.typed, err, tc.accepted)
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("the question does not say %q:\n%s", w, out.String())
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out.String(), w) {
					t.Errorf("the question says %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// TestExitCodes: refusals, the board mismatch among them, exit with 3.
func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{nil, exitOK},
		{fmt.Errorf("flash: update: %w: the medium was made for a and the image is for b", flash.ErrOtherBoard), exitRefused},
		{fmt.Errorf("flash: x: %w", flash.ErrBadImage), exitRefused},
		{&flash.Refusal{Reasons: []string{"it is mounted"}}, exitRefused},
		{fmt.Errorf("%w (typed %q)", flash.ErrNotConfirmed, "x"), exitNotSure},
		{usageErr("bad"), exitUsage},
		{errors.New("write failed"), exitFailed},
	} {
		if got := exitCode(tc.err, &bytes.Buffer{}); got != tc.want {
			t.Errorf("exit code for %v: %d, want %d", tc.err, got, tc.want)
		}
	}
}

// TestAllowOtherBoardOnlyWithUpdate: the override means nothing to a full
// flash, so it is a usage error there, refused before anything is opened.
func TestAllowOtherBoardOnlyWithUpdate(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--allow-other-board", "/nonexistent/image.img", "/nonexistent/disk"}, "--allow-other-board goes with --update"},
		{[]string{"--update", "--allow-other-board", "/nonexistent/image.img", "/nonexistent/disk"}, "open image"},
	} {
		var stdout, stderr bytes.Buffer
		err := run(context.Background(), tc.args, strings.NewReader(""), &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}
