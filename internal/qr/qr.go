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

// decodeGrey reads a QR code in w×h luminance bytes. The detector
// estimates the code's size from its finder patterns and, for about one
// code in a hundred, gets it wrong at a given scale even in a perfect
// image (gozxing: "dimension = 47" for a 53-module code): a frame that
// fails is read again at 1/2 and 3/4 of its size and turned a quarter,
// where the estimate comes out otherwise, so that a code held still (or
// a test's fake camera) is not unreadable for ever. Measured on invites
// drawn as the tests' camera shows them: one read missed 32 of 3,000,
// these four 0 (TestDecodeCameraFrames).
func decodeGrey(grey []byte, w, h int) (string, error) {
	text, err := decodeOnce(grey, w, h)
	if !errors.Is(err, ErrNotFound) {
		return text, err
	}
	for _, f := range [][2]int{{1, 2}, {3, 4}} {
		sw, sh := w*f[0]/f[1], h*f[0]/f[1]
		if sw < 21 || sh < 21 { // smaller than the smallest code
			continue
		}
		if text, serr := decodeOnce(shrink(grey, w, h, sw, sh), sw, sh); serr == nil {
			return text, nil
		}
	}
	if text, rerr := decodeOnce(rotate(grey, w, h), h, w); rerr == nil {
		return text, nil
	}
	return "", err
}

// rotate turns w×h luminance bytes a quarter turn clockwise (h×w).
func rotate(grey []byte, w, h int) []byte {
	out := make([]byte, w*h)
	for y := range h {
		for x := range w {
			out[x*h+h-1-y] = grey[y*w+x]
		}
	}
	return out
}

// shrink scales w×h luminance bytes down to sw×sh, each pixel the mean of
// the source pixels it covers.
func shrink(grey []byte, w, h, sw, sh int) []byte {
	out := make([]byte, sw*sh)
	for y := range sh {
		y0, y1 := y*h/sh, max((y+1)*h/sh, y*h/sh+1)
		for x := range sw {
			x0, x1 := x*w/sw, max((x+1)*w/sw, x*w/sw+1)
			sum, n := 0, 0
			for yy := y0; yy < y1; yy++ {
				for xx := x0; xx < x1; xx++ {
					sum += int(grey[yy*w+xx])
					n++
				}
			}
			out[y*sw+x] = byte((sum + n/2) / n)
		}
	}
	return out
}

// decodeOnce reads a QR code in w×h luminance bytes, once.
func decodeOnce(grey []byte, w, h int) (string, error) {
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
