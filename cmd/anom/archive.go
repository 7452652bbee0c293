package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"anom/client"
	"anom/escrow"
	"anom/internal/archive"
	"anom/internal/custodian"
	"anom/internal/store/pebble"
)

func init() {
	register(command{name: "archive", summary: "escrow archive: serve (ingest), open a warrant, report, verify-audit", run: runArchive})
}

// An archive's data directory holds its Pebble store in store/ and its
// client certificate for the custodians (client.crt, client.key).

func runArchive(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: anom archive serve|open|report|verify-audit|pin [flags]")
	}
	fs := flag.NewFlagSet("archive "+args[0], flag.ContinueOnError)
	data := fs.String("data", "archive-data", "data directory")
	if args[0] == "pin" {
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		cert, err := archiveCertificate(*data)
		if err != nil {
			return err
		}
		pin := custodian.Pin(cert)
		fmt.Printf("%x\n", pin)
		fmt.Fprintf(os.Stderr, "the archive's client certificate is %s; give its pin to every custodian: anom custodian --archive-pin %x ...\n",
			filepath.Join(*data, custodian.ClientCertFile), pin)
		return nil
	}
	policy := fs.String("policy", "", "signed escrow policy file (required)")
	rootPub := fs.String("root", "", "network root public key file, root.pub (required)")
	var serverKeys listFlag
	fs.Var(&serverKeys, "server-key", "countersigning key of a server: ID=HEX (repeatable); records not countersigned by one are rejected")
	var clientCert *tls.Certificate // for open
	open := func() (*archive.Archive, func(), error) {
		if *policy == "" || *rootPub == "" {
			return nil, nil, fmt.Errorf("--policy and --root are required")
		}
		root, err := readRootPublic(*rootPub)
		if err != nil {
			return nil, nil, err
		}
		sp, err := readSignedPolicy(*policy, root)
		if err != nil {
			return nil, nil, err
		}
		sk, err := parseServerKeys(serverKeys)
		if err != nil {
			return nil, nil, err
		}
		if err := os.MkdirAll(*data, 0o700); err != nil {
			return nil, nil, err
		}
		st, err := pebble.Open(filepath.Join(*data, "store"), pebble.Options{})
		if err != nil {
			return nil, nil, err
		}
		a, err := archive.New(ctx, archive.Config{Store: st, Policy: sp, Root: root, ServerKeys: sk,
			Attachments: contentAttachments{}, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)), ClientCertificate: clientCert})
		if err != nil {
			st.Close()
			return nil, nil, err
		}
		return a, func() { st.Close() }, nil
	}
	switch args[0] {
	case "serve":
		source := fs.String("source", "", "URL of the escrow source (the server's outbox) (required)")
		sourceCA := fs.String("source-ca", "", "PEM CA to trust for an https source (default: system roots)")
		sourceToken := fs.String("source-token", "", "file holding the bearer token of the source (the server's DATA/archive.token)")
		poll := fs.Duration("poll", time.Second, "wait between empty pulls")
		batch := fs.Int("batch", 500, "items per pull")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		if *source == "" {
			return fmt.Errorf("--source is required")
		}
		hc := &http.Client{Timeout: time.Minute}
		if *sourceCA != "" {
			b, err := os.ReadFile(*sourceCA)
			if err != nil {
				return err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(b) {
				return fmt.Errorf("%s: no certificate", *sourceCA)
			}
			hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}
		}
		if *sourceToken != "" {
			b, err := os.ReadFile(*sourceToken)
			if err != nil {
				return err
			}
			hc.Transport = bearerTransport{token: strings.TrimSpace(string(b)), base: hc.Transport}
		}
		a, closeFn, err := open()
		if err != nil {
			return err
		}
		defer closeFn()
		fmt.Printf("archive ingesting from %s, cursor %d\n", *source, a.Cursor())
		err = a.Ingest(ctx, &archive.HTTPSource{URL: *source, Client: hc}, archive.IngestOptions{Batch: *batch, Poll: *poll})
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	case "open":
		warrantFile := fs.String("warrant", "", "signed warrant file (required)")
		out := fs.String("out", "", "output directory, new or empty (required)")
		var eps listFlag
		fs.Var(&eps, "custodian", "custodian endpoint https://HOST:PORT#PIN (repeatable)")
		chunk := fs.Int("chunk", archive.DefaultChunk, "records per custodian request")
		maxReq := fs.Int64("max-request", custodian.DefaultMaxRequestBytes, "largest custodian request in bytes (at most the custodians' --max-request)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		cert, err := archiveCertificate(*data)
		if err != nil {
			return err
		}
		clientCert = &cert
		if *warrantFile == "" || *out == "" || len(eps) == 0 {
			return fmt.Errorf("--warrant, --out and --custodian are required")
		}
		wb, err := os.ReadFile(*warrantFile)
		if err != nil {
			return err
		}
		sw, err := escrow.ParseSignedWarrant(wb)
		if err != nil {
			return err
		}
		var endpoints []custodian.Endpoint
		for _, s := range eps {
			ep, err := custodian.ParseEndpoint(s)
			if err != nil {
				return err
			}
			endpoints = append(endpoints, ep)
		}
		a, closeFn, err := open()
		if err != nil {
			return err
		}
		defer closeFn()
		rep, err := a.Open(ctx, sw, endpoints, *out, archive.OpenOptions{Chunk: *chunk, MaxRequestBytes: *maxReq})
		if rep != nil {
			fmt.Printf("warrant %s: %d records opened, %d failed; report in %s\n", sw.Warrant.ID, len(rep.Records), len(rep.Failed), filepath.Join(*out, "report.txt"))
		}
		return err
	case "report":
		from := fs.String("from", "", "period start (RFC 3339 or YYYY-MM-DD)")
		to := fs.String("to", "", "period end")
		asJSON := fs.Bool("json", false, "print JSON instead of text")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		var p archive.Period
		var err error
		if *from != "" {
			if p.From, err = parseWhen(*from); err != nil {
				return err
			}
		}
		if *to != "" {
			if p.To, err = parseWhen(*to); err != nil {
				return err
			}
		}
		a, closeFn, err := open()
		if err != nil {
			return err
		}
		defer closeFn()
		rep, err := a.Report(ctx, p)
		if err != nil {
			return err
		}
		if *asJSON {
			b, _ := json.MarshalIndent(rep, "", "  ")
			fmt.Println(string(b))
			return nil
		}
		fmt.Print(rep.Text())
		return nil
	case "verify-audit":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return verifyAuditCmd(ctx, filepath.Join(*data, "store"), archive.AuditBucket)
	}
	return fmt.Errorf("unknown archive verb %q (serve, open, report, verify-audit, pin)", args[0])
}

// archiveCertificate loads the archive's client certificate from its data
// directory, making it there on first use. Custodians answer only the
// archives whose certificate they pin (anom archive pin prints it).
func archiveCertificate(dir string) (tls.Certificate, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tls.Certificate{}, err
	}
	return custodian.LoadOrCreateClientCertificate(dir, time.Now())
}

// contentAttachments reads the client's content format: a message with an
// attachment reference (attachment or voice note) names the blob and
// carries the key and hash that open it.
type contentAttachments struct{}

func (contentAttachments) Attachments(contentType uint16, plaintext []byte) ([]archive.Attachment, error) {
	c, err := client.UnmarshalContent(plaintext)
	if err != nil || c.Attachment == nil {
		return nil, nil // not client content, or no attachment
	}
	ref := c.Attachment
	return []archive.Attachment{{BlobID: ref.BlobID, Open: func(dst io.Writer, src io.Reader) error {
		return client.OpenAttachment(dst, src, ref)
	}}}, nil
}
