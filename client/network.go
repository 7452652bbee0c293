package client

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"anom/identity"
	"anom/internal/translog"
	"anom/mls"
	anomv1 "anom/proto/anom/v1"
)

// suiteID is the MLS cipher suite of anom's groups.
const suiteID mls.CipherSuiteID = 1

func (c *Client) suite() *mls.CipherSuite {
	s, err := mls.Suite(suiteID)
	if err != nil {
		panic("client: MLS suite 1 missing: " + err.Error())
	}
	return s
}

func (c *Client) keyPackageTarget() int {
	if c.cfg.KeyPackages > 0 {
		return c.cfg.KeyPackages
	}
	return 16
}

// Activate makes this device's keys, redeems a one-time activation code
// for username on network n, stores the device certificate the server
// returns, uploads key packages, and leaves the client connected.
func (c *Client) Activate(ctx context.Context, n Network, code, username string) error {
	if n.Address == "" || len(n.Root) != ed25519.PublicKeySize {
		return errors.New("activating: Network.Address and Network.Root are required")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wiped {
		return ErrWiped
	}
	if c.dev != nil {
		return errors.New("activating: device already activated")
	}
	seed, pub, err := c.activationKey(username)
	if err != nil {
		return fmt.Errorf("activating: %w", err)
	}
	hc := c.tr.HTTP(n)
	cn, err := dial(ctx, c.tr, n)
	if err != nil {
		return fmt.Errorf("activating: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			cn.close()
		}
	}()
	ch, err := cn.handshake(ctx)
	if err != nil {
		return fmt.Errorf("activating: %w", err)
	}
	// The TLS handshake checked the CA; now the root, before the code is
	// spent: a wrong root key in the invite fails here, with the code and
	// the username still free.
	if err := checkNetworkRoot(ctx, cn, n.Root); err != nil {
		return fmt.Errorf("activating: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	resp, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_Activate{Activate: &anomv1.Activate{
		Code:         code,
		Username:     username,
		SignatureKey: pub,
		Signature:    identity.SignAuthResponse(priv, ch.GetServerName(), ch.GetNonce()),
	}}})
	if err != nil {
		return fmt.Errorf("activating: %w", err)
	}
	auth := resp.GetAuthenticated()
	if auth == nil {
		return fmt.Errorf("activating: %w: no certificate", ErrProtocol)
	}
	cert, err := identity.DecodeDeviceCertificate(auth.GetCertificate())
	if err != nil {
		return fmt.Errorf("activating: %w: %w", ErrProtocol, err)
	}
	if err := cert.Verify(n.Root, c.now()); err != nil {
		return fmt.Errorf("activating: server's certificate: %w", err)
	}
	if !bytes.Equal(cert.Key, pub) {
		return fmt.Errorf("activating: %w: certificate for another key", ErrProtocol)
	}
	dev := &deviceRecord{id: cert.DeviceID, username: cert.Username, sigSeed: seed, cert: auth.GetCertificate(), logIndex: auth.GetLogIndex(), net: n}
	if err := c.v.put(recDevice, dev.encode()); err != nil {
		return fmt.Errorf("activating: %w", err)
	}
	if err := c.v.del(recPairing); err != nil && !errors.Is(err, ErrNotFound) {
		return fmt.Errorf("activating: %w", err)
	}
	c.dev, c.sigPriv, c.hc = dev, mls.SignaturePrivateKey(seed), hc
	if c.monitor, err = c.loadMonitor(); err != nil {
		return err
	}
	c.log.Info("device activated", "device", cert.DeviceID, "username", cert.Username, "expires", cert.NotAfter)
	ok = true
	c.nextAddr.Store(int32(cn.addrIdx))
	c.attach(cn)
	if err := c.v.touch(c.now()); err != nil {
		return err
	}
	return c.syncLocked(ctx, cn, true)
}

// ErrWrongRoot is returned by Activate when the server's signed tree head
// does not chain to the root key the device was given: the invite is of
// another network (or wrong). Nothing was sent to the server.
var ErrWrongRoot = errors.New("client: the server is not of the network whose root key was given")

