// Package qr encodes text as QR codes and reads them back from camera
// frames, for the web app's invites, safety numbers and pairing codes. It
// wraps github.com/makiuchi-d/gozxing's QR encoder and reader (a port of
// ZXing); nothing here is cryptographic: what a code carries is checked
// by whoever parses it (client.ParseInvite, client.ParseSafetyCode).
package qr

import (
	"errors"
	"fmt"
	"image"

	"github.com/makiuchi-d/gozxing"
	"github.com/makiuchi-d/gozxing/qrcode"
	"github.com/makiuchi-d/gozxing/qrcode/decoder"
	"github.com/makiuchi-d/gozxing/qrcode/encoder"
)

// MaxText bounds what Encode takes: a version-40 code at level M holds
// 2331 bytes; an invite is a few hundred.
const MaxText = 2048

// MaxPixels bounds the frame Decode reads (4096×4096): a camera frame
// scaled down by the page is far smaller.
const MaxPixels = 4096 * 4096

// ErrNotFound is returned by Decode when the frame shows no readable QR
// code (none in view, blurred, too small): the next frame may.
var ErrNotFound = errors.New("qr: no QR code found in the image")

// Matrix is a QR code's modules, without the quiet zone around it (draw
// at least 4 light modules of margin).
type Matrix struct {
	// Size is the number of modules a side.
	Size int
	// Dark holds Size×Size values, row after row: 1 a dark module, 0 a
	// light one.
	Dark []byte
}

// At reports whether the module at column x, row y is dark.
func (m Matrix) At(x, y int) bool {
	return m.Dark[y*m.Size+x] == 1
}

// Encode makes the QR code of text (error correction level M: about 15 %
// of the code may be unreadable, for a photo of a screen).
func Encode(text string) (Matrix, error) {
	if text == "" {
		return Matrix{}, errors.New("qr: nothing to encode")
	}
	if len(text) > MaxText {
		return Matrix{}, fmt.Errorf("qr: %d bytes of text, at most %d fit", len(text), MaxText)
	}
	hints := map[gozxing.EncodeHintType]any{gozxing.EncodeHintType_CHARACTER_SET: "UTF-8"}
	code, err := encoder.Encoder_encode(text, decoder.ErrorCorrectionLevel_M, hints)
	if err != nil {
		return Matrix{}, fmt.Errorf("qr: encoding: %w", err)
	}
	bm := code.GetMatrix()
	n := bm.GetWidth()
	m := Matrix{Size: n, Dark: make([]byte, n*n)}
	for y := range n {
		for x := range n {
			if bm.Get(x, y) == 1 {
				m.Dark[y*n+x] = 1
			}
		}
	}
	return m, nil
}

// Decode reads a QR code in an RGBA image of w×h pixels (4 bytes a pixel,
// row after row, as a canvas's ImageData holds it) and returns its text.
// It returns ErrNotFound when it finds none.
func Decode(rgba []byte, w, h int) (string, error) {
	if w <= 0 || h <= 0 || w*h > MaxPixels {
		return "", fmt.Errorf("qr: an image of %d×%d pixels: want 1 to %d pixels", w, h, MaxPixels)
	}
	if len(rgba) != 4*w*h {
		return "", fmt.Errorf("qr: %d bytes for %d×%d RGBA pixels, want %d", len(rgba), w, h, 4*w*h)
	}
	grey := make([]byte, w*h)
	for i := range grey {
		p := rgba[4*i : 4*i+4]
		// Luma (BT.601) of the pixel over white, by its alpha.
		l := (299*int(p[0]) + 587*int(p[1]) + 114*int(p[2])) / 1000
		grey[i] = byte((l*int(p[3]) + 255*(255-int(p[3]))) / 255)
	}
	return decodeGrey(grey, w, h)
}

// decodeGrey reads a QR code in w×h luminance bytes.
func decodeGrey(grey []byte, w, h int) (string, error) {
	src, err := gozxing.NewPlanarYUVLuminanceSource(grey, w, h, 0, 0, w, h, false)
	if err != nil {
		return "", fmt.Errorf("qr: %w", err)
	}
	bmp, err := gozxing.NewBinaryBitmap(gozxing.NewHybridBinarizer(src))
	if err != nil {
		return "", fmt.Errorf("qr: %w", err)
	}
	hints := map[gozxing.DecodeHintType]any{gozxing.DecodeHintType_TRY_HARDER: true}
	res, err := qrcode.NewQRCodeReader().Decode(bmp, hints)
	if err != nil {
		var nf gozxing.NotFoundException
		var ce gozxing.ChecksumException
		var fe gozxing.FormatException
		if errors.As(err, &nf) || errors.As(err, &ce) || errors.As(err, &fe) {
			return "", fmt.Errorf("%w (%v)", ErrNotFound, err)
		}
		return "", fmt.Errorf("qr: reading: %w", err)
	}
	return res.GetText(), nil
}

// Image draws the code black on white, scale pixels a module, with margin
// light modules around it.
func (m Matrix) Image(scale, margin int) *image.Gray {
	side := (m.Size + 2*margin) * scale
	img := image.NewGray(image.Rect(0, 0, side, side))
	for i := range img.Pix {
		img.Pix[i] = 0xff
	}
	for y := range m.Size {
		for x := range m.Size {
			if !m.At(x, y) {
				continue
			}
			for dy := range scale {
				row := ((y+margin)*scale + dy) * img.Stride
				for dx := range scale {
					img.Pix[row+(x+margin)*scale+dx] = 0
				}
			}
		}
	}
	return img
}
