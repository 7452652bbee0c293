package loadgen

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"sync/atomic"
	"time"

	"anom/identity"
	"anom/internal/server"
	anomv1 "anom/proto/anom/v1"
)

// Device is an activated device: its certificate and signature key.
type Device struct {
	Cert *identity.DeviceCertificate
	Key  ed25519.PrivateKey
	cert []byte
}

func newDevice(cert *identity.DeviceCertificate, key ed25519.PrivateKey) *Device {
	return &Device{Cert: cert, Key: key, cert: cert.Encode()}
}

// Connect opens connection number i for the device and authenticates it
// (Hello, then Auth with the signed challenge). Every push is decoded and
// given to onPush (nil ignores them).
func (d *Device) Connect(ctx context.Context, t *Target, i int, onPush func(*anomv1.Frame)) (*Conn, error) {
	return d.ConnectWith(ctx, t, i, Handlers{Frame: onPush})
}

// ConnectWith is Connect with the given push handlers.
func (d *Device) ConnectWith(ctx context.Context, t *Target, i int, h Handlers) (*Conn, error) {
	c, err := DialWith(ctx, t, i, h)
	if err != nil {
		return nil, err
	}
	ch, err := hello(ctx, c)
	if err != nil {
		c.Close()
		return nil, err
	}
	_, err = c.Call(ctx, &anomv1.Frame{Body: &anomv1.Frame_Auth{Auth: &anomv1.Auth{
		Certificate: d.cert, Signature: identity.SignAuthResponse(d.Key, t.serverName(), ch),
	}}})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("authenticating %s: %w", d.Cert.DeviceID, err)
	}
	return c, nil
}

func hello(ctx context.Context, c *Conn) ([]byte, error) {
	r, err := c.Call(ctx, &anomv1.Frame{Body: &anomv1.Frame_Hello{Hello: &anomv1.Hello{Version: uint32(anomv1.ProtocolVersion_PROTOCOL_VERSION_1)}}})
	if err != nil {
		return nil, fmt.Errorf("hello: %w", err)
	}
	return r.GetChallenge().GetNonce(), nil
}

// ActivateOverWire activates a new device with code on connection number
// i, as a client does, and returns it with its authenticated connection.
func ActivateOverWire(ctx context.Context, t *Target, i int, code identity.ActivationCode, username string, onPush func(*anomv1.Frame)) (*Device, *Conn, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	c, err := Dial(ctx, t, i, onPush)
	if err != nil {
		return nil, nil, err
	}
	ch, err := hello(ctx, c)
	if err != nil {
		c.Close()
		return nil, nil, err
	}
	r, err := c.Call(ctx, &anomv1.Frame{Body: &anomv1.Frame_Activate{Activate: &anomv1.Activate{
		Code: code.String(), Username: username, SignatureKey: pub, Signature: identity.SignAuthResponse(priv, t.serverName(), ch),
	}}})
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("activating %s: %w", username, err)
	}
	cert, err := identity.DecodeDeviceCertificate(r.GetAuthenticated().GetCertificate())
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("activating %s: decoding certificate: %w", username, err)
	}
	return newDevice(cert, priv), c, nil
}

// Distributor makes a distributor certified by the network root, for
// issuing the load's activation codes.
func Distributor(root *identity.RootKey, name string, quota uint32) (*identity.DistributorKey, *identity.DistributorCertificate, error) {
	dk, err := identity.GenerateDistributorKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	dc := &identity.DistributorCertificate{Name: name, Key: dk.Public(), Quota: quota, Serial: uint64(time.Now().UnixNano())}
	if err := root.SignDistributorCertificate(dc); err != nil {
		return nil, nil, fmt.Errorf("certifying distributor: %w", err)
	}
	return dk, dc, nil
}

// CodeBatches issues n activation codes of one month in signed batches.
func CodeBatches(dk *identity.DistributorKey, name string, n int) ([]identity.ActivationCode, []*identity.CodeBatch, error) {
	var codes []identity.ActivationCode
	var batches []*identity.CodeBatch
	for len(codes) < n {
		b := &identity.CodeBatch{Distributor: name, Months: 1, Expires: time.Now().Add(24 * time.Hour)}
		for len(b.Hashes) < identity.MaxBatchCodes && len(codes) < n {
			c, err := identity.NewActivationCode(rand.Reader)
			if err != nil {
				return nil, nil, err
			}
			codes = append(codes, c)
			b.Hashes = append(b.Hashes, c.Hash())
		}
		if err := dk.SignCodeBatch(b); err != nil {
			return nil, nil, fmt.Errorf("signing code batch: %w", err)
		}
		batches = append(batches, b)
	}
	return codes, batches, nil
}

// ProvisionInProcess activates n devices through the server's Go API
// (codes from a distributor of its own, certificates appended to the
// transparency log as in any activation), with workers concurrent
// activations. progress, if not nil, is called with the count done.
func ProvisionInProcess(ctx context.Context, srv *server.Server, root *identity.RootKey, prefix string, n, workers int, progress func(int)) ([]*Device, error) {
	name := "bench-" + prefix
	dk, dc, err := Distributor(root, name, uint32(n))
	if err != nil {
		return nil, err
	}
	if err := srv.AddDistributor(ctx, dc); err != nil {
		return nil, fmt.Errorf("adding distributor: %w", err)
	}
	codes, batches, err := CodeBatches(dk, name, n)
	if err != nil {
		return nil, err
	}
	for _, b := range batches {
		if err := srv.ImportCodes(ctx, b); err != nil {
			return nil, fmt.Errorf("importing codes: %w", err)
		}
	}
	devs := make([]*Device, n)
	var done atomic.Int64
	err = Parallel(ctx, n, workers, func(ctx context.Context, i int) error {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		cert, _, err := srv.Activate(ctx, codes[i], fmt.Sprintf("%s-%d", prefix, i), pub)
		if err != nil {
			return fmt.Errorf("activating device %d: %w", i, err)
		}
		devs[i] = newDevice(cert, priv)
		if d := done.Add(1); progress != nil {
			progress(int(d))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return devs, nil
}