// checkNetworkRoot fetches the server's signed tree head, which it gives
// before authentication, and checks that the key signing it is certified
// by root.
func checkNetworkRoot(ctx context.Context, cn *conn, root identity.RootPublicKey) error {
	resp, err := cn.call(ctx, treeHeadRequest(0))
	if err != nil {
		return fmt.Errorf("getting the log head to check the root key: %w", err)
	}
	th := treeHeadOf(resp)
	if th == nil {
		return fmt.Errorf("getting the log head to check the root key: %w: no head", ErrProtocol)
	}
	var sth translog.SignedTreeHead
	if err := sth.UnmarshalBinary(th.GetTreeHead()); err != nil {
		return fmt.Errorf("getting the log head to check the root key: %w: %w", ErrProtocol, err)
	}
	if _, err := identity.VerifyTreeHead(root, sth, translog.SignedTreeHead{}); err != nil {
		return fmt.Errorf("%w (root key %x): %w", ErrWrongRoot, []byte(root), err)
	}
	return nil
}

// Connect connects an activated device and authenticates it, catches up
// on every group from its cursor and keeps receiving pushes until Close
// or the connection ends (EventDisconnected). A revoked or expired device
// gets a *ServerError with code REVOKED or EXPIRED.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wiped {
		return ErrWiped
	}
	if c.dev == nil {
		return ErrNotActivated
	}
	c.disconnect()
	cn, err := dialFrom(ctx, c.tr, c.dev.net, int(c.nextAddr.Load()))
	if err != nil {
		return err
	}
	c.nextAddr.Store(int32(cn.addrIdx))
	ch, err := cn.handshake(ctx)
	if err != nil {
		cn.close()
		c.passOver(cn)
		return fmt.Errorf("connecting: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(c.sigPriv)
	resp, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_Auth{Auth: &anomv1.Auth{
		Certificate: c.dev.cert,
		Signature:   identity.SignAuthResponse(priv, ch.GetServerName(), ch.GetNonce()),
	}}})
	if err != nil {
		cn.close()
		if !IsCode(err, CodeRevoked) && !IsCode(err, CodeExpired) {
			c.passOver(cn)
		}
		return fmt.Errorf("authenticating: %w", err)
	}
	if resp.GetAuthenticated() == nil {
		cn.close()
		return fmt.Errorf("authenticating: %w: unexpected answer", ErrProtocol)
	}
	if err := c.v.touch(c.now()); err != nil {
		cn.close()
		return err
	}
	c.attach(cn)
	return c.syncLocked(ctx, cn, false)
}

// syncLocked brings the device up to date after connecting: key packages,
// the transparency log (own-name watch) and every group's messages.
func (c *Client) syncLocked(ctx context.Context, cn *conn, activating bool) error {
	if err := c.refillKeyPackages(ctx, cn, activating); err != nil {
		return err
	}
	news, err := c.watchLog(ctx, cn)
	if err != nil {
		return err
	}
	if err := c.syncEscrowPolicy(ctx, cn); err != nil {
		return err
	}
	if err := c.catchUp(ctx, cn); err != nil {
		return err
	}
	if err := c.removeGone(ctx, cn); err != nil {
		c.log.Warn("removing revoked and expired devices from groups", "err", err)
		c.emit(Event{Type: EventError, Err: err})
	}
	if err := c.welcomeOwnDevices(ctx, cn, news); err != nil {
		// The device is still in sync; adding the others can wait for
		// the user (AddOwnDevices).
		c.log.Warn("adding new devices of this user to groups", "err", err)
		c.emit(Event{Type: EventError, Err: err})
	}
	c.flushAfterSync(ctx, cn)
	return nil
}

// attach makes cn the client's connection and starts handling its pushes.
func (c *Client) attach(cn *conn) {
	c.connMu.Lock()
	c.conn = cn
	c.connMu.Unlock()
	go c.pushLoop(cn)
}

// passOver makes the next connection try the address after cn's first,
// unless another connection moved on already.
func (c *Client) passOver(cn *conn) {
	if cn.naddrs > 1 {
		c.nextAddr.CompareAndSwap(int32(cn.addrIdx), int32((cn.addrIdx+1)%cn.naddrs))
	}
}

// current returns the live connection.
func (c *Client) current() (*conn, error) {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if c.conn == nil {
		return nil, ErrNotConnected
	}
	return c.conn, nil
}

// disconnect closes the connection, if any.
func (c *Client) disconnect() {
	c.connMu.Lock()
	cn := c.conn
	c.conn = nil
	c.connMu.Unlock()
	if cn != nil {
		cn.close()
	}
}

// Connected reports whether the client has a live connection.
func (c *Client) Connected() bool {
	cn, err := c.current()
	if err != nil {
		return false
	}
	select {
	case <-cn.done:
		return false
	default:
		return true
	}
}

