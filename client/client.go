package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"anom/escrow"
	"anom/identity"
	"anom/internal/translog"
	"anom/mls"
)

// Config configures a Client. Only Dir (or Storage) is required.
type Config struct {
	// Dir is the device state directory (a DirStorage). Required unless
	// Storage is set.
	Dir string
	// Storage is where the device state is kept, instead of Dir (a
	// browser's storage, MemStorage in tests).
	Storage Storage
	// Transport is how the client reaches the server; nil means
	// DefaultTransport() (over TLS pinned to the network's CA, or the
	// browser's WebSocket and fetch in a GOOS=js build).
	Transport Transport
	// Logger receives the client's logs; nil discards them.
	Logger *slog.Logger
	// Rand is the source of randomness; nil means crypto/rand.
	Rand io.Reader
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// KDF sets the Argon2id costs of a new device's PIN (an existing one
	// keeps its own; a device of the first state format moves to these on
	// its first unlock); the zero value is DefaultKDF. Tests set a cheap
	// one.
	KDF KDFParams
	// WipeAfter makes a new device wipe itself after this long without
	// reaching the server; 0 means never.
	WipeAfter time.Duration
	// MaxFailedUnlocks makes a new device wipe itself after this many
	// wrong PINs in a row (at most 100); 0 means never.
	MaxFailedUnlocks int
	// KeyPackages is how many one-time key packages the device keeps on
	// the server; 0 means 16.
	KeyPackages int
	// OnEvent receives what happens (messages, membership changes, alerts,
	// wipes) from the client's receive goroutine, in order; it should not
	// block for long. Nil drops events.
	OnEvent func(Event)
}

// Client is one device. Its methods are safe for concurrent use.
type Client struct {
	cfg  Config
	log  *slog.Logger
	rand io.Reader
	now  func() time.Time

	v *vault
	// st is the vault's storage, locked from Create or Open to Close.
	st Storage

	// mu serialises everything that reads or changes the device's groups
	// and identity, including the network round trips of a change.
	mu      sync.Mutex
	dev     *deviceRecord
	sigPriv mls.SignaturePrivateKey
	groups  map[string]*groupState // by string(group ID)
	monitor *translog.Monitor
	wiped   bool

	// escrowPol is the escrow policy verified since connecting; nil
	// until then (Send refuses).
	escrowPol *policyState
	// countersigned: the servers' batch countersignatures of escrow
	// records already checked (messages received together often share one).
	countersigned *escrow.CountersignCache
	// mismatches are false escrow records found, to report.
	mismatches []EscrowMismatch
	// unexplained are the devices other members removed from groups for
	// no reason known here yet (see alertRemovedGone), by device ID.
	unexplained map[string]removedDevice
	// tamperRecord, set by tests only, alters what a sent record seals.
	tamperRecord func(m *escrow.Metadata, plaintext []byte) []byte

	connMu sync.Mutex
	conn   *conn
	// nextAddr is the index of the network address (Network.addresses)
	// the next connection tries first: the one that worked last, or the
	// one after an address that dropped the connection.
	nextAddr atomic.Int32
	tr       Transport
	hc       *http.Client
	stop     chan struct{} // closed by Close/wipe, ending Run
	// stopOnce closes stop once.
	stopOnce sync.Once
}

// halt closes c.stop, ending Run.
func (c *Client) halt() { c.stopOnce.Do(func() { close(c.stop) }) }

// groupState is a group the device is in.
type groupState struct {
	g      *mls.Group
	cursor uint64
	timer  uint32
	escrow escrowSecrets // loaded on first use
}

func (cfg *Config) defaults() (*slog.Logger, io.Reader, func() time.Time) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return log, randOrDefault(cfg.Rand), now
}

