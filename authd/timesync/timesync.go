// Package timesync keeps the system clock right for TOTP on boards without a
// battery-backed RTC: it restores a saved time at start, synchronises with NTP
// servers by a majority vote, writes the RTC and saves the time regularly.
package timesync

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/rknas/firmware/authd/clock"
)

// State says how far the clock can be trusted.
type State string

// The clock states.
const (
	// StateSynchronized: a good NTP answer (a majority of the servers)
	// corrected the clock within Config.SyncValidity.
	StateSynchronized State = "synchronized"
	// StateEstimated: the clock comes from the RTC, the saved time, the
	// admin, or an NTP sync older than Config.SyncValidity, or it was
	// already ahead of all of these at start. It is probably close but not
	// confirmed.
	StateEstimated State = "estimated"
	// StateUntrusted: nothing better than the firmware build time is known
	// (plus the uptime since, when restored from a time saved in this
	// state).
	StateUntrusted State = "untrusted"
)

// Source says where the current clock value came from.
type Source string

// The clock sources.
const (
	SourceNTP    Source = "ntp"    // an NTP sync
	SourceRTC    Source = "rtc"    // the hardware RTC
	SourceSaved  Source = "saved"  // the time saved in the state directory
	SourceManual Source = "manual" // set by the admin
	SourceSystem Source = "system" // the clock as the kernel had it at start
	SourceBuild  Source = "build"  // moved forward to the firmware build time
)

// DefaultRTCPath is the RTC device the kernel registers first.
const DefaultRTCPath = "/dev/rtc0"

// Errors returned by the service.
var (
	ErrDisabled    = errors.New("timesync: NTP is disabled")
	ErrNoAnswer    = errors.New("timesync: no usable NTP answer")
	ErrDisagree    = errors.New("timesync: NTP servers disagree, clock left alone")
	ErrZeroTime    = errors.New("timesync: refusing to set the zero time")
	ErrBeforeBuild = errors.New("timesync: time is before the firmware build time")
	// ErrLoneJump: one server alone wants to move a clock NTP has set by
	// more than Config.MaxLoneJump.
	ErrLoneJump     = errors.New("timesync: one server alone wants a large correction of a clock NTP has set, clock left alone")
	ErrSynchronized = errors.New("timesync: the clock is synchronised by NTP; disable NTP before setting it by hand")
	ErrNoSetter     = errors.New("timesync: Deps.Setter is required")
)

// Setter changes the system clock. The service never calls it with the zero
// time.
type Setter interface {
	// Step sets the clock to t at once.
	Step(t time.Time) error
	// Slew moves the clock by offset gradually, without a jump.
	Slew(offset time.Duration) error
}

// RTC is a battery-backed real-time clock.
type RTC interface {
	Read() (time.Time, error)
	Write(t time.Time) error
}

// Resolver looks up host names; *net.Resolver is one.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]string, error)
}

var _ Resolver = (*net.Resolver)(nil)

// Status is the clock's state as the API shows it.
type Status struct {
	State    State   `json:"state"`
	Source   Source  `json:"source"`
	OffsetMS float64 `json:"offset_ms"` // the last correction: NTP offset, or the jump at restore or manual set
	// LastSync is the time of the last good NTP sync, null if none.
	LastSync *time.Time `json:"last_sync"`
	Server   string     `json:"server"` // the server whose answer was used (the median)
	RTTMS    float64    `json:"rtt_ms"`
	// NextSync is when Run will sync next, null when NTP is disabled or Run
	// is not running.
	NextSync *time.Time `json:"next_sync"`
	// Error says why the last sync or clock change failed; empty after a
	// success.
	Error string `json:"error,omitempty"`
}

