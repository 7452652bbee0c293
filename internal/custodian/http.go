package custodian

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"anom/escrow"
	"anom/internal/translog"
)

// AnswerPath is the API path: POST an encoded Envelope, get an encoded
// escrow.Response (200) or a JSON refusal {code, record, message}.
const AnswerPath = "/v1/answer"

// TreeHeadPath is the API path of the custodian's tracked tree head: GET
// it for the encoded translog.SignedTreeHead (200) or nothing (204) before
// the first request. The archive asks the server for a consistency proof
// from its size.
const TreeHeadPath = "/v1/tree-head"

// maxResponseBytes bounds a response the archive reads: 10,000 partials of
// 32 bytes, a proof and a signature fit easily.
const maxResponseBytes = 1 << 20

// Handler is the custodian's HTTP API.
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+AnswerPath, func(w http.ResponseWriter, r *http.Request) {
		// Serve refuses other clients in the TLS handshake already; this
		// holds for any server the handler is mounted in.
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || !pinned(r.TLS.PeerCertificates[0].Raw, s.cfg.ArchivePins) {
			writeUnauthenticated(w)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.cfg.MaxRequestBytes))
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				err = fmt.Errorf("%w: over %d bytes", ErrTooLarge, mbe.Limit)
				if aerr := s.audit(r.Context(), "request", requestAudit{From: r.RemoteAddr, Bytes: int(mbe.Limit), Error: err.Error()}); aerr != nil {
					writeError(w, aerr)
					return
				}
				err = s.refuse(r.Context(), requestAudit{}, err)
			}
			writeError(w, err)
			return
		}
		out, err := s.Handle(r.Context(), r.RemoteAddr, body)
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(out)
	})
	mux.HandleFunc("GET "+TreeHeadPath, func(w http.ResponseWriter, r *http.Request) {
		h := s.TrackedHead()
		if h.Signature == nil {
			w.WriteHeader(http.StatusNoContent)
			return
		}
		b, err := h.MarshalBinary()
		if err != nil {
			writeError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(b)
	})
	s.auditRoutes(mux)
	// Every route (answers, the tracked tree head, audit anchors and
	// counts) is for pinned archives only, whatever server the handler is
	// mounted in; Serve refuses other clients in the TLS handshake already.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 || !pinned(r.TLS.PeerCertificates[0].Raw, s.cfg.ArchivePins) {
			writeUnauthenticated(w)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// writeUnauthenticated refuses a request from a client that is not a
// pinned archive, without reading its body.
func writeUnauthenticated(w http.ResponseWriter) {
	b, _ := json.Marshal(errorBody{Code: CodeUnauthenticated, Record: -1, Message: ErrUnauthenticated.Error()})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, err error) {
	code, status := codeOf(err)
	eb := errorBody{Code: code, Record: -1, Message: err.Error()}
	var re *escrow.RecordError
	if errors.As(err, &re) {
		eb.Record = re.Index
	}
	if code == CodeInternal {
		eb.Message = "internal error"
	}
	b, _ := json.Marshal(eb)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// Client asks one custodian for answers. The zero value is not usable; use
// NewClient.
type Client struct {
	Endpoint Endpoint
	http     *http.Client
}

// NewClient makes a client that trusts only the endpoint's pinned
// certificate (or its CA pool) and authenticates with the archive's client
// certificate, which the custodian pins. timeout bounds one request; zero
// means 5 minutes.
func NewClient(ep Endpoint, client tls.Certificate, timeout time.Duration) (*Client, error) {
	tc, err := ep.TLSConfig(client)
	if err != nil {
		return nil, err
	}
	if timeout == 0 {
		timeout = 5 * time.Minute
	}
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true, TLSHandshakeTimeout: 10 * time.Second}
	return &Client{Endpoint: ep, http: &http.Client{Transport: tr, Timeout: timeout}}, nil
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// TrackedSize returns the size of the tree head the custodian tracks (0
// before its first request). It is not verified: it only tells the archive
// which consistency proof to bring; the custodian checks it.
func (c *Client) TrackedSize(ctx context.Context) (uint64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.Endpoint.URL+TreeHeadPath, nil)
	if err != nil {
		return 0, fmt.Errorf("asking custodian %s for its tree head: %w", c.Endpoint.URL, err)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, fmt.Errorf("asking custodian %s for its tree head: %w: %w", c.Endpoint.URL, ErrUnavailable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, translog.MaxSignedTreeHeadSize+1))
	if err != nil {
		return 0, fmt.Errorf("asking custodian %s for its tree head: %w: %w", c.Endpoint.URL, ErrUnavailable, err)
	}
	switch resp.StatusCode {
	case http.StatusNoContent:
		return 0, nil
	case http.StatusOK:
	default:
		return 0, fmt.Errorf("asking custodian %s for its tree head: %w: HTTP %d", c.Endpoint.URL, ErrUnavailable, resp.StatusCode)
	}
	var h translog.SignedTreeHead
	if err := h.UnmarshalBinary(b); err != nil {
		return 0, fmt.Errorf("asking custodian %s for its tree head: %w: %w", c.Endpoint.URL, ErrMalformed, err)
	}
	return h.Size, nil
}

// Ask posts the envelope and returns the custodian's decoded response. It
// does not verify the response (escrow.VerifyResponse does). A refusal is a
// *RefusedError; a custodian that cannot be reached or fails is
// ErrUnavailable.
func (c *Client) Ask(ctx context.Context, env *Envelope) (*escrow.Response, error) {
	body, err := env.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("asking custodian %s: %w", c.Endpoint.URL, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint.URL+AnswerPath, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("asking custodian %s: %w", c.Endpoint.URL, err)
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("asking custodian %s: %w: %w", c.Endpoint.URL, ErrUnavailable, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("asking custodian %s: %w: %w", c.Endpoint.URL, ErrUnavailable, err)
	}
	if len(b) > maxResponseBytes {
		return nil, fmt.Errorf("asking custodian %s: %w: answer over %d bytes", c.Endpoint.URL, ErrMalformed, maxResponseBytes)
	}
	if resp.StatusCode != http.StatusOK {
		var eb errorBody
		if err := json.Unmarshal(b, &eb); err != nil || eb.Code == "" {
			return nil, fmt.Errorf("asking custodian %s: %w: HTTP %d", c.Endpoint.URL, ErrUnavailable, resp.StatusCode)
		}
		if eb.Code == CodeInternal {
			return nil, fmt.Errorf("asking custodian %s: %w: %s", c.Endpoint.URL, ErrUnavailable, eb.Message)
		}
		return nil, &RefusedError{Custodian: c.Endpoint.URL, Code: eb.Code, Record: eb.Record, Message: eb.Message}
	}
	r, err := escrow.ParseResponse(b)
	if err != nil {
		return nil, fmt.Errorf("asking custodian %s: %w: %w", c.Endpoint.URL, ErrMalformed, err)
	}
	return r, nil
}

// serverTLS is used by Serve: it requires a client certificate whose pin
// is one of pins, so an anonymous or unknown client fails the handshake.
func serverTLS(cert tls.Certificate, pins [][32]byte) *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS13,
		// Self-signed: the pin replaces chain checks.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 || !pinned(raw[0], pins) {
				return ErrUnauthenticated
			}
			return nil
		},
	}
}

// Serve serves the API over TLS on the listener until ctx ends.
func (s *Service) Serve(ctx context.Context, ln net.Listener, cert tls.Certificate) error {
	srv := &http.Server{
		Handler:           s.Handler(),
		TLSConfig:         serverTLS(cert, s.cfg.ArchivePins),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       5 * time.Minute,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(tls.NewListener(ln, srv.TLSConfig)) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serving custodian API: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		return nil
	}
}
