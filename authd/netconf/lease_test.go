//go:build linux

package netconf

import (
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// TestLeaseTimes: the server's lease and renewal times are kept, except a
// lease shorter than a minute (0 s made the device renew thousands of
// times a second) and a renewal before 10 s or past the lease.
func TestLeaseTimes(t *testing.T) {
	for _, tt := range []struct {
		name                    string
		lease, renew            time.Duration // 0: not sent
		wantLease, wantRenewing time.Duration
	}{
		{"as the server says", 2 * time.Hour, 30 * time.Minute, 2 * time.Hour, 30 * time.Minute},
		{"no renewal time: half the lease", 2 * time.Hour, 0, 2 * time.Hour, time.Hour},
		{"nothing said: an hour", 0, 0, time.Hour, 30 * time.Minute},
		{"a lease of 1 s", time.Second, 0, time.Minute, 30 * time.Second},
		{"a renewal of 1 s", time.Hour, time.Second, time.Hour, 10 * time.Second},
		{"a renewal past the lease", 10 * time.Minute, time.Hour, 10 * time.Minute, 10 * time.Minute},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var mods []dhcpv4.Modifier
			if tt.lease > 0 {
				mods = append(mods, dhcpv4.WithLeaseTime(uint32(tt.lease/time.Second)))
			}
			if tt.renew > 0 {
				mods = append(mods, dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(tt.renew)))
			}
			ack, err := dhcpv4.New(mods...)
			if err != nil {
				t.Fatal(err)
			}
			lease, renew := leaseTimes(ack, 10*time.Second)
			if lease != tt.wantLease || renew != tt.wantRenewing {
				t.Errorf("lease %v, renew after %v; want %v and %v", lease, renew, tt.wantLease, tt.wantRenewing)
			}
		})
	}
	// A lease of 0 s, sent as such.
	ack, err := dhcpv4.New(dhcpv4.WithOption(dhcpv4.OptIPAddressLeaseTime(0)), dhcpv4.WithOption(dhcpv4.OptRenewTimeValue(0)))
	if err != nil {
		t.Fatal(err)
	}
	if lease, renew := leaseTimes(ack, 10*time.Second); lease != time.Minute || renew != 10*time.Second {
		t.Errorf("a lease of 0 s: lease %v, renew after %v; want 1m0s and 10s", lease, renew)
	}
}
