// Package store is authd's one crash-safe database: accounts, groups, trusted
// devices, the 2FA policy, the audit log and small settings, kept in a bbolt
// file in the state directory and changed only in transactions.
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime/debug"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Format is the value of the format key that marks a file as authd's.
const Format = "rknas-authd"

// SchemaVersion is the schema this build reads and writes. Opening a file
// with an older schema runs the migrations in order; a newer one is refused.
const SchemaVersion = 2

var (
	// ErrNotFound is returned when a record does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists is returned when creating a record whose key is taken.
	ErrExists = errors.New("already exists")
	// ErrCorrupt is returned when the database file cannot be read as a
	// database. authd stops rather than replace it.
	ErrCorrupt = errors.New("database file is corrupt")
	// ErrForeign is returned when the file is a database, but not authd's.
	ErrForeign = errors.New("file is not an authd database")
	// ErrTooNew is returned when the file was written by a newer authd.
	ErrTooNew = errors.New("database schema is newer than this authd")
	// ErrLocked is returned when another process holds the database.
	ErrLocked = errors.New("database is in use by another process")
)

var (
	bucketMeta    = []byte("meta")
	bucketUsers   = []byte("users")
	bucketGroups  = []byte("groups")
	bucketDevices = []byte("devices")
	// bucketAppPasswords holds the app passwords by their token's hash.
	bucketAppPasswords = []byte("app_passwords")
	bucketAudit        = []byte("audit")
	bucketKV           = []byte("kv")
	// bucketAuditFailures is the audit log's separate ring for failures,
	// which anyone who can reach the login page can cause.
	bucketAuditFailures = []byte("audit_failures")
	// bucketBans holds one nested bucket per kind of ban.
	bucketBans = []byte("bans")

	keyFormat = []byte("format")
	keySchema = []byte("schema")
	keyPolicy = []byte("policy_2fa")
)

// migrations[i] moves a database from schema i+1 to i+2. Each runs in the
// same transaction as the schema bump, so a power cut leaves either the old
// schema or the new one.
var migrations = []func(tx *bolt.Tx) error{migrateAuditRings}

// Store is an open database.
type Store struct {
	db    *bolt.DB
	path  string
	cache readCache
}

// Open opens or creates the database at path with mode 0600.
func Open(path string) (*Store, error) {
	fi, statErr := os.Stat(path)
	fresh := errors.Is(statErr, fs.ErrNotExist)
	if statErr != nil && !fresh {
		return nil, fmt.Errorf("store: stat %s: %w", path, statErr)
	}
	if !fresh {
		if !fi.Mode().IsRegular() {
			return nil, fmt.Errorf("store: open %s: not a regular file: %w", path, ErrForeign)
		}
		if fi.Size() == 0 {
			// bbolt would format an empty file. An empty file where a
			// database should be is a damaged state dir; say so.
			return nil, fmt.Errorf("store: open %s: file is empty: %w", path, ErrCorrupt)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			if err := os.Chmod(path, 0o600); err != nil {
				return nil, fmt.Errorf("store: chmod %s: %w", path, err)
			}
		}
	}
	db, err := openBolt(path)
	if err != nil {
		switch {
		case errors.Is(err, bolterrors.ErrTimeout):
			return nil, fmt.Errorf("store: open %s: %w", path, ErrLocked)
		case errors.Is(err, bolterrors.ErrInvalid), errors.Is(err, bolterrors.ErrChecksum),
			errors.Is(err, bolterrors.ErrVersionMismatch), errors.Is(err, bolterrors.ErrInvalidMapping):
			return nil, fmt.Errorf("store: open %s: %v: %w", path, err, ErrCorrupt)
		}
		return nil, fmt.Errorf("store: open %s: %v: %w", path, err, ErrCorrupt)
	}
	// Batched audit writes wait at most this long for company.
	db.MaxBatchDelay = 2 * time.Millisecond
	s := &Store{db: db, path: path}
	var size int64
	if !fresh {
		size = fi.Size()
	}
	if err := s.initChecked(fresh, size); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// openBolt opens the file with bbolt, turning the panic bbolt raises on
// some damaged files (a truncated one: "invalid freelist page"), and a
// fault on a page past the end of the file, into ErrCorrupt.
func openBolt(path string) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("store: open %s: the file is damaged (%v): %w", path, r, ErrCorrupt)
		}
	}()
	return bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
}

