// Package rkdev writes a firmware image to a Rockchip board's eMMC over USB
// with rkdeveloptool, while the SoC is in Maskrom (or Loader) mode. It is
// apart from package flash so that the firmware's own programs, which use
// flash, link no code that runs other programs.
package rkdev

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/rknas/firmware/board/flash"
)

// RKDev drives Rockchip's rkdeveloptool, which writes a board's eMMC over
// USB while the SoC is in Maskrom (or Loader) mode.
type RKDev struct {
	// Path is the rkdeveloptool program; "rkdeveloptool" from PATH when empty.
	Path string
	// Log receives a line per step.
	Log io.Writer
}

// USBDevice is one line of `rkdeveloptool ld`.
type USBDevice struct {
	DevNo    int
	VID, PID uint16
	Location string
	Mode     string // "Maskrom", "Loader" or "Unknown"
}

var ldLine = regexp.MustCompile(`DevNo=(\d+)\s+Vid=0x([0-9a-fA-F]+),Pid=0x([0-9a-fA-F]+),LocationID=(\w+)\s+(\w+)`)

// ParseList reads the output of `rkdeveloptool ld`.
func ParseList(out string) ([]USBDevice, error) {
	var devs []USBDevice
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		m := ldLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		vid, err1 := strconv.ParseUint(m[2], 16, 16)
		pid, err2 := strconv.ParseUint(m[3], 16, 16)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("rkdev: rkdeveloptool ld: bad line %q", sc.Text())
		}
		devs = append(devs, USBDevice{DevNo: n, VID: uint16(vid), PID: uint16(pid), Location: m[4], Mode: m[5]})
	}
	return devs, nil
}

// socOfPID maps the USB product ID a Rockchip SoC shows in Maskrom mode
// (vendor 0x2207) to the SoC names of the board profiles that share it.
var socOfPID = map[uint16][]string{
	0x330c: {"rk3399"},
	0x350a: {"rk3566", "rk3568"},
	0x350b: {"rk3588", "rk3588s"},
}

// socOfLoaderChip maps the chip tag in a loader file's header to SoCs.
var socOfLoaderChip = map[string][]string{
	"330C": {"rk3399"},
	"3566": {"rk3566", "rk3568"},
	"3568": {"rk3566", "rk3568"},
	"3588": {"rk3588", "rk3588s"},
}

// LoaderChip reads the chip tag of an rkbin loader file (the usbplug and
// DDR init that `rkdeveloptool db` downloads): the header starts with
// "BOOT" or "LDR " and holds the chip at byte 21, four ASCII characters
// stored last first ("330C" for the RK3399, "3568", "3588").
func LoaderChip(b []byte) (string, error) {
	if len(b) < 25 {
		return "", errors.New("rkdev: loader: shorter than its header")
	}
	if tag := string(b[:4]); tag != "BOOT" && tag != "LDR " {
		return "", fmt.Errorf("rkdev: loader: header starts %q, not \"BOOT\" or \"LDR \": not an rkbin loader", b[:4])
	}
	v := binary.LittleEndian.Uint32(b[21:25])
	chip := string([]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	for _, c := range chip {
		if c < '0' || c > 'Z' {
			return "", fmt.Errorf("rkdev: loader: chip tag %q is not readable", chip)
		}
	}
	return chip, nil
}

func fits(socs []string, soc string) bool {
	for _, s := range socs {
		if s == soc {
			return true
		}
	}
	return false
}

func (r RKDev) run(ctx context.Context, args ...string) (string, error) {
	path := r.Path
	if path == "" {
		path = "rkdeveloptool"
	}
	cmd := exec.CommandContext(ctx, path, args...)
	out, err := cmd.CombinedOutput()
	if errors.Is(err, exec.ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("rkdev: rkdeveloptool is not installed (Debian: apt-get install rkdeveloptool): %w", err)
	}
	s := string(out)
	if err == nil && (strings.Contains(s, "failed") || strings.Contains(s, "Failed") || strings.Contains(s, "not support")) {
		err = errors.New("it reported a failure")
	}
	if err != nil {
		return s, fmt.Errorf("rkdev: rkdeveloptool %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(s))
	}
	return s, nil
}

func (r RKDev) logf(format string, a ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, format+"\n", a...)
	}
}

// Errors of WriteEMMC.
var (
	ErrNoBoard    = errors.New("no Rockchip board in Maskrom or Loader mode on USB")
	ErrWrongSoC   = errors.New("the board, the loader and the image are not for the same SoC")
	ErrTooLarge   = errors.New("the image does not fit on the board's eMMC")
	ErrManyBoards = errors.New("more than one Rockchip board on USB")
)

var flashSectors = regexp.MustCompile(`Flash Size:\s*(\d+)\s*Sectors`)
var flashMB = regexp.MustCompile(`Flash Size:\s*(\d+)\s*MB`)