// Config is the service's fixed configuration. Zero fields take the
// defaults named in their comments.
type Config struct {
	// StateDir holds SettingsFile and SavedTimeFile. Empty: nothing is
	// persisted.
	StateDir string
	// Settings are used until the admin saves others (SettingsFile then
	// wins). The zero value means DefaultSettings().
	Settings Settings
	// BuildTime is the earliest plausible time (default DefaultBuildTime()).
	BuildTime time.Time

	Interval     time.Duration // between syncs after a success (1 h), ±Jitter
	Jitter       float64       // fraction of a delay added or removed at random (0.1)
	RetryMin     time.Duration // first retry after a failed sync (2 s), doubling...
	RetryMax     time.Duration // ...up to this (10 min)
	SaveEvery    time.Duration // how often Run saves the time (10 min)
	QueryTimeout time.Duration // per NTP query and per DNS lookup (3 s)
	MaxRTT       time.Duration // answers with a longer round trip are dropped (2 s)
	MaxAddrs     int           // addresses queried per server name (3)
	MaxSpread    time.Duration // votes within this agree (2 s)
	// SlewLimit: offsets up to this are slewed, larger ones stepped (500 ms).
	SlewLimit time.Duration
	// MaxLoneJump: once NTP has set the clock, a correction larger than
	// this needs two servers that agree (1 h). A clock NTP has set does
	// not drift by an hour; one server saying so is broken or lying (or
	// a DNS answer was), and following it breaks every TOTP code.
	MaxLoneJump time.Duration
	// SyncValidity: how long after a good sync the state stays
	// synchronized (2 h). Two hourly syncs may fail before it lapses; even a
	// poor 100 ppm crystal drifts under 1 s in that time, far inside a
	// 30-second TOTP step.
	SyncValidity time.Duration
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.Interval, time.Hour)
	def(&c.RetryMin, 2*time.Second)
	def(&c.RetryMax, 10*time.Minute)
	def(&c.SaveEvery, 10*time.Minute)
	def(&c.QueryTimeout, 3*time.Second)
	def(&c.MaxRTT, 2*time.Second)
	def(&c.MaxSpread, 2*time.Second)
	def(&c.SlewLimit, 500*time.Millisecond)
	def(&c.MaxLoneJump, time.Hour)
	def(&c.SyncValidity, 2*time.Hour)
	if c.Jitter <= 0 || c.Jitter >= 1 {
		c.Jitter = 0.1
	}
	if c.MaxAddrs <= 0 {
		c.MaxAddrs = 3
	}
	if c.BuildTime.IsZero() {
		c.BuildTime = DefaultBuildTime()
	}
	if !c.Settings.Enabled && len(c.Settings.Servers) == 0 {
		c.Settings = DefaultSettings()
	}
}

// Deps are the service's seams to the outside world.
type Deps struct {
	// Setter changes the system clock: SystemSetter{} on the board. Required,
	// so a test can not change the host's clock by forgetting a fake.
	Setter Setter
	// Clock reads the system clock (default clock.System{}).
	Clock clock.Clock
	// RTC is the hardware clock, nil if the board has none: use
	// DetectRTC(DefaultRTCPath).
	RTC RTC
	// Resolver looks up server names (default net.DefaultResolver).
	Resolver Resolver
	// Logger (default slog.Default()).
	Logger *slog.Logger
	// Notify, if set, is called after every sync attempt with the status
	// and the attempt's error (nil on success), outside any lock: for an
	// LED, or for tests to wait on.
	Notify func(Status, error)
}

// Service keeps the clock. It is safe for concurrent use.
type Service struct {
	cfg      Config
	clk      clock.Clock
	setter   Setter
	rtc      RTC
	resolver Resolver
	log      *slog.Logger
	build    time.Time
	notify   func(Status, error)
	sysTime  func() time.Time // for ntp.QueryOptions.GetSystemTime; nil: the library's own
	kick     chan struct{}

	syncMu sync.Mutex // one sync or clock change at a time

	mu       sync.Mutex // guards the fields below; held only for copies
	settings Settings
	source   Source
	base     State // the state when the source is not a fresh NTP sync
	lastSync time.Time
	offset   time.Duration
	rtt      time.Duration
	server   string
	nextSync time.Time
	errText  string
	kissed   map[string]time.Time // address -> do not ask before
}