// Create makes the state of a new device in cfg.Dir, protected by pin;
// duressPIN, if not empty, is a PIN that erases the device instead of
// unlocking it (see Open). Both must pass CheckNewPIN. The device is then
// activated with Activate.
func Create(cfg Config, pin, duressPIN string) (*Client, error) {
	if cfg.Dir == "" && cfg.Storage == nil {
		return nil, errors.New("creating device: Config.Dir or Config.Storage is required")
	}
	if cfg.WipeAfter < 0 || cfg.MaxFailedUnlocks < 0 {
		return nil, errors.New("creating device: negative WipeAfter or MaxFailedUnlocks")
	}
	if cfg.MaxFailedUnlocks > maxTries {
		return nil, fmt.Errorf("creating device: MaxFailedUnlocks over %d", maxTries)
	}
	log, rnd, now := cfg.defaults()
	st := settings{maxFailed: uint32(cfg.MaxFailedUnlocks), wipeAfter: int64(cfg.WipeAfter / time.Second), lastContact: now().Unix()}
	o := vaultOptions{rand: rnd, now: now, storage: cfg.storage(rnd)}
	if err := o.storage.Create(); err != nil {
		return nil, fmt.Errorf("creating device: %w", err)
	}
	if err := o.storage.Lock(); err != nil {
		return nil, fmt.Errorf("creating device: %w", err)
	}
	v, err := createVault(cfg.Dir, pin, duressPIN, cfg.KDF, st, o)
	if err != nil {
		o.storage.Unlock()
		return nil, err
	}
	c := newClient(cfg, log, rnd, now, v)
	c.st = o.storage
	return c, nil
}

// Open unlocks an existing device with pin. A wrong PIN returns
// ErrWrongPIN. One wrong PIN too many, a device too long without reaching
// the server or an edited key file wipes the device: Open then returns an
// error matching ErrWiped.
//
// The duress PIN erases the device just as thoroughly, but Open then
// returns, without error, event or log line, a new device that was
// created and never activated, whose PIN is the duress PIN: to whoever
// watches, the duress PIN opened an empty device.
func Open(cfg Config, pin string) (*Client, error) {
	if cfg.Dir == "" && cfg.Storage == nil {
		return nil, errors.New("opening device: Config.Dir or Config.Storage is required")
	}
	log, rnd, now := cfg.defaults()
	o := vaultOptions{rand: rnd, now: now, kdf: cfg.KDF, storage: cfg.storage(rnd)}
	err := o.storage.Lock()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("opening device state: %w", ErrNoState)
	}
	if err != nil {
		return nil, fmt.Errorf("opening device: %w", err)
	}
	v, rep, err := openVault(cfg.Dir, pin, o)
	if err != nil {
		o.storage.Unlock()
		if rep != nil {
			log.Warn("device wiped", "reason", rep.Reason, "files", rep.Removed)
		}
		return nil, err
	}
	c := newClient(cfg, log, rnd, now, v)
	c.st = o.storage
	if err := c.load(); err != nil {
		v.close()
		o.storage.Unlock()
		return nil, err
	}
	return c, nil
}

// storage returns cfg.Storage, or the DirStorage of cfg.Dir, which takes
// its randomness from rnd.
func (cfg *Config) storage(rnd io.Reader) Storage {
	if cfg.Storage != nil {
		return cfg.Storage
	}
	return newDirStorage(cfg.Dir, rnd)
}

func newClient(cfg Config, log *slog.Logger, rnd io.Reader, now func() time.Time, v *vault) *Client {
	return &Client{cfg: cfg, log: log, rand: rnd, now: now, v: v, tr: cfg.transport(), groups: map[string]*groupState{}, stop: make(chan struct{}),
		countersigned: escrow.NewCountersignCache()}
}

// load reads the device record, groups and monitor state.
func (c *Client) load() error {
	raw, err := c.v.get(recDevice)
	if errors.Is(err, ErrNotFound) {
		return nil // created but not yet activated
	}
	if err != nil {
		return fmt.Errorf("loading device: %w", err)
	}
	if c.dev, err = decodeDeviceRecord(raw); err != nil {
		return err
	}
	c.sigPriv = mls.SignaturePrivateKey(c.dev.sigSeed)
	c.hc = c.tr.HTTP(c.dev.net)
	if c.monitor, err = c.loadMonitor(); err != nil {
		return err
	}
	for _, name := range c.v.list(recGroupPref) {
		raw, err := c.v.get(name)
		if err != nil {
			return fmt.Errorf("loading groups: %w", err)
		}
		rec, err := decodeGroupRecord(raw)
		if err != nil {
			return err
		}
		g, err := mls.Load(c.mlsConfig(), rec.state)
		if err != nil {
			return fmt.Errorf("%w: loading group %s: %w", ErrCorrupt, strings.TrimPrefix(name, recGroupPref), err)
		}
		c.groups[string(g.GroupID())] = &groupState{g: g, cursor: rec.cursor, timer: rec.timer}
	}
	return nil
}

