//go:build vmtest && soak

package vmtest

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rknas/firmware/initramfs/vmrig"
)

// TestSoakPowerCuts is make soak's power-cut row: on one state disk, it
// changes the admin's password and the network (a hostname, confirmed),
// holds RESET for 5 s and cuts the power (QEMU killed): every other time at
// a random instant from just before the release to 0.6 s after it, and in
// between within 0.2 s of the recovery's start; RKNAS_SOAK_CUTS times
// (default 20). Every boot after a cut must serve, and must have finished a
// reset that had begun, both halves (the default password, the network back
// to DHCP under the device's own name, every reset begun recorded as
// completed), or kept everything when none had begun. The state partition
// is mounted by uinit after each cut with no repair; e2fsck finds it clean
// at the end. It prints its table row as a "soak-row:" JSON line.
func TestSoakPowerCuts(t *testing.T) {
	cuts := 20
	if v, err := strconv.Atoi(os.Getenv("RKNAS_SOAK_CUTS")); err == nil && v > 0 {
		cuts = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cuts)*2*time.Minute+5*time.Minute)
	defer cancel()
	disk, label := vmDisk(t, "")
	def := label.password
	const password = "owner passphrase 1"
	v := newVM(t, "cut0", disk, kernelBoot)
	v.boot(ctx)
	current := def
	var began, finishedAtBoot, beforeCut, kept, lost int
	start := time.Now()
	for i := 1; i <= cuts; i++ {
		// The admin's password and the network, away from a reset's.
		c := newClient(t, v.port, nil)
		if out := c.must(200, "POST", "/api/v1/login", login("admin", current)); out["status"] == "password_change_required" {
			c.must(200, "PUT", "/api/v1/me/password", map[string]string{"current_password": current, "new_password": password})
		}
		current = password
		c.must(200, "POST", "/api/v1/me/step-up", map[string]string{"password": password})
		cfg := c.must(200, "GET", "/api/v1/settings/network", nil)["config"].(map[string]any)
		iface := cfg["interfaces"].([]any)[0].(map[string]any)["name"].(string)
		host := fmt.Sprintf("cut%d", i)
		c.call("PUT", "/api/v1/settings/network", map[string]any{"hostname": host, "dns": []string{"10.0.2.3"},
			"interfaces": []any{map[string]any{"name": iface, "mode": "dhcp"}}})
		if !c.reachable(60 * time.Second) {
			t.Fatalf("cut %d: the API did not come back after the network change", i)
		}
		pending, _ := c.must(200, "GET", "/api/v1/settings/network", nil)["status"].(map[string]any)["pending"].(map[string]any)
		if pending == nil {
			t.Fatalf("cut %d: no pending network change", i)
		}
		c.must(200, "POST", "/api/v1/settings/network/confirm", map[string]any{"id": pending["id"]})

		// RESET held 5 s; the power cut at a random instant around the
		// release, when the recovery starts.
		from := int64(0)
		if fi, err := os.Stat(v.console.Path); err == nil {
			from = fi.Size()
		}
		round := &vmrig.Console{Path: v.console.Path}
		round.Mark()
		go vmrig.Ctl(ctx, filepath.Join(v.run, "ctl.sock"), "hold 5")
		if i%2 == 1 {
			// Around the release: the threshold line comes at 4 s, the
			// release at 5 s, and the recovery right after it.
			if _, err := round.Wait(ctx, "button: held for the reset threshold"); err != nil {
				t.Fatalf("cut %d: %v", i, err)
			}
			time.Sleep(900*time.Millisecond + time.Duration(rand.IntN(700))*time.Millisecond)
		} else {
			// Inside the recovery, which is durable within a fraction of
			// a second of its start.
			if _, err := round.Wait(ctx, "recovery started"); err != nil {
				t.Fatalf("cut %d: %v", i, err)
			}
			time.Sleep(time.Duration(rand.IntN(200)) * time.Millisecond)
		}
		cutPower(t, v)
		log, _ := os.ReadFile(v.console.Path)
		tail := string(log[min(from, int64(len(log))):]) // this round's lines
		begun := strings.Contains(tail, "recovery started")

		v = newVM(t, fmt.Sprintf("cut%d", i), disk, kernelBoot)
		v.boot(ctx)
		boot, _ := os.ReadFile(v.console.Path)
		atBoot := strings.Contains(string(boot), "an interrupted physical reset was finished")
		a := newClient(t, v.port, nil)
		st, out, err := a.call("POST", "/api/v1/login", login("admin", def))
		resetNow := err == nil && st == 200 && out["status"] == "password_change_required"
		switch {
		case begun || resetNow:
			// A reset begun (the console says so, or the cut came before
			// the line reached it) must be whole after the boot.
			began++
			if atBoot {
				finishedAtBoot++
			} else {
				beforeCut++
			}
			if !resetNow {
				t.Errorf("cut %d: the reset had begun (recovery started) and the admin does not take the default password: %d %v %v", i, st, out, err)
				lost++
				continue
			}
			a.must(200, "PUT", "/api/v1/me/password", map[string]string{"current_password": def, "new_password": password})
			if cfg := a.must(200, "GET", "/api/v1/settings/network", nil)["config"].(map[string]any); cfg["hostname"] != label.hostname {
				t.Errorf("cut %d: the admin half of the reset happened, the network half did not: hostname %v", i, cfg["hostname"])
				lost++
			}
		default:
			kept++
			if o := a.must(200, "POST", "/api/v1/login", login("admin", password)); o["status"] != "ok" {
				t.Errorf("cut %d: no reset had begun and the admin's password changed: %v", i, o)
				lost++
				continue
			}
			if cfg := a.must(200, "GET", "/api/v1/settings/network", nil)["config"].(map[string]any); cfg["hostname"] != host {
				t.Errorf("cut %d: no reset had begun and the confirmed network change is gone: hostname %v", i, cfg["hostname"])
				lost++
			}
		}
		audit := a.must(200, "GET", "/api/v1/audit?limit=1000", nil)
		raw, _ := json.Marshal(audit)
		if b, c := strings.Count(string(raw), `"event":"physical_reset"`), strings.Count(string(raw), `"event":"physical_reset_completed"`); b != c {
			t.Errorf("cut %d: %d resets begun, %d completed", i, b, c)
			lost++
		}
		current = password
	}
	v.script("stop")
	clean := fsckState(t, disk)
	if !clean {
		lost++
	}
	row := map[string]any{
		"what": "power cuts in the VM",
		"did": fmt.Sprintf("%d cuts (QEMU killed): half at random from 0.1 s before a RESET's release to 0.6 s after it, half within 0.2 s of the recovery's start, after an admin password and a network change, on one state disk, in %.0f s",
			cuts, time.Since(start).Seconds()),
		"found": fmt.Sprintf("every boot served; %d resets had begun: %d finished before the cut, %d finished at the next boot, all with both halves; %d cuts came before any reset and kept everything; state partition clean (e2fsck -fn): %v",
			began, beforeCut, finishedAtBoot, kept, clean),
		"lost": lost,
	}
	b, _ := json.Marshal(row)
	fmt.Printf("soak-row: %s\n", b)
}

