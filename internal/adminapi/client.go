package adminapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"anom/identity"
)

// Client sends signed requests to a server's admin API over HTTPS.
type Client struct {
	// Addr is the server's host:port. Required.
	Addr string
	// Roots are the CAs the server's TLS certificate must chain to (the
	// network CA). Required.
	Roots *x509.CertPool
	// ServerName, if not "", is the name checked in the server's TLS
	// certificate instead of Addr's host.
	ServerName string
	// Key and Cert are the administrator key and its root-signed
	// certificate. Required.
	Key  *identity.AdminKey
	Cert *identity.OnlineKeyCertificate
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Rand draws nonces; nil means crypto/rand.
	Rand io.Reader
	// Timeout bounds one exchange; 0 means 30 seconds.
	Timeout time.Duration

	hc *http.Client
}

// Do signs and sends a request of op with body and returns the server's
// answer. A refusal returns the answer and a *RemoteError (its Err); a
// request the server never answered returns a nil answer and an error.
func (c *Client) Do(ctx context.Context, op Op, body []byte) (*Answer, error) {
	now, rnd := c.Now, c.Rand
	if now == nil {
		now = time.Now
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	req, err := NewRequest(op, body, c.Key, c.Cert, now(), rnd)
	if err != nil {
		return nil, err
	}
	return c.Send(ctx, req.Encode())
}

// Send sends an encoded request as it is (Do makes one) and returns the
// server's answer, as Do does.
func (c *Client) Send(ctx context.Context, raw []byte) (*Answer, error) {
	if c.hc == nil {
		if c.Roots == nil || c.Addr == "" {
			return nil, errors.New("admin client: Addr and Roots are required")
		}
		timeout := c.Timeout
		if timeout <= 0 {
			timeout = 30 * time.Second
		}
		c.hc = &http.Client{Timeout: timeout, Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: c.Roots, ServerName: c.ServerName, MinVersion: tls.VersionTLS13},
			ForceAttemptHTTP2: true,
		}}
	}
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+c.Addr+Path, bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("sending admin request: %w", err)
	}
	hr.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("sending admin request to %s: %w", c.Addr, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxAnswerSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s: %w", c.Addr, err)
	}
	a, err := DecodeAnswer(b)
	if err != nil {
		return nil, fmt.Errorf("reading the answer of %s (HTTP %d): %w", c.Addr, resp.StatusCode, err)
	}
	if (resp.StatusCode == http.StatusOK) != a.OK() {
		return nil, fmt.Errorf("reading the answer of %s: %w: HTTP %d with code %s", c.Addr, ErrBadAnswer, resp.StatusCode, a.Code)
	}
	return a, a.Err()
}