// New makes the service and restores the clock at once: it moves the system
// clock forward to the latest of the build time, the saved time and the RTC
// when the clock is behind them (a board without RTC boots in 1970). A failure
// to change the clock is logged and shown in the status, not returned: the
// daemon must start anyway. New returns an error only for a missing Setter.
func New(cfg Config, deps Deps) (*Service, error) {
	if deps.Setter == nil {
		return nil, ErrNoSetter
	}
	cfg.setDefaults()
	s := &Service{
		cfg:      cfg,
		clk:      deps.Clock,
		setter:   deps.Setter,
		rtc:      deps.RTC,
		resolver: deps.Resolver,
		log:      deps.Logger,
		build:    cfg.BuildTime,
		notify:   deps.Notify,
		kick:     make(chan struct{}, 1),
		kissed:   make(map[string]time.Time),
	}
	if s.clk == nil {
		s.clk = clock.System{}
	}
	if _, system := s.clk.(clock.System); !system {
		s.sysTime = s.clk.Now
	}
	if s.resolver == nil {
		s.resolver = net.DefaultResolver
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("pkg", "timesync")

	s.settings = cfg.Settings.Clone()
	if cfg.StateDir != "" {
		set, err := LoadSettings(cfg.StateDir)
		switch {
		case err == nil:
			s.settings = set
		case errors.Is(err, fs.ErrNotExist):
		default:
			s.log.Error("settings unusable, using defaults", "err", err)
		}
	}
	if err := s.settings.Validate(); err != nil {
		return nil, err
	}
	s.restore()
	return s, nil
}

// restore moves the clock forward to the best lower bound known at start.
func (s *Service) restore() {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	target, src := s.build, SourceBuild
	var saved savedTime
	if s.cfg.StateDir != "" {
		var err error
		if saved, err = loadSavedTime(s.cfg.StateDir); err != nil {
			s.log.Warn("saved time unusable", "err", err)
		}
		if saved.Time.After(target) {
			target, src = saved.Time, SourceSaved
		}
	}
	var rtcTime time.Time
	if s.rtc != nil {
		t, err := s.rtc.Read()
		switch {
		case err != nil:
			s.log.Warn("rtc unreadable", "err", err)
		case t.Before(s.build):
			s.log.Warn("rtc is before the build time, ignored", "rtc", t)
		default:
			rtcTime = t
			if t.After(target) {
				target, src = t, SourceRTC
			}
		}
	}
	now := s.clk.Now()
	var stepErr error
	if now.Before(target) {
		stepErr = s.step(target)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !now.Before(target) {
		// The clock is already ahead of everything we know. With an RTC the
		// kernel set it from there at boot.
		s.base, s.source = StateEstimated, SourceSystem
		if !rtcTime.IsZero() {
			s.source = SourceRTC
		}
		s.log.Info("clock kept", "now", now, "source", s.source)
		return
	}
	if stepErr != nil {
		s.base, s.source = StateUntrusted, SourceSystem
		s.errText = fmt.Sprintf("restore to %s time %s: %v", src, target.UTC().Format(time.RFC3339), stepErr)
		s.log.Error("clock restore failed", "target", target, "source", src, "err", stepErr)
		return
	}
	s.offset = target.Sub(now)
	s.source, s.base = src, StateEstimated
	// The build time is only a lower bound; so is a time saved while the
	// clock was still untrusted (it merely adds the uptime since).
	if src == SourceBuild || (src == SourceSaved && saved.State == StateUntrusted) {
		s.base = StateUntrusted
	}
	s.log.Info("clock restored", "from", now, "to", target, "source", src)
}

// step steps the clock after the checks every clock change needs. The
// caller holds syncMu, not mu: Status must not wait for the Setter.
func (s *Service) step(t time.Time) error {
	if t.IsZero() {
		return ErrZeroTime
	}
	if t.Before(s.build) {
		return fmt.Errorf("%w: %s", ErrBeforeBuild, t.UTC().Format(time.RFC3339))
	}
	return s.setter.Step(t)
}

// Status returns the clock's current state. It never waits for a sync.
func (s *Service) Status() Status {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Status{
		State:    s.stateLocked(now),
		Source:   s.source,
		OffsetMS: float64(s.offset) / float64(time.Millisecond),
		Server:   s.server,
		RTTMS:    float64(s.rtt) / float64(time.Millisecond),
		Error:    s.errText,
	}
	if !s.lastSync.IsZero() {
		t := s.lastSync.Round(0)
		st.LastSync = &t
	}
	if !s.nextSync.IsZero() {
		t := s.nextSync.Round(0)
		st.NextSync = &t
	}
	return st
}

// State returns the clock's state alone.
func (s *Service) State() State {
	now := s.clk.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stateLocked(now)
}

func (s *Service) stateLocked(now time.Time) State {
	if s.source == SourceNTP {
		// Both times carry a monotonic reading on the real clock, so a step
		// of the wall clock does not change this age.
		if now.Sub(s.lastSync) <= s.cfg.SyncValidity {
			return StateSynchronized
		}
		return StateEstimated
	}
	return s.base
}

// Settings returns a copy of the current settings.
func (s *Service) Settings() Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.settings.Clone()
}

// SetSettings validates set, persists it and makes Run sync again at once
// (or stop syncing when disabled). Call SyncNow to wait for the result.
func (s *Service) SetSettings(set Settings) error {
	set = set.Clone()
	if err := set.Validate(); err != nil {
		return err
	}
	if s.cfg.StateDir != "" {
		if err := SaveSettings(s.cfg.StateDir, set); err != nil {
			return err
		}
	}
	s.mu.Lock()
	s.settings = set
	s.mu.Unlock()
	s.log.Info("settings changed", "enabled", set.Enabled, "servers", set.Servers)
	select {
	case s.kick <- struct{}{}:
	default:
	}
	return nil
}

// SetManual sets the clock to t by hand, for when no NTP server can be
// reached. The state becomes estimated with source manual. It is refused
// while NTP is enabled and synchronised: a typo must not undo a confirmed
// clock and break every TOTP code.
func (s *Service) SetManual(t time.Time) error {
	if t.IsZero() {
		return ErrZeroTime
	}
	if t.Before(s.build) {
		return fmt.Errorf("%w: %s is before %s", ErrBeforeBuild, t.UTC().Format(time.RFC3339), s.build.UTC().Format(time.RFC3339))
	}
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	now := s.clk.Now()
	s.mu.Lock()
	synced := s.settings.Enabled && s.stateLocked(now) == StateSynchronized
	s.mu.Unlock()
	if synced {
		return ErrSynchronized
	}
	if err := s.step(t); err != nil {
		s.mu.Lock()
		s.errText = fmt.Sprintf("manual set: %v", err)
		s.mu.Unlock()
		return fmt.Errorf("timesync: manual set: %w", err)
	}
	s.mu.Lock()
	s.source, s.base = SourceManual, StateEstimated
	s.offset, s.rtt, s.server, s.errText = t.Sub(now), 0, "", ""
	s.mu.Unlock()
	s.log.Info("clock set by hand", "from", now, "to", t)
	s.afterChange(0)
	return nil
}

// afterChange writes the RTC and saves the time after the clock was
// corrected; pending is what a slew has still to add.
func (s *Service) afterChange(pending time.Duration) {
	now := s.clk.Now().Add(pending)
	if s.rtc != nil {
		if err := s.rtc.Write(now); err != nil {
			s.log.Warn("rtc write failed", "err", err)
		}
	}
	if err := s.saveTime(now); err != nil {
		s.log.Warn("saving the time failed", "err", err)
	}
}

// SaveTime writes the current time to SavedTimeFile, for the next start.
func (s *Service) SaveTime() error {
	return s.saveTime(s.clk.Now())
}

func (s *Service) saveTime(t time.Time) error {
	if s.cfg.StateDir == "" || t.Before(s.build) {
		return nil
	}
	return writeSavedTime(s.cfg.StateDir, savedTime{Time: t, State: s.State()})
}

// SyncNow queries the servers and corrects the clock if a majority agrees.
// It returns the status afterwards and the reason when nothing was done.
func (s *Service) SyncNow(ctx context.Context) (Status, error) {
	err := s.sync(ctx)
	st := s.Status()
	if s.notify != nil {
		s.notify(st, err)
	}
	return st, err
}

func (s *Service) sync(ctx context.Context) error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	set := s.Settings()
	if !set.Enabled {
		return ErrDisabled
	}
	results := s.queryAll(ctx, set.Servers)
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("timesync: sync: %w", err)
	}
	d, err := decide(results, s.cfg.MaxSpread)
	if err != nil {
		s.fail(err)
		return err
	}
	for _, o := range d.outvoted {
		s.log.Warn("server outvoted", "server", o.server, "addr", o.addr, "offset", o.offset)
	}
	s.mu.Lock()
	setByNTP := s.source == SourceNTP
	s.mu.Unlock()
	if setByNTP && d.agreeing < 2 && d.offset.Abs() > s.cfg.MaxLoneJump {
		err := fmt.Errorf("%w: %s says the clock is %s off; that needs two servers that agree", ErrLoneJump, d.best.server, fmtOffset(d.offset))
		s.fail(err)
		return err
	}
	now := s.clk.Now()
	target := now.Add(d.offset)
	var pending time.Duration
	if d.offset.Abs() <= s.cfg.SlewLimit {
		// Small offsets are slewed so the wall clock never jumps back under
		// running code (log order, file times); the kernel finishes 500 ms
		// in about 17 minutes, well before the next sync. Larger offsets,
		// above all the first sync after a boot in 1970, are stepped: TOTP
		// needs the right time now, and sessions, lockouts and timeouts
		// measure durations on the monotonic clock, which a step does not
		// touch.
		err = s.setter.Slew(d.offset)
		pending = d.offset
	} else {
		err = s.step(target)
	}
	if err != nil {
		s.mu.Lock()
		s.errText = fmt.Sprintf("set clock: %v", err)
		s.mu.Unlock()
		s.log.Error("clock correction failed", "offset", d.offset, "err", err)
		return fmt.Errorf("timesync: set clock: %w", err)
	}
	s.mu.Lock()
	s.source, s.base = SourceNTP, StateEstimated
	s.lastSync = s.clk.Now()
	s.offset, s.rtt, s.server, s.errText = d.offset, d.best.rtt, d.best.server, ""
	s.mu.Unlock()
	s.log.Info("clock synchronised", "offset", d.offset, "server", d.best.server, "addr", d.best.addr,
		"rtt", d.best.rtt, "agreeing", d.agreeing, "voters", d.voters, "slewed", pending != 0)
	s.afterChange(pending)
	return nil
}

