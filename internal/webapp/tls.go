package webapp

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// OperatorTLS returns network, the server's TLS configuration with the
// certificate the network's CA issued, changed to present op, an
// operator's certificate from a CA browsers trust, to browsers.
//
// Browsers do not trust the network's own CA; native clients trust only
// it (they pin it). The two are told apart by the name a client asks for
// (SNI): a client asking for a name of op's certificate that the
// network's certificate does not carry gets op; every other client gets
// the network's certificate, as before: one asking for a name of the
// network's certificate, or for another name, or for none (an IP
// address, which native clients may dial). So the web origin needs a DNS
// name of its own, one the network's certificate does not carry.
//
// network must present one certificate. It is an error when op's
// certificate names no DNS name that the network's lacks: no browser
// could then be given it. The names op is served for are returned.
func OperatorTLS(network *tls.Config, op tls.Certificate) (*tls.Config, []string, error) {
	if network == nil || len(network.Certificates) != 1 {
		return nil, nil, errors.New("operator certificate: the network's TLS configuration must present one certificate")
	}
	netCert := network.Certificates[0]
	netLeaf, err := leafOf(netCert)
	if err != nil {
		return nil, nil, fmt.Errorf("the network's certificate: %w", err)
	}
	opLeaf, err := leafOf(op)
	if err != nil {
		return nil, nil, fmt.Errorf("operator certificate: %w", err)
	}
	var names []string
	for _, n := range opLeaf.DNSNames {
		if netLeaf.VerifyHostname(strings.ReplaceAll(n, "*", "x")) != nil {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return nil, nil, fmt.Errorf("operator certificate names %s, none of them a DNS name the network's own certificate lacks (%s): give the web origin a DNS name of its own",
			certNames(opLeaf), certNames(netLeaf))
	}
	netCert.Leaf, op.Leaf = netLeaf, opLeaf
	c := network.Clone()
	c.Certificates = nil
	c.GetCertificate = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if sni := hello.ServerName; sni != "" && netLeaf.VerifyHostname(sni) != nil && opLeaf.VerifyHostname(sni) == nil {
			return &op, nil
		}
		return &netCert, nil
	}
	return c, names, nil
}

func leafOf(c tls.Certificate) (*x509.Certificate, error) {
	if c.Leaf != nil {
		return c.Leaf, nil
	}
	if len(c.Certificate) == 0 {
		return nil, errors.New("no certificate")
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("parsing: %w", err)
	}
	return leaf, nil
}

func certNames(c *x509.Certificate) string {
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no name"
	}
	return strings.Join(names, ", ")
}
