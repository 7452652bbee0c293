package main

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
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
	register(command{name: "archive", summary: "escrow archive: serve (ingest), open a warrant, report, verify-audit, anchors, key", run: runArchive})
}

// An archive's data directory:
//
//	store/        Pebble store (records, index, audit log)
//	archive.key   the key that signs its audit heads (hex seed), 0600
//	archive.pub   its public half: the custodians' --archive-key
//	client.crt, client.key  its client certificate for the custodians (anom archive pin prints its pin)

func runArchive(ctx context.Context, args []string) error {
	if len(args) == 0 || isHelp(args[0]) {
		return fmt.Errorf("usage: anom archive serve|open|report|verify-audit|anchors|key|pin [flags]")
	}
	fs := flag.NewFlagSet("archive "+args[0], flag.ContinueOnError)
	data := fs.String("data", "archive-data", "data directory")
	switch args[0] {
	case "pin":
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
	case "key":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		key, err := archiveKey(*data)
		if err != nil {
			return err
		}
		fmt.Println(hex.EncodeToString(key.Public().(ed25519.PublicKey)))
		return nil
	case "anchors":
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return anchorsCmd(ctx, filepath.Join(*data, "store"), archive.AuditBucket)
	case "verify-audit":
		var anchors, heads listFlag
		fs.Var(&anchors, "anchors", "file of the archive's signed heads anchored elsewhere (anom custodian anchors) (repeatable)")
		fs.Var(&heads, "head", "a signed head of the archive's log kept from earlier (a report's signed head) (repeatable)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		hs, err := readHeads(anchors, heads)
		if err != nil {
			return err
		}
		var pub ed25519.PublicKey
		if len(hs) > 0 {
			if pub, err = archivePublic(*data); err != nil {
				return err
			}
		}
		return verifyAuditCmd(ctx, filepath.Join(*data, "store"), archive.AuditBucket, custodian.ArchiveService, pub, hs)
	}
	var eps listFlag
	fs.Var(&eps, "custodian", "custodian endpoint https://HOST:PORT#PIN (repeatable)")
	endpoints := func() ([]custodian.Endpoint, error) {
		var out []custodian.Endpoint
		for _, s := range eps {
			ep, err := custodian.ParseEndpoint(s)
			if err != nil {
				return nil, err
			}
			out = append(out, ep)
		}
		return out, nil
	}
	policy := fs.String("policy", "", "signed escrow policy file (required)")
	rootPub := fs.String("root", "", "network root public key file, root.pub (required)")
	source := fs.String("source", "", "URL of the escrow source, the server (serve: its outbox; open: its transparency-log proofs)")
	sourceCA := fs.String("source-ca", "", "PEM CA to trust for an https source (default: system roots)")
	sourceToken := fs.String("source-token", "", "file holding the bearer token of the source (the server's DATA/archive.token)")
	// src is the server as the archive reaches it, once flags are parsed.
	src := func() (*archive.HTTPSource, error) {
		if *source == "" {
			return nil, fmt.Errorf("--source is required")
		}
		hc := &http.Client{Timeout: time.Minute}
		if *sourceCA != "" {
			b, err := os.ReadFile(*sourceCA)
			if err != nil {
				return nil, err
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(b) {
				return nil, fmt.Errorf("%s: no certificate", *sourceCA)
			}
			hc.Transport = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}
		}
		if *sourceToken != "" {
			b, err := os.ReadFile(*sourceToken)
			if err != nil {
				return nil, err
			}
			hc.Transport = bearerTransport{token: strings.TrimSpace(string(b)), base: hc.Transport}
		}
		return &archive.HTTPSource{URL: *source, Client: hc}, nil
	}
	open := func(log archive.LogProver) (*archive.Archive, func(), error) {
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
		if err := os.MkdirAll(*data, 0o700); err != nil {
			return nil, nil, err
		}
		key, err := archiveKey(*data)
		if err != nil {
			return nil, nil, err
		}
		// The client certificate the custodians pin: open, report and
		// serve (anchoring) all talk to them.
		clientCert, err := archiveCertificate(*data)
		if err != nil {
			return nil, nil, err
		}
		st, err := pebble.Open(filepath.Join(*data, "store"), pebble.Options{})
		if err != nil {
			return nil, nil, err
		}
		a, err := archive.New(ctx, archive.Config{Store: st, Policy: sp, Root: root, Log: log, Key: key,
			Attachments: contentAttachments{}, Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)), ClientCertificate: &clientCert})
		if err != nil {
			st.Close()
			return nil, nil, err
		}
		return a, func() { st.Close() }, nil
	}
	switch args[0] {
	case "serve":
		poll := fs.Duration("poll", time.Second, "wait between empty pulls")
		batch := fs.Int("batch", 500, "items per pull")
		interval := fs.Duration("anchor-interval", archive.DefaultAnchorInterval, "how often to cross-sign audit heads with the --custodian custodians")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		s, err := src()
		if err != nil {
			return err
		}
		custs, err := endpoints()
		if err != nil {
			return err
		}
		a, closeFn, err := open(s)
		if err != nil {
			return err
		}
		defer closeFn()
		fmt.Printf("archive ingesting from %s, cursor %d\n", *source, a.Cursor())
		fmt.Printf("archive audit key %s (the custodians' --archive-key)\n", hex.EncodeToString(a.PublicKey()))
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		anchorErr := make(chan error, 1)
		if len(custs) > 0 {
			go func() {
				err := a.RunAnchors(ctx, custs, *interval)
				anchorErr <- err
				if err != nil {
					cancel()
				}
			}()
		} else {
			fmt.Fprintln(os.Stderr, "no --custodian: the audit log is anchored only when a warrant is opened")
			anchorErr <- nil
		}
		err = a.Ingest(ctx, s, archive.IngestOptions{Batch: *batch, Poll: *poll})
		cancel()
		if aerr := <-anchorErr; aerr != nil {
			return fmt.Errorf("anchoring the audit log: %w", aerr)
		}
		if errors.Is(err, context.Canceled) {
			return nil
		}
		return err
	case "open":
		warrantFile := fs.String("warrant", "", "signed warrant file (required)")
		out := fs.String("out", "", "output directory, new or empty (required)")
		chunk := fs.Int("chunk", archive.DefaultChunk, "records per custodian request")
		maxReq := fs.Int64("max-request", custodian.DefaultMaxRequestBytes, "largest custodian request in bytes (at most the custodians' --max-request)")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
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
		custs, err := endpoints()
		if err != nil {
			return err
		}
		s, err := src()
		if err != nil {
			return fmt.Errorf("%w: open asks the server for the log proofs custodians require", err)
		}
		a, closeFn, err := open(s)
		if err != nil {
			return err
		}
		defer closeFn()
		progress := func(opened, failed, total int) {
			fmt.Fprintf(os.Stderr, "\ropening warrant %s: %d of %d records opened, %d failed", sw.Warrant.ID, opened, total, failed)
		}
		rep, err := a.Open(ctx, sw, custs, *out, archive.OpenOptions{Chunk: *chunk, MaxRequestBytes: *maxReq, Progress: progress})
		fmt.Fprintln(os.Stderr)
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
		custs, err := endpoints()
		if err != nil {
			return err
		}
		a, closeFn, err := open(nil)
		if err != nil {
			return err
		}
		defer closeFn()
		rep, err := a.Report(ctx, p, archive.ReportOptions{Custodians: custs})
		if err != nil {
			return err
		}
		if *asJSON {
			b, _ := json.MarshalIndent(rep, "", "  ")
			fmt.Println(string(b))
		} else {
			fmt.Print(rep.Text())
		}
		if n := len(rep.Discrepancies); n > 0 {
			return fmt.Errorf("the custodians' audit logs disagree with the archive's: %d discrepancies", n)
		}
		return nil
	}
	return fmt.Errorf("unknown archive verb %q (serve, open, report, verify-audit, anchors, key, pin)", args[0])
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
// attachment reference (attachment, photo or voice note) names the blob
// and carries the key and hash that open it; a photo's thumbnail, when
// not inline, is a second blob with its own.
type contentAttachments struct{}

func (contentAttachments) Attachments(contentType uint16, plaintext []byte) ([]archive.Attachment, error) {
	c, err := client.UnmarshalContent(plaintext)
	if err != nil || c.Attachment == nil {
		return nil, nil // not client content, or no attachment
	}
	refs := []*client.AttachmentRef{c.Attachment}
	if t := c.Attachment.Thumbnail; t != nil && t.Ref != nil {
		refs = append(refs, t.Ref)
	}
	var out []archive.Attachment
	for _, ref := range refs {
		out = append(out, archive.Attachment{BlobID: ref.BlobID, Open: func(dst io.Writer, src io.Reader) error {
			return client.OpenAttachment(dst, src, ref)
		}})
	}
	return out, nil
}
