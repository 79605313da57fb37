package netconf

import (
	"context"
	"time"
)

// Applier puts a configuration on the system. The real one is NetlinkApplier;
// netconftest has a fake.
type Applier interface {
	// Apply makes the system match c, which has been validated. It returns
	// once the links, static addresses, routes, hostname and resolv.conf are
	// in place; DHCP leases arrive later in the background and are renewed
	// until a later Apply changes that interface or Close is called.
	Apply(ctx context.Context, c Config) error
	// Status reports the interfaces of the configuration last applied.
	Status(ctx context.Context) ([]InterfaceStatus, error)
	// Close stops the DHCP clients. It leaves the addresses in place.
	Close() error
}

// InterfaceStatus is what an interface looks like now.
type InterfaceStatus struct {
	Name string `json:"name"`
	Mode Mode   `json:"mode"`
	// Present is false when the configuration names a link the system
	// does not have.
	Present bool   `json:"present"`
	Up      bool   `json:"up"`
	MAC     string `json:"mac,omitempty"`
	// Addresses are those on the link now, with their prefix length,
	// link-local ones included.
	Addresses []string `json:"addresses"`
	// Lease is set in ModeDHCP.
	Lease *LeaseInfo `json:"lease,omitempty"`
}

// Lease states.
const (
	LeaseAcquiring = "acquiring"
	LeaseBound     = "bound"
)

// LeaseInfo describes the DHCPv4 lease of an interface.
type LeaseInfo struct {
	// State is LeaseAcquiring until a server answered, then LeaseBound.
	State   string    `json:"state"`
	Address string    `json:"address,omitempty"`
	Router  string    `json:"router,omitempty"`
	DNS     []string  `json:"dns,omitempty"`
	Server  string    `json:"server,omitempty"`
	Renewed time.Time `json:"renewed,omitzero"`
	Renew   time.Time `json:"renew,omitzero"`
	Expires time.Time `json:"expires,omitzero"`
	// LastError is the last failure of the DHCP client, if any.
	LastError string `json:"last_error,omitempty"`
}