// initChecked is init with the same guard as openBolt: the first reads of
// a damaged file may fault too.
func (s *Store) initChecked(fresh bool, size int64) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("store: open %s: the file is damaged (%v): %w", s.path, r, ErrCorrupt)
		}
	}()
	return s.init(fresh, size)
}

// buckets are the buckets every database has once opened.
var buckets = [][]byte{bucketUsers, bucketGroups, bucketDevices, bucketAppPasswords, bucketAudit, bucketAuditFailures, bucketKV, bucketBans}

// init checks the database's length, format and schema, and migrates,
// upgrades or fills it in a write only when it needs it: a start writes
// nothing to a database that is up to date (an eMMC's wear, a slow board's
// start). size is the file's length as found (0 for a new file).
func (s *Store) init(fresh bool, size int64) error {
	if !fresh {
		current := false
		err := s.db.View(func(tx *bolt.Tx) error {
			// A file cut short (a copy that stopped, a damaged file
			// system) can still have whole first pages; what it lost is
			// somewhere past its end.
			if tx.Size() > size {
				return fmt.Errorf("store: open %s: the file is %d bytes, the database it holds %d: it was cut short: %w", s.path, size, tx.Size(), ErrCorrupt)
			}
			meta := tx.Bucket(bucketMeta)
			if meta == nil {
				return nil // the write below says what is wrong
			}
			version, err := s.schema(meta)
			if err != nil {
				return err
			}
			current = version == SchemaVersion
			for _, b := range buckets {
				current = current && tx.Bucket(b) != nil
			}
			return nil
		})
		if err != nil || current {
			return err
		}
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			if !fresh && hasBuckets(tx) {
				return fmt.Errorf("store: open %s: no %q bucket: %w", s.path, bucketMeta, ErrForeign)
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return fmt.Errorf("store: create meta: %w", err)
			}
			if err := meta.Put(keyFormat, []byte(Format)); err != nil {
				return err
			}
			if err := meta.Put(keySchema, u64(SchemaVersion)); err != nil {
				return err
			}
		}
		version, err := s.schema(meta)
		if err != nil {
			return err
		}
		for ; version < SchemaVersion; version++ {
			if err := migrations[version-1](tx); err != nil {
				return fmt.Errorf("store: migrate schema %d to %d: %w", version, version+1, err)
			}
		}
		if err := meta.Put(keySchema, u64(SchemaVersion)); err != nil {
			return err
		}
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return fmt.Errorf("store: create bucket %s: %w", b, err)
			}
		}
		return nil
	})
}

// schema checks the meta bucket's format and returns its schema version,
// refusing a file of another format or of a newer schema.
func (s *Store) schema(meta *bolt.Bucket) (uint64, error) {
	if f := meta.Get(keyFormat); !bytes.Equal(f, []byte(Format)) {
		return 0, fmt.Errorf("store: open %s: format %q: %w", s.path, f, ErrForeign)
	}
	raw := meta.Get(keySchema)
	if len(raw) != 8 {
		return 0, fmt.Errorf("store: open %s: schema version unreadable: %w", s.path, ErrCorrupt)
	}
	version := binary.BigEndian.Uint64(raw)
	if version > SchemaVersion {
		return 0, fmt.Errorf("store: open %s: schema %d, this authd reads up to %d: %w", s.path, version, SchemaVersion, ErrTooNew)
	}
	return version, nil
}

func hasBuckets(tx *bolt.Tx) bool {
	found := false
	_ = tx.ForEach(func([]byte, *bolt.Bucket) error { found = true; return nil })
	return found
}

// Path returns the file the store was opened from.
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Update runs fn in a read-write transaction. The changes are durable when
// Update returns nil; if fn returns an error nothing is changed.
func (s *Store) Update(fn func(tx *Tx) error) error {
	s.cache.beginWrite()
	defer s.cache.endWrite()
	return s.db.Update(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx}) })
}

// Batch runs fn in a read-write transaction that may be shared with other
// concurrent Batch calls, so many small writes (audit entries) cost one
// fsync. fn may run more than once and must only write through tx.
func (s *Store) Batch(fn func(tx *Tx) error) error {
	s.cache.beginWrite()
	defer s.cache.endWrite()
	return s.db.Batch(func(btx *bolt.Tx) error { return fn(&Tx{tx: btx}) })
}

