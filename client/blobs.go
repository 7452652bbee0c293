package client

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"anom/identity"
	anomv1 "anom/proto/anom/v1"
)

// ErrBlob is returned when the server refuses a blob upload or download.
var ErrBlob = errors.New("client: blob transfer failed")

// SendAttachment encrypts size bytes from r on the device, uploads the
// encrypted blob and sends its reference to the group as an attachment
// (or, with a non-zero voice duration, as a voice note). It returns the
// content sent.
func (c *Client) SendAttachment(ctx context.Context, groupID []byte, r io.Reader, size int64, mime, name string, voice time.Duration) (*Content, error) {
	ref, err := c.upload(ctx, r, size)
	if err != nil {
		return nil, err
	}
	ref.MIME, ref.Name = mime, name
	content := &Content{Kind: KindAttachment, Attachment: ref}
	if voice > 0 {
		content.Kind, content.Duration = KindVoice, voice
	}
	if err := c.Send(ctx, groupID, content); err != nil {
		return nil, err
	}
	return content, nil
}

// upload encrypts size bytes from r on the device under a fresh key and
// uploads the blob; the reference it returns has no MIME type or name.
func (c *Client) upload(ctx context.Context, r io.Reader, size int64) (*AttachmentRef, error) {
	c.mu.Lock()
	cn, err := c.ready()
	var hc *http.Client
	var addr string
	if err == nil {
		hc, addr = c.hc, cn.addr
	}
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if size < 0 || size > MaxAttachmentSize {
		return nil, fmt.Errorf("sending attachment: %w: size %d", ErrBadContent, size)
	}
	sealed := SealedSize(uint64(size))
	resp, err := cn.call(ctx, &anomv1.Frame{Body: &anomv1.Frame_RequestBlobUpload{RequestBlobUpload: &anomv1.RequestBlobUpload{Size: sealed}}})
	if err != nil {
		return nil, fmt.Errorf("requesting upload: %w", err)
	}
	grant := resp.GetBlobGrant()
	if grant == nil || grant.GetId() == "" {
		return nil, fmt.Errorf("requesting upload: %w: no grant", ErrProtocol)
	}
	pr, pw := io.Pipe()
	type result struct {
		ref *AttachmentRef
		err error
	}
	done := make(chan result, 1)
	go func() {
		ref, err := SealAttachment(pw, io.LimitReader(r, size), c.rand)
		if err == nil && ref.Size != uint64(size) {
			err = fmt.Errorf("sending attachment: source had %d bytes, not %d", ref.Size, size)
		}
		pw.CloseWithError(err)
		done <- result{ref, err}
	}()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, blobURL(addr, grant.GetId()), pr)
	if err != nil {
		pr.CloseWithError(err)
		<-done
		return nil, fmt.Errorf("uploading attachment: %w", err)
	}
	req.ContentLength = int64(sealed)
	req.Header.Set("Authorization", "Bearer "+grant.GetPutToken())
	req.Header.Set("Content-Type", "application/octet-stream")
	hresp, err := hc.Do(req)
	pr.CloseWithError(io.ErrClosedPipe)
	res := <-done
	if err != nil {
		return nil, fmt.Errorf("uploading attachment: %w", err)
	}
	io.Copy(io.Discard, io.LimitReader(hresp.Body, 4096))
	hresp.Body.Close()
	if res.err != nil {
		return nil, fmt.Errorf("encrypting attachment: %w", res.err)
	}
	if hresp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("uploading attachment: %w: HTTP %d", ErrBlob, hresp.StatusCode)
	}
	ref := res.ref
	ref.BlobID, ref.Token = grant.GetId(), grant.GetGetToken()
	return ref, nil
}

// blobAddr is the address blobs are fetched from: the live connection's,
// else the one the next connection tries first. c.mu is held.
func (c *Client) blobAddr() string {
	if cn := c.live(); cn != nil {
		return cn.addr
	}
	addrs := c.dev.net.addresses()
	return addrs[int(c.nextAddr.Load())%len(addrs)]
}

// FetchAttachment downloads the blob of ref and writes the decrypted file
// to w, checking it (see OpenAttachment: on error, discard what was
// written).
func (c *Client) FetchAttachment(ctx context.Context, ref *AttachmentRef, w io.Writer) error {
	c.mu.Lock()
	if c.wiped || c.dev == nil {
		c.mu.Unlock()
		return ErrNotActivated
	}
	hc, addr, dev := c.hc, c.blobAddr(), c.dev.id
	priv := ed25519.NewKeyFromSeed(c.sigPriv)
	c.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, blobURL(addr, ref.BlobID), nil)
	if err != nil {
		return fmt.Errorf("fetching attachment: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+ref.Token)
	// The server serves blobs only to devices it still counts as valid.
	req.Header.Set(identity.BlobAuthHeader, identity.SignBlobRequest(priv, dev, http.MethodGet, ref.BlobID, c.now()))
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("fetching attachment: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("fetching attachment: %w: HTTP %d", ErrBlob, resp.StatusCode)
	}
	return OpenAttachment(w, io.LimitReader(resp.Body, int64(SealedSize(ref.Size))+1), ref)
}

func blobURL(addr, id string) string {
	return "https://" + addr + "/v1/blobs/" + url.PathEscape(id)
}