// WriteEMMC writes img, personalised with p, to the eMMC of the one board on
// USB: it checks the board's SoC (USB product ID), the loader's chip and the
// image's SoC agree, downloads the loader in Maskrom mode (db), reads the
// eMMC's size (rfi), writes the plan's pieces in its order (wl: partitions,
// boot chain, backup GPT, GPT last), reads each back (rl) and compares, and
// resets the board (rd).
func (r RKDev) WriteEMMC(ctx context.Context, img *flash.Image, p flash.Personal, loader string) (*flash.Result, error) {
	out, err := r.run(ctx, "ld")
	if err != nil && !strings.Contains(out, "not found") {
		return nil, err
	}
	devs, err := ParseList(out)
	if err != nil {
		return nil, err
	}
	var rk []USBDevice
	for _, d := range devs {
		if d.VID == 0x2207 {
			rk = append(rk, d)
		}
	}
	switch {
	case len(rk) == 0:
		return nil, fmt.Errorf("rkdev: %w (rkdeveloptool ld: %s); put the board in Maskrom mode (docs/boards.md) and connect its OTG port", ErrNoBoard, strings.TrimSpace(out))
	case len(rk) > 1:
		return nil, fmt.Errorf("rkdev: %w: unplug all but one", ErrManyBoards)
	}
	dev := rk[0]
	soc := img.Manifest.SoC
	if socs, ok := socOfPID[dev.PID]; !ok || !fits(socs, soc) {
		return nil, fmt.Errorf("rkdev: %w: the board on USB has product ID 0x%04x (%s), the image is for %s (%s)",
			ErrWrongSoC, dev.PID, strings.Join(socOfPID[dev.PID], "/"), soc, img.Manifest.Board)
	}
	lb, err := os.ReadFile(loader)
	if err != nil {
		return nil, fmt.Errorf("rkdev: loader: %w", err)
	}
	chip, err := LoaderChip(lb)
	if err != nil {
		return nil, err
	}
	if !fits(socOfLoaderChip[chip], soc) {
		return nil, fmt.Errorf("rkdev: %w: the loader %s is for chip %s, the image for %s", ErrWrongSoC, filepath.Base(loader), chip, soc)
	}
	r.logf("board on USB: product 0x%04x (%s) in %s mode; loader %s (chip %s)", dev.PID, soc, dev.Mode, filepath.Base(loader), chip)
	if dev.Mode == "Maskrom" {
		if _, err := r.run(ctx, "db", loader); err != nil {
			return nil, err
		}
		time.Sleep(time.Second) // the loader starts and re-enumerates
	}
	out, err = r.run(ctx, "rfi")
	if err != nil {
		return nil, err
	}
	var sectors int64
	if m := flashSectors.FindStringSubmatch(out); m != nil {
		sectors, _ = strconv.ParseInt(m[1], 10, 64)
	} else if m := flashMB.FindStringSubmatch(out); m != nil {
		mb, _ := strconv.ParseInt(m[1], 10, 64)
		sectors = mb * 2048
	}
	if sectors == 0 {
		return nil, fmt.Errorf("rkdev: rkdeveloptool rfi did not say the eMMC's size: %s", strings.TrimSpace(out))
	}
	if sectors*512 < img.Size {
		return nil, fmt.Errorf("rkdev: %w: eMMC %d MiB, image %d MiB", ErrTooLarge, sectors/2048, img.Size>>20)
	}
	pl, err := img.Plan(p, sectors*512)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "rknas-emmc-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	res := &flash.Result{Target: "eMMC over USB", Description: fmt.Sprintf("eMMC of the %s board on USB, %d MiB", soc, sectors/2048), Table: pl.Table}
	start := time.Now()
	for i, pc := range pl.Pieces {
		data, err := pl.Bytes(img, pc)
		if err != nil {
			return nil, err
		}
		f := filepath.Join(dir, fmt.Sprintf("piece%d.bin", i))
		if err := os.WriteFile(f, data, 0o600); err != nil {
			return nil, err
		}
		r.logf("%s: %d KiB at sector %d", pc.What, pc.Len/1024, pc.Off/512)
		if _, err := r.run(ctx, "wl", strconv.FormatInt(pc.Off/512, 10), f); err != nil {
			return nil, err
		}
		if pc.Wipe {
			continue
		}
		back := f + ".read"
		if _, err := r.run(ctx, "rl", strconv.FormatInt(pc.Off/512, 10), strconv.FormatInt(pc.Len/512, 10), back); err != nil {
			return nil, err
		}
		got, err := os.ReadFile(back)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(got, data) {
			return nil, fmt.Errorf("rkdev: %w: %s read back differs", flash.ErrVerify, pc.What)
		}
		res.Written += pc.Len
	}
	res.Write = time.Since(start)
	r.logf("written, read back and compared: %d bytes in %.1f s", res.Written, res.Write.Seconds())
	if _, err := r.run(ctx, "rd"); err != nil {
		return res, fmt.Errorf("rkdev: the eMMC is written and verified, but resetting the board failed (power-cycle it): %w", err)
	}
	return res, nil
}