// pushLoop handles the server's pushes in order until the connection ends.
func (c *Client) pushLoop(cn *conn) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var reason error
	for f := range cn.pushes {
		switch {
		case f.GetPushMessages() != nil:
			c.mu.Lock()
			if !c.wiped && c.dev != nil {
				if err := c.receive(ctx, cn, f.GetPushMessages()); err != nil {
					c.log.Warn("handling pushed messages", "err", err)
				}
			}
			c.mu.Unlock()
		case f.GetPushDeviceAdded() != nil:
			c.mu.Lock()
			if !c.wiped && c.dev != nil {
				if err := c.deviceAdded(ctx, cn); err != nil {
					c.log.Warn("handling a new device of this user", "err", err)
				}
			}
			c.mu.Unlock()
		case f.GetPushWipe() != nil:
			c.remoteWipe(ctx, cn, f.GetPushWipe().GetCommand())
		case f.GetPushDisconnect() != nil:
			d := f.GetPushDisconnect()
			reason = &ServerError{Code: codeOf(d.GetCode()), Message: d.GetMessage()}
		}
	}
	c.connMu.Lock()
	if c.conn == cn {
		c.conn = nil
	}
	c.connMu.Unlock()
	if !cn.closing.Load() {
		// Dropped, not closed by this client: the next connection
		// tries another address first (a relay that was stopped, say).
		c.passOver(cn)
	}
	if reason == nil {
		cn.mu.Lock()
		reason = cn.err
		cn.mu.Unlock()
	}
	c.emit(Event{Type: EventDisconnected, Err: reason})
}

// remoteWipe executes a root-signed wipe command: the keys and data go at
// once, then the device confirms with a signature made before the wipe.
func (c *Client) remoteWipe(ctx context.Context, cn *conn, raw []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.wiped || c.dev == nil {
		return
	}
	cmd, err := identity.DecodeWipeCommand(raw)
	if err == nil {
		err = cmd.Verify(c.dev.net.Root, c.dev.id)
	}
	if err != nil {
		c.log.Warn("ignoring an invalid wipe command", "err", err)
		return
	}
	conf := identity.ConfirmWipe(ed25519.NewKeyFromSeed(c.sigPriv), cmd)
	rep, err := c.wipeLocked("remote wipe")
	if err != nil {
		c.log.Error("remote wipe incomplete", "err", err)
	} else {
		c.log.Info("device wiped by remote command", "files", rep.Removed)
	}
	_, err = cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_WipeConfirm{WipeConfirm: &anomv1.WipeConfirm{Command: conf.Command, Signature: conf.Signature}}})
	if err != nil {
		c.log.Warn("confirming wipe", "err", err)
	}
	cn.close()
}

// refillKeyPackages uploads one-time key packages when the server is
// likely to run short, and a last-resort one at activation.
func (c *Client) refillKeyPackages(ctx context.Context, cn *conn, withLastResort bool) error {
	target := c.keyPackageTarget()
	have := int(c.dev.kpOnServer)
	if have*2 > target && !withLastResort {
		return nil
	}
	cert, err := identity.DecodeDeviceCertificate(c.dev.cert)
	if err != nil {
		return fmt.Errorf("%w: own certificate: %w", ErrCorrupt, err)
	}
	cred := cert.Credential()
	var kps [][]byte
	var lastResort []byte
	n := target - have
	if withLastResort {
		n++
	}
	for i := 0; i < n; i++ {
		b, err := mls.NewKeyPackage(c.suite(), cred, c.sigPriv, mls.KeyPackageOptions{Lifetime: c.kpLifetime(cert)}, c.rand, c.now())
		if err != nil {
			return fmt.Errorf("making key packages: %w", err)
		}
		// The private half is stored before the public half is shared.
		if err := c.v.put(kpRecName(mls.KeyPackageRef(c.suite(), b.KeyPackage)), b.Encode()); err != nil {
			return fmt.Errorf("storing key package: %w", err)
		}
		msg := (&mls.MLSMessage{Version: mls.ProtocolMLS10, WireFormat: mls.WireKeyPackage, KeyPackage: b.KeyPackage}).Encode()
		if withLastResort && i == n-1 {
			lastResort = msg
		} else {
			kps = append(kps, msg)
		}
	}
	resp, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_UploadKeyPackages{UploadKeyPackages: &anomv1.UploadKeyPackages{KeyPackages: kps, LastResort: lastResort}}})
	if err != nil {
		return fmt.Errorf("uploading key packages: %w", err)
	}
	if st := resp.GetKeyPackagesStored(); st != nil {
		c.dev.kpOnServer = st.GetAvailable()
	} else {
		c.dev.kpOnServer = uint32(have + len(kps))
	}
	return c.saveDevice()
}