func (s *Service) fail(err error) {
	s.mu.Lock()
	s.errText = err.Error()
	s.mu.Unlock()
	s.log.Warn("sync failed", "err", err)
}

// Run syncs at once and then about every Config.Interval, retrying failures
// with capped exponential backoff, and saves the time every
// Config.SaveEvery. It returns when ctx ends, after saving the time once
// more; the error is that save's.
func (s *Service) Run(ctx context.Context) error {
	save := time.NewTicker(s.cfg.SaveEvery)
	defer save.Stop()
	timer := time.NewTimer(0)
	defer timer.Stop()
	s.schedule(timer, 0)
	failures := 0
	for {
		select {
		case <-ctx.Done():
			s.setNext(time.Time{})
			return s.SaveTime()
		case <-save.C:
			if err := s.SaveTime(); err != nil {
				s.log.Warn("saving the time failed", "err", err)
			}
		case <-s.kick:
			failures = 0
			s.schedule(timer, 0)
		case <-timer.C:
			err := s.sync(ctx)
			switch {
			case ctx.Err() != nil:
				continue
			case err == nil:
				failures = 0
				s.schedule(timer, s.jitter(s.cfg.Interval))
			case errors.Is(err, ErrDisabled):
				s.schedule(timer, 0)
			default:
				failures++
				s.schedule(timer, s.jitter(backoff(failures, s.cfg.RetryMin, s.cfg.RetryMax)))
			}
			if s.notify != nil {
				s.notify(s.Status(), err)
			}
		}
	}
}

// schedule arms timer for d from now, or stops it when NTP is disabled.
func (s *Service) schedule(timer *time.Timer, d time.Duration) {
	if !s.Settings().Enabled {
		timer.Stop()
		s.setNext(time.Time{})
		return
	}
	timer.Reset(d)
	s.setNext(s.clk.Now().Add(d))
}

func (s *Service) setNext(t time.Time) {
	s.mu.Lock()
	s.nextSync = t
	s.mu.Unlock()
}

// backoff returns the delay before retry number n (from 1): lo doubled
// n-1 times, at most hi.
func backoff(n int, lo, hi time.Duration) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	return min(d, hi)
}

// jitter spreads d by ±Config.Jitter, so many boards that lost power
// together do not query the servers in step.
func (s *Service) jitter(d time.Duration) time.Duration {
	f := 1 + s.cfg.Jitter*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}