// fsckState checks the disk's state partition (its second) read-only.
func fsckState(t *testing.T, disk string) bool {
	t.Helper()
	raw, err := exec.Command("sfdisk", "-J", disk).Output()
	if err != nil {
		t.Errorf("sfdisk -J: %v", err)
		return false
	}
	var table struct {
		PartitionTable struct {
			SectorSize int `json:"sectorsize"`
			Partitions []struct {
				Start, Size int64
			}
		} `json:"partitiontable"`
	}
	if err := json.Unmarshal(raw, &table); err != nil || len(table.PartitionTable.Partitions) < 2 {
		t.Errorf("the disk's partition table: %v\n%s", err, raw)
		return false
	}
	p, ss := table.PartitionTable.Partitions[1], int64(max(table.PartitionTable.SectorSize, 512))
	out, err := exec.Command("losetup", "-f", "--show", "-o", strconv.FormatInt(p.Start*ss, 10), "--sizelimit", strconv.FormatInt(p.Size*ss, 10), disk).Output()
	if err != nil {
		t.Errorf("losetup: %v", err)
		return false
	}
	loop := strings.TrimSpace(string(out))
	defer exec.Command("losetup", "-d", loop).Run()
	fsck, err := exec.Command("e2fsck", "-fn", loop).CombinedOutput()
	if err != nil {
		t.Errorf("e2fsck -fn on the state partition after the cuts: %v\n%s", err, fsck)
		return false
	}
	return true
}
