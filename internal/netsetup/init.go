package netsetup

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"strings"
	"time"

	"anom/identity"
)

// DefaultName is the name of a network made without --name.
const DefaultName = "anom"

// rootReadme is the note in the root folder.
const rootReadme = `This is the root folder of an anom network: the network root key
(root.key) and the TLS CA's private key (ca.key).

The server does not need it to run. In a real deployment this folder lives
on an offline machine (or offline media) and is brought out only to:
certify distributors (anom admin distributor add), certify admin keys
(anom admin adminkey), sign escrow policies (anom admin escrow init), and
rotate the server's online keys (anom admin rotate --role
directory|countersign). Keep it off the server.
Whoever holds root.key can certify directory keys and so mint device
certificates for any user.
`

// Init makes a network in d: the root key and the TLS CA key in the
// root folder (Dir.RootDir), the TLS CA certificate and server certificate for
// hosts (localhost and 127.0.0.1 always), the server's online keys
// certified by the root, the blob key, an empty escrow policy and
// network.json, and beside d the admin folder (Dir.AdminDir) with an admin key
// the root certified; it prints what it made to w.
func Init(d Dir, name string, hosts []string, w io.Writer) error {
	if err := os.MkdirAll(d.Path(), 0o700); err != nil {
		return err
	}
	// The root and admin folders must never be inside the data directory.
	for _, dir := range []string{d.RootDir(), d.AdminDir()} {
		if err := RefuseInside(dir, d.Path()); err != nil {
			return fmt.Errorf("making the network: %w", err)
		}
	}
	if err := os.MkdirAll(d.RootDir(), 0o700); err != nil {
		return err
	}
	if err := os.Chmod(d.RootDir(), 0o700); err != nil {
		return err
	}
	if err := WriteSecret(d.RootPath("README"), []byte(rootReadme)); err != nil {
		return err
	}
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		return err
	}
	if err := WriteSecret(d.RootPath("root.key"), []byte(hex.EncodeToString(root.Seed())+"\n")); err != nil {
		return err
	}
	if err := WriteSecret(d.Path("root.pub"), []byte(hex.EncodeToString(root.Public())+"\n")); err != nil {
		return err
	}
	adminCert, err := MakeAdminKey(d.AdminDir(), "admin", root, DefaultAdminValidity, rand.Reader)
	if err != nil {
		return err
	}
	hostList := []string{"localhost", "127.0.0.1"}
	for _, h := range hosts {
		if h = strings.TrimSpace(h); h != "" && h != "localhost" && h != "127.0.0.1" {
			hostList = append(hostList, h)
		}
	}
	caDER, err := writeTLS(d, hostList)
	if err != nil {
		return err
	}
	blobKey := make([]byte, 32)
	if _, err := rand.Read(blobKey); err != nil {
		return err
	}
	if err := WriteSecret(d.Path("blob.key"), blobKey); err != nil {
		return err
	}
	// Made here, not by the server on its first start, so that servers
	// given copies of this directory (a cluster on NATS) share one token
	// and the archive can pull through any of them.
	if err := MakeArchiveToken(d); err != nil {
		return err
	}
	// admin escrow init fills this in with the signed policy.
	if err := WriteSecret(d.Path("escrow-policy"), nil); err != nil {
		return err
	}
	for _, r := range []OnlineRole{DirectoryRole, CountersignRole} {
		if _, err := d.CertifyOnlineKey(root, r, name, 1); err != nil {
			return err
		}
	}
	caSum := sha256.Sum256(caDER)
	ni := NetworkInfo{Name: name, Hostnames: hostList, RootFingerprint: root.Public().Fingerprint(),
		RootPublicKey: hex.EncodeToString(root.Public()), CAFingerprint: hex.EncodeToString(caSum[:])}
	b, _ := json.MarshalIndent(ni, "", "  ")
	if err := WriteSecret(d.Path("network.json"), append(b, '\n')); err != nil {
		return err
	}
	fmt.Fprintf(w, "network %q made in %s\n", name, d.Path())
	fmt.Fprintf(w, "  root folder     %s: root key and TLS CA key (keep it offline; the server does not need it)\n", d.RootDir())
	fmt.Fprintf(w, "  online keys     %s, %s (certified by the root)\n", d.Path("directory.key"), d.Path("countersign.key"))
	fmt.Fprintf(w, "  TLS CA          %s\n", d.Path("ca.crt"))
	fmt.Fprintf(w, "  server cert     %s for %s\n", d.Path("server.crt"), strings.Join(hostList, ", "))
	fmt.Fprintf(w, "  escrow policy   %s (empty: no escrow policy set yet)\n", d.Path("escrow-policy"))
	fmt.Fprintf(w, "  network info    %s (what devices pin: CA fingerprint and root public key)\n", d.Path("network.json"))
	fmt.Fprintf(w, "  admin key       %s (0700, outside the data directory), certified until %s: anom admin signs requests to the running server with it\n", d.AdminDir(), adminCert.NotAfter.UTC().Format(time.DateOnly))
	fmt.Fprintf(w, "root key          %s (the invite's root=)\n", ni.RootPublicKey)
	fmt.Fprintf(w, "CA fingerprint    %s (the invite's ca=)\n", ni.CAFingerprint)
	return nil
}

// ArchiveTokenFile is the data directory's file of the bearer token with
// which the archive pulls the server's escrow outbox.
const ArchiveTokenFile = "archive.token"

// MakeArchiveToken writes a new random archive token (64 hex digits) to
// d's ArchiveTokenFile, refusing to overwrite one.
func MakeArchiveToken(d Dir) error {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return err
	}
	return WriteSecret(d.Path(ArchiveTokenFile), []byte(hex.EncodeToString(raw)+"\n"))
}

// writeTLS writes a CA and a server certificate signed by it.
func writeTLS(d Dir, hosts []string) ([]byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	ca := &x509.Certificate{
		SerialNumber: randSerial(), Subject: pkix.Name{CommonName: "anom network CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, IsCA: true, BasicConstraintsValid: true, MaxPathLenZero: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("making CA: %w", err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leaf := &x509.Certificate{
		SerialNumber: randSerial(), Subject: pkix.Name{CommonName: hosts[0]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(2, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			leaf.IPAddresses = append(leaf.IPAddresses, ip)
		} else {
			leaf.DNSNames = append(leaf.DNSNames, h)
		}
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return nil, fmt.Errorf("making server certificate: %w", err)
	}
	for _, f := range []struct {
		name, typ string
		der       []byte
		key       *ecdsa.PrivateKey
	}{{"ca", "CERTIFICATE", caDER, caKey}, {"server", "CERTIFICATE", leafDER, srvKey}} {
		if err := WriteSecret(d.Path(f.name+".crt"), pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der})); err != nil {
			return nil, err
		}
		kb, err := x509.MarshalECPrivateKey(f.key)
		if err != nil {
			return nil, err
		}
		keyPath := d.Path(f.name + ".key")
		if f.name == "ca" {
			keyPath = d.RootPath("ca.key") // the CA key stays with the root
		}
		if err := WriteSecret(keyPath, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})); err != nil {
			return nil, err
		}
	}
	return caDER, nil
}

func randSerial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