// kpLifetime keeps key packages within the certificate's validity.
func (c *Client) kpLifetime(cert *identity.DeviceCertificate) time.Duration {
	left := cert.NotAfter.Sub(c.now())
	const max = 90 * 24 * time.Hour
	if left <= 0 || left > max {
		return max
	}
	return left
}

func (c *Client) saveDevice() error {
	if err := c.v.put(recDevice, c.dev.encode()); err != nil {
		return fmt.Errorf("saving device: %w", err)
	}
	return nil
}

// watchLog moves the monitor to the log's current head (checking it is
// consistent with the last one seen) and scans the new entries for
// devices under this user's name, alerting the user of each; it returns
// them.
func (c *Client) watchLog(ctx context.Context, cn *conn) ([]ownDevice, error) {
	if err := c.updateHead(ctx, cn); err != nil {
		return nil, err
	}
	st := c.monitor.State()
	var entries [][]byte
	for from := st.Scanned; from < st.Head.Size; {
		resp, err := cn.call(ctx, logEntriesRequest(from, st.Head.Size))
		if err != nil {
			return nil, fmt.Errorf("reading the transparency log: %w", err)
		}
		le := logEntriesOf(resp)
		if le == nil || le.GetStart() != from || len(le.GetEntries()) == 0 {
			return nil, fmt.Errorf("reading the transparency log: %w: bad entries answer", ErrProtocol)
		}
		entries = append(entries, le.GetEntries()...)
		from += uint64(len(le.GetEntries()))
	}
	matches, err := c.monitor.Scan(entries, c.dev.username)
	if err != nil {
		return nil, fmt.Errorf("scanning the transparency log: %w", err)
	}
	if err := c.noteRevocations(entries); err != nil {
		return nil, err
	}
	news := c.newOwnDevices(matches)
	return news, c.saveMonitor()
}

// updateHead fetches the current signed tree head with a consistency proof
// from the monitor's head.
func (c *Client) updateHead(ctx context.Context, cn *conn) error {
	from := c.monitor.Head().Size
	resp, err := cn.call(ctx, treeHeadRequest(from))
	if err != nil {
		return fmt.Errorf("getting the log head: %w", err)
	}
	th := treeHeadOf(resp)
	if th == nil {
		return fmt.Errorf("getting the log head: %w: no head", ErrProtocol)
	}
	var sth translog.SignedTreeHead
	if err := sth.UnmarshalBinary(th.GetTreeHead()); err != nil {
		return fmt.Errorf("getting the log head: %w", err)
	}
	proof := translog.ConsistencyProof{Size1: from, Size2: sth.Size}
	if len(th.GetConsistencyProof()) > 0 {
		if err := proof.UnmarshalBinary(th.GetConsistencyProof()); err != nil {
			return fmt.Errorf("getting the log head: %w", err)
		}
	}
	if err := c.monitor.Update(sth, proof); err != nil {
		if errors.Is(err, translog.ErrFork) {
			c.log.Error("the transparency log forked", "err", err)
		}
		return fmt.Errorf("checking the log head: %w", err)
	}
	return c.saveMonitor()
}

func (c *Client) saveMonitor() error {
	b, err := c.monitor.State().MarshalBinary()
	if err != nil {
		return fmt.Errorf("saving log monitor: %w", err)
	}
	return c.v.put(recMonitor, b)
}

// Sync brings a connected device up to date again: key packages, the
// transparency log (alerting on a new device under this user's name) and
// every group's messages. Connect does it once; an application calls it
// periodically to keep watching the log.
func (c *Client) Sync(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	cn, err := c.ready()
	if err != nil {
		return err
	}
	if err := c.v.touch(c.now()); err != nil {
		return err
	}
	return c.syncLocked(ctx, cn, false)
}

// EscrowPolicy returns the network's signed escrow policy as the server
// serves it (empty when none is set) and its transparency-log index. The
// caller decodes and verifies it (package escrow) to show it to the user.
func (c *Client) EscrowPolicy(ctx context.Context) ([]byte, uint64, error) {
	cn, err := c.current()
	if err != nil {
		return nil, 0, err
	}
	resp, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_GetEscrowPolicy{GetEscrowPolicy: &anomv1.GetEscrowPolicy{}}})
	if err != nil {
		return nil, 0, fmt.Errorf("getting the escrow policy: %w", err)
	}
	p := resp.GetEscrowPolicy_()
	if p == nil {
		return nil, 0, fmt.Errorf("getting the escrow policy: %w", ErrProtocol)
	}
	return p.GetPolicy(), p.GetLogIndex(), nil
}