// View runs fn in a read-only transaction. Its reads of accounts and of
// the policy may come from the store's cache of decoded records.
func (s *Store) View(fn func(tx *Tx) error) error {
	gen, cacheable := s.cache.generation()
	return s.db.View(func(btx *bolt.Tx) error {
		tx := &Tx{tx: btx}
		if cacheable {
			tx.cache, tx.gen = &s.cache, gen
		}
		return fn(tx)
	})
}

// User reads one account, from the cache without a transaction when it
// holds it (a session-checked request's case), else in a read-only one.
func (s *Store) User(name string) (User, error) {
	if gen, ok := s.cache.generation(); ok {
		if u, hit := s.cache.user(gen, name); hit {
			return u, nil
		}
	}
	var u User
	err := s.View(func(tx *Tx) (err error) { u, err = tx.User(name); return })
	return u, err
}

// Policy reads the 2FA policy as User reads an account.
func (s *Store) Policy() (Policy, error) {
	if gen, ok := s.cache.generation(); ok {
		if p, hit := s.cache.getPolicy(gen); hit {
			return p, nil
		}
	}
	var p Policy
	err := s.View(func(tx *Tx) (err error) { p, err = tx.Policy(); return })
	return p, err
}

// Tx is a transaction with typed accessors.
type Tx struct {
	tx *bolt.Tx
	// cache, in a read-only transaction begun with no write in progress,
	// holds decoded records of generation gen.
	cache *readCache
	gen   uint64
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

func (t *Tx) get(bucket, key []byte, v any) error {
	raw := t.tx.Bucket(bucket).Get(key)
	if raw == nil {
		return ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("store: decode %s/%s: %w", bucket, key, err)
	}
	return nil
}

func (t *Tx) put(bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("store: encode %s/%s: %w", bucket, key, err)
	}
	if err := t.tx.Bucket(bucket).Put(key, raw); err != nil {
		return fmt.Errorf("store: put %s/%s: %w", bucket, key, err)
	}
	return nil
}

func forEach[T any](t *Tx, bucket []byte, fn func(T) error) error {
	return t.tx.Bucket(bucket).ForEach(func(k, raw []byte) error {
		var v T
		if err := json.Unmarshal(raw, &v); err != nil {
			return fmt.Errorf("store: decode %s/%s: %w", bucket, k, err)
		}
		return fn(v)
	})
}

// User returns the account called name.
func (t *Tx) User(name string) (User, error) {
	if t.cache != nil {
		if u, ok := t.cache.user(t.gen, name); ok {
			return u, nil
		}
	}
	var u User
	err := t.get(bucketUsers, []byte(name), &u)
	if err == nil && t.cache != nil {
		t.cache.putUser(t.gen, name, u)
	}
	return u, err
}

// PutUser writes u, creating or replacing it.
func (t *Tx) PutUser(u User) error { return t.put(bucketUsers, []byte(u.Name), u) }

// CreateUser writes u and fails with ErrExists if the name is taken.
func (t *Tx) CreateUser(u User) error {
	if t.tx.Bucket(bucketUsers).Get([]byte(u.Name)) != nil {
		return ErrExists
	}
	return t.PutUser(u)
}

// DeleteUser removes the account, its trusted devices and its app
// passwords.
func (t *Tx) DeleteUser(name string) error {
	if t.tx.Bucket(bucketUsers).Get([]byte(name)) == nil {
		return ErrNotFound
	}
	if err := t.tx.Bucket(bucketUsers).Delete([]byte(name)); err != nil {
		return err
	}
	if _, err := t.DeleteDevices(name); err != nil {
		return err
	}
	_, err := t.DeleteAppPasswords(name)
	return err
}

// Users returns every account, ordered by name.
func (t *Tx) Users() ([]User, error) {
	var out []User
	err := forEach(t, bucketUsers, func(u User) error { out = append(out, u); return nil })
	return out, err
}

// Group returns the group called name.
func (t *Tx) Group(name string) (Group, error) {
	var g Group
	err := t.get(bucketGroups, []byte(name), &g)
	return g, err
}

// CreateGroup writes g and fails with ErrExists if the name is taken.
func (t *Tx) CreateGroup(g Group) error {
	if t.tx.Bucket(bucketGroups).Get([]byte(g.Name)) != nil {
		return ErrExists
	}
	return t.put(bucketGroups, []byte(g.Name), g)
}