func (c *Client) loadMonitor() (*translog.Monitor, error) {
	var st translog.MonitorState
	raw, err := c.v.get(recMonitor)
	switch {
	case errors.Is(err, ErrNotFound):
	case err != nil:
		return nil, fmt.Errorf("loading log monitor: %w", err)
	default:
		if err := st.UnmarshalBinary(raw); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	}
	m, err := translog.NewMonitor(translog.MonitorConfig{VerifyHead: identity.TreeHeadVerifier(c.dev.net.Root), Subject: logSubjectFor(c.dev.net.Root)}, st)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return m, nil
}

// logSubject names the user a transparency-log entry concerns.
func logSubject(e translog.Entry) (string, error) {
	if e.Kind != translog.KindDeviceCertificate {
		return "", nil
	}
	cert, err := identity.DecodeDeviceCertificate(e.Payload)
	if err != nil {
		return "", err
	}
	return cert.Username, nil
}

// mlsConfig is the MLS configuration of the device's groups: every
// member's credential must be a valid device certificate of the network.
func (c *Client) mlsConfig() mls.Config {
	cfg := mls.Config{Rand: c.rand, Now: c.now}
	if c.dev != nil {
		cfg.ValidateCredential = identity.NewCredentialValidator(identity.ValidatorConfig{Root: c.dev.net.Root, Now: c.now})
	}
	return cfg
}

// Identity describes an activated device.
type Identity struct {
	DeviceID identity.DeviceID
	Username string
	// Certificate is the device certificate.
	Certificate *identity.DeviceCertificate
	Network     Network
}

// Identity returns the device's identity, or ErrNotActivated.
func (c *Client) Identity() (Identity, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.dev == nil {
		return Identity{}, ErrNotActivated
	}
	cert, err := identity.DecodeDeviceCertificate(c.dev.cert)
	if err != nil {
		return Identity{}, fmt.Errorf("%w: own certificate: %w", ErrCorrupt, err)
	}
	return Identity{DeviceID: c.dev.id, Username: c.dev.username, Certificate: cert, Network: c.dev.net}, nil
}

// ErrNotActivated is returned by calls that need an activated device.
var ErrNotActivated = errors.New("client: device not activated")

// ChangePIN sets a new PIN (and duress PIN; empty means none) after
// checking the old one. Both must pass CheckNewPIN.
func (c *Client) ChangePIN(old, pin, duressPIN string) error {
	return c.v.changePIN(old, pin, duressPIN, KDFParams{})
}

// ChangePINAndKDF is ChangePIN that also sets the Argon2id cost of the
// PIN key (zero fields: DefaultKDF's), so that a device made with a
// lighter one (the browser's) can be raised. The duress PIN is needed
// again because its key is derived at the new cost too.
func (c *Client) ChangePINAndKDF(old, pin, duressPIN string, kdf KDFParams) error {
	return c.v.changePIN(old, pin, duressPIN, kdf.withDefaults())
}

// KDF returns the Argon2id cost of the device's PIN key, as its key file
// records it.
func (c *Client) KDF() KDFParams {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	if c.v.keys == nil {
		return KDFParams{}
	}
	return c.v.keys.kdf
}

// Close disconnects and forgets the keys in memory; the state stays on
// disk for the next Open.
func (c *Client) Close() error {
	c.halt()
	c.disconnect()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.v.close()
	if err := c.st.Unlock(); err != nil {
		return fmt.Errorf("closing device: %w", err)
	}
	return nil
}

// Wipe deletes the device's keys and data at once and reports what it
// did. The client is unusable afterwards.
func (c *Client) Wipe(ctx context.Context) (*WipeReport, error) {
	c.disconnect()
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wipeLocked("user request")
}

func (c *Client) wipeLocked(reason string) (*WipeReport, error) {
	rep, err := c.v.wipe()
	c.wiped = true
	c.halt()
	c.groups = map[string]*groupState{}
	if c.sigPriv != nil {
		clear(c.sigPriv)
	}
	c.dev = nil
	if rep != nil {
		rep.Reason = reason
	}
	c.emit(Event{Type: EventWiped, Text: reason})
	return rep, err
}

// CheckOverdue wipes the device if it has gone longer than its WipeAfter
// without reaching the server; an application calls it periodically while
// it runs offline. It returns ErrWiped when it wiped.
func (c *Client) CheckOverdue() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wiped || !c.v.overdue(c.now()) {
		return nil
	}
	c.disconnect()
	if _, err := c.wipeLocked("too long without reaching the server"); err != nil {
		return err
	}
	return ErrWiped
}

func (c *Client) emit(e Event) {
	if c.cfg.OnEvent != nil {
		c.cfg.OnEvent(e)
	}
}
