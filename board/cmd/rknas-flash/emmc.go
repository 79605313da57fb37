package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rknas/firmware/board/diskimage"
	"github.com/rknas/firmware/board/flash"
	"github.com/rknas/firmware/board/flash/rkdev"
	"github.com/rknas/firmware/board/provision"
)

func runEMMC(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlags("emmc-usb", stderr)
	var c common
	c.register(fs)
	loader := fs.String("loader", "", "the rkbin loader for the board's SoC, e.g. rk356x_spl_loader_v1.23.114.bin (docs/boards.md)")
	tool := fs.String("rkdeveloptool", "rkdeveloptool", "the rkdeveloptool program")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return &exitError{exitUsage, err}
	}
	if fs.NArg() != 1 {
		return usageErr("emmc-usb: want IMAGE, got %d arguments", fs.NArg())
	}
	if *loader == "" {
		return usageErr("emmc-usb: --loader is required (the rkbin loader file for the board's SoC)")
	}
	p, err := c.personal()
	if err != nil {
		return err
	}
	img, err := flash.OpenImage(fs.Arg(0))
	if err != nil {
		return err
	}
	defer img.Close()
	if !c.yes {
		fmt.Fprintf(stderr, "About to ERASE the eMMC of the %s board on USB and write rknas %s for %s.\nType yes to go on: ",
			img.Manifest.SoC, img.Manifest.Version, img.Manifest.Model)
		var answer string
		if _, err := fmt.Fscanln(stdin, &answer); err != nil || answer != "yes" {
			return flash.ErrNotConfirmed
		}
	}
	res, err := rkdev.RKDev{Path: *tool, Log: stderr}.WriteEMMC(ctx, img, p, *loader)
	if err != nil {
		return err
	}
	return report(res, img, p, c.label, stdout)
}

func runInfo(args []string, stdout io.Writer) error {
	if len(args) != 1 {
		return usageErr("info: want one IMAGE or DEVICE")
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	img, err := flash.ReadImage(f, size)
	if err != nil {
		return fmt.Errorf("%s: %w", args[0], err)
	}
	m := img.Manifest
	fmt.Fprintf(stdout, "board:       %s (%s)\nversion:     %s\nkernel:      %s\nbootloader:  %s\nbuilt:       %s\n",
		m.Board, m.Model, m.Version, m.Kernel, m.Bootloader.Source, m.Built)
	fmt.Fprintf(stdout, "disk:        %s\n", img.Table.DiskID)
	for _, p := range img.Table.Partitions {
		fmt.Fprintf(stdout, "partition %d: %s, sectors %d-%d (%d MiB)\n", p.Number, p.Name, p.First, p.Last, p.Sectors()*diskimage.SectorSize>>20)
	}
	host := "(not provisioned)"
	if b, err := img.ReadBootFile(provision.HostnameFile); err == nil {
		if h, err := provision.Value(b); err == nil {
			host = h
		}
	}
	pw := "(not provisioned: authd makes one up at first start)"
	if b, err := img.ReadBootFile(provision.PasswordFile); err == nil {
		if _, err := provision.Value(b); err == nil {
			pw = "provisioned (see the label)"
		}
	}
	fmt.Fprintf(stdout, "hostname:    %s\npassword:    %s\n", host, strings.TrimSpace(pw))
	return nil
}