// DeleteGroup removes the group (members keep their other groups).
func (t *Tx) DeleteGroup(name string) error {
	if t.tx.Bucket(bucketGroups).Get([]byte(name)) == nil {
		return ErrNotFound
	}
	return t.tx.Bucket(bucketGroups).Delete([]byte(name))
}

// Groups returns every group, ordered by name.
func (t *Tx) Groups() ([]Group, error) {
	var out []Group
	err := forEach(t, bucketGroups, func(g Group) error { out = append(out, g); return nil })
	return out, err
}

// Device returns the trusted device whose token hash is key.
func (t *Tx) Device(key string) (Device, error) {
	var d Device
	err := t.get(bucketDevices, []byte(key), &d)
	return d, err
}

// PutDevice writes a trusted device under its token hash.
func (t *Tx) PutDevice(d Device) error { return t.put(bucketDevices, []byte(d.TokenHash), d) }

// DeleteDevice removes one trusted device by its token hash.
func (t *Tx) DeleteDevice(key string) error {
	return t.tx.Bucket(bucketDevices).Delete([]byte(key))
}

// Devices returns the trusted devices of user ("" for all).
func (t *Tx) Devices(user string) ([]Device, error) {
	var out []Device
	err := forEach(t, bucketDevices, func(d Device) error {
		if user == "" || d.User == user {
			out = append(out, d)
		}
		return nil
	})
	return out, err
}

// DeleteDevices removes every trusted device of user and says how many.
func (t *Tx) DeleteDevices(user string) (int, error) {
	devs, err := t.Devices(user)
	if err != nil {
		return 0, err
	}
	for _, d := range devs {
		if err := t.DeleteDevice(d.TokenHash); err != nil {
			return 0, err
		}
	}
	return len(devs), nil
}

// AppPassword returns the app password whose token has the hex SHA-256
// key.
func (t *Tx) AppPassword(key string) (AppPassword, error) {
	var a AppPassword
	err := t.get(bucketAppPasswords, []byte(key), &a)
	return a, err
}

// PutAppPassword stores a, keyed by its token's hash.
func (t *Tx) PutAppPassword(a AppPassword) error {
	return t.put(bucketAppPasswords, []byte(a.TokenHash), a)
}

// AppPasswords returns the app passwords of user ("" for all), oldest
// first.
func (t *Tx) AppPasswords(user string) ([]AppPassword, error) {
	var out []AppPassword
	err := forEach(t, bucketAppPasswords, func(a AppPassword) error {
		if user == "" || a.User == user {
			out = append(out, a)
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// DeleteAppPassword removes one app password by its token's hash.
func (t *Tx) DeleteAppPassword(key string) error {
	return t.tx.Bucket(bucketAppPasswords).Delete([]byte(key))
}

// DeleteAppPasswords removes every app password of user and says how many.
func (t *Tx) DeleteAppPasswords(user string) (int, error) {
	list, err := t.AppPasswords(user)
	if err != nil {
		return 0, err
	}
	for _, a := range list {
		if err := t.DeleteAppPassword(a.TokenHash); err != nil {
			return 0, err
		}
	}
	return len(list), nil
}

// Policy returns the 2FA policy (scope none when never set).
func (t *Tx) Policy() (Policy, error) {
	if t.cache != nil {
		if p, ok := t.cache.getPolicy(t.gen); ok {
			return p, nil
		}
	}
	var p Policy
	raw := t.tx.Bucket(bucketMeta).Get(keyPolicy)
	if raw == nil {
		p = Policy{Scope: ScopeNone}
	} else if err := json.Unmarshal(raw, &p); err != nil {
		return p, fmt.Errorf("store: decode policy: %w", err)
	}
	if t.cache != nil {
		t.cache.putPolicy(t.gen, p)
	}
	return p, nil
}

// PutPolicy writes the 2FA policy.
func (t *Tx) PutPolicy(p Policy) error { return t.put(bucketMeta, keyPolicy, p) }

// Get reads a small setting owned by another package into v.
func (t *Tx) Get(key string, v any) error { return t.get(bucketKV, []byte(key), v) }

// Put writes a small setting owned by another package.
func (t *Tx) Put(key string, v any) error { return t.put(bucketKV, []byte(key), v) }

// Delete removes a setting; removing a missing one is not an error.
func (t *Tx) Delete(key string) error { return t.tx.Bucket(bucketKV).Delete([]byte(key)) }
