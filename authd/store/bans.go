package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// MaxBansPerKind bounds the bans kept across restarts for each kind. When
// it is reached, bans already over go first, then the one ending soonest.
const MaxBansPerKind = 2048

// The kinds of ban.
const (
	BanClient  = "client"  // a client address (IPv6 from beyond a router: its /64)
	BanAccount = "account" // an account, whatever the address
)

// Ban is a throttling ban kept across restarts: a client address or an
// account refused until Until for failed attempts.
type Ban struct {
	Kind  string    `json:"kind"` // BanClient or BanAccount
	Key   string    `json:"key"`  // the address (IPv6 from beyond a router: its /64) or the login name
	Until time.Time `json:"until"`
	// Offences is how many bans in a row the key has earned.
	Offences int       `json:"offences"`
	Since    time.Time `json:"since"`
}

// banRecordLen is a ban's value: until, since (Unix nanoseconds) and
// offences, big-endian, so the bounding scan decodes nothing.
const banRecordLen = 24

func encodeBan(b Ban) []byte {
	v := make([]byte, banRecordLen)
	binary.BigEndian.PutUint64(v[0:], uint64(b.Until.UnixNano()))
	binary.BigEndian.PutUint64(v[8:], uint64(b.Since.UnixNano()))
	binary.BigEndian.PutUint64(v[16:], uint64(b.Offences))
	return v
}

func decodeBan(kind string, k, v []byte) (Ban, error) {
	if len(v) != banRecordLen {
		return Ban{}, fmt.Errorf("store: ban %s/%s: %d bytes, want %d", kind, k, len(v), banRecordLen)
	}
	return Ban{
		Kind: kind, Key: string(k),
		Until:    time.Unix(0, int64(binary.BigEndian.Uint64(v[0:]))),
		Since:    time.Unix(0, int64(binary.BigEndian.Uint64(v[8:]))),
		Offences: int(binary.BigEndian.Uint64(v[16:])),
	}, nil
}

func banUntil(v []byte) int64 {
	if len(v) != banRecordLen {
		return 0 // damaged: the first to go
	}
	return int64(binary.BigEndian.Uint64(v))
}

// PutBan keeps b, replacing the key's earlier ban, within MaxBansPerKind;
// now decides which kept bans are over.
func (t *Tx) PutBan(b Ban, now time.Time) error {
	if b.Kind == "" || b.Key == "" || len(b.Key) > 256 {
		return fmt.Errorf("store: ban: kind %q and key %q: both required, key at most 256 bytes", b.Kind, b.Key)
	}
	kinds := t.tx.Bucket(bucketBans)
	bk, err := kinds.CreateBucketIfNotExists([]byte(b.Kind))
	if err != nil {
		return fmt.Errorf("store: ban bucket %s: %w", b.Kind, err)
	}
	key := []byte(b.Key)
	if bk.Get(key) == nil {
		if err := makeRoom(bk, now.UnixNano()); err != nil {
			return fmt.Errorf("store: bound bans of %s: %w", b.Kind, err)
		}
	}
	if err := bk.Put(key, encodeBan(b)); err != nil {
		return fmt.Errorf("store: put ban %s/%s: %w", b.Kind, b.Key, err)
	}
	return nil
}

// makeRoom drops the bans that are over and, if the bucket is still full,
// the one ending soonest.
func makeRoom(bk *bolt.Bucket, now int64) error {
	var n int
	var over [][]byte
	var soonest []byte
	soonestUntil := int64(0)
	if err := bk.ForEach(func(k, v []byte) error {
		n++
		u := banUntil(v)
		if u <= now {
			over = append(over, append([]byte(nil), k...))
		} else if soonest == nil || u < soonestUntil {
			soonest, soonestUntil = append([]byte(nil), k...), u
		}
		return nil
	}); err != nil {
		return err
	}
	for _, k := range over {
		if err := bk.Delete(k); err != nil {
			return err
		}
		n--
	}
	if n >= MaxBansPerKind && soonest != nil {
		return bk.Delete(soonest)
	}
	return nil
}

// DeleteBan forgets the ban of kind and key; a missing one is not an error.
func (t *Tx) DeleteBan(kind, key string) error {
	bk := t.tx.Bucket(bucketBans).Bucket([]byte(kind))
	if bk == nil {
		return nil
	}
	if err := bk.Delete([]byte(key)); err != nil {
		return fmt.Errorf("store: delete ban %s/%s: %w", kind, key, err)
	}
	return nil
}

// Bans returns the kept bans of every kind that are not over at now. A
// damaged record is named in the error and the others are still returned.
func (t *Tx) Bans(now time.Time) ([]Ban, error) {
	var out []Ban
	var errs []error
	err := t.tx.Bucket(bucketBans).ForEachBucket(func(kind []byte) error {
		return t.tx.Bucket(bucketBans).Bucket(kind).ForEach(func(k, v []byte) error {
			b, err := decodeBan(string(kind), k, v)
			if err != nil {
				errs = append(errs, err) // one damaged record costs only itself
				return nil
			}
			if b.Until.After(now) {
				out = append(out, b)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, errors.Join(errs...)
}
