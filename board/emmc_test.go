package board

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
)

func sysBlock(types map[string]string) fstest.MapFS {
	m := fstest.MapFS{}
	for dev, typ := range types {
		m["sys/block/"+dev+"/device/type"] = &fstest.MapFile{Data: []byte(typ + "\n")}
	}
	return m
}

func TestEMMCFind(t *testing.T) {
	tests := []struct {
		name  string
		alias int
		fsys  fstest.MapFS
		want  string
		err   string
	}{
		{"alias is the eMMC", 1, sysBlock(map[string]string{"mmcblk0": "SD", "mmcblk1": "MMC", "mmcblk1boot0": "MMC"}), "/dev/mmcblk1", ""},
		{"alias moved", 0, sysBlock(map[string]string{"mmcblk0": "SD", "mmcblk2": "MMC"}), "/dev/mmcblk2", ""},
		{"boot partitions are not disks", -1, sysBlock(map[string]string{"mmcblk3boot0": "MMC", "mmcblk0": "SD"}), "", "mmcblk0 is not MMC"},
		{"no mmc at all", 0, fstest.MapFS{"sys/block/vda/device/type": {Data: []byte("x")}}, "", "no mmcblk devices"},
		{"no sysfs", 0, fstest.MapFS{}, "", "find eMMC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := EMMC{Alias: tt.alias}.Find(tt.fsys)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Find = %q, %v; want error %q", got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Find = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	_, err := EMMC{Alias: 0}.Find(sysBlock(map[string]string{"mmcblk0": "SD"}))
	if !errors.Is(err, ErrNoEMMC) {
		t.Errorf("error %v is not ErrNoEMMC", err)
	}
}
