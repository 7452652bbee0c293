package qr

import (
	"encoding/hex"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math/rand/v2"
	"strings"
	"testing"
)

// rgbaOf returns img's pixels as Decode takes them.
func rgbaOf(img image.Image) ([]byte, int, int) {
	b := img.Bounds()
	out := image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
	draw.Draw(out, out.Bounds(), img, b.Min, draw.Src)
	return out.Pix, b.Dx(), b.Dy()
}

// TestRoundTrip encodes texts like the app's (an invite, a safety code, a
// pairing code, UTF-8) and reads them back from drawn images, also one
// set inside a bigger grey frame as a camera sees a screen.
func TestRoundTrip(t *testing.T) {
	texts := []string{
		"anom://127.0.0.1:44321?ca=" + strings.Repeat("3f", 32) + "&root=" + strings.Repeat("a7", 32),
		"anom-safety:1:" + strings.Repeat("0123456789abcdef", 4) + ":" + strings.Repeat("12345", 12),
		"7KQ2-M9XD-4T",
		"grüße 👋",
		strings.Repeat("x", MaxText),
	}
	for _, text := range texts {
		m, err := Encode(text)
		if err != nil {
			t.Fatalf("Encode(%.20q…): %v", text, err)
		}
		if len(m.Dark) != m.Size*m.Size || m.Size < 21 || (m.Size-17)%4 != 0 {
			t.Fatalf("Encode(%.20q…): a %d-module matrix of %d values", text, m.Size, len(m.Dark))
		}
		pix, w, h := rgbaOf(m.Image(4, 4))
		got, err := Decode(pix, w, h)
		if err != nil {
			t.Fatalf("Decode of %.20q…: %v", text, err)
		}
		if got != text {
			t.Fatalf("Decode = %.40q…, want %.40q…", got, text)
		}
	}
	// A code in a corner of a grey frame, as a camera frame shows it.
	m, err := Encode(texts[0])
	if err != nil {
		t.Fatal(err)
	}
	code := m.Image(3, 4)
	frame := image.NewRGBA(image.Rect(0, 0, 640, 480))
	draw.Draw(frame, frame.Bounds(), image.NewUniform(color.Gray{Y: 0x80}), image.Point{}, draw.Src)
	draw.Draw(frame, code.Bounds().Add(image.Pt(300, 60)), code, image.Point{}, draw.Src)
	got, err := Decode(frame.Pix, 640, 480)
	if err != nil || got != texts[0] {
		t.Fatalf("Decode of a framed code = %q, %v", got, err)
	}
}

func TestEncodeLimits(t *testing.T) {
	if _, err := Encode(""); err == nil {
		t.Error("Encode of nothing succeeded")
	}
	if _, err := Encode(strings.Repeat("x", MaxText+1)); err == nil {
		t.Error("Encode of more than MaxText succeeded")
	}
}

// TestDecodeNothing: frames without a code give ErrNotFound; malformed
// arguments a plain error.
func TestDecodeNothing(t *testing.T) {
	blank := make([]byte, 4*64*48)
	if _, err := Decode(blank, 64, 48); !errors.Is(err, ErrNotFound) {
		t.Errorf("Decode of a blank frame: %v, want ErrNotFound", err)
	}
	noise := make([]byte, 4*64*48)
	for i := range noise {
		noise[i] = byte(i * 7919 >> 3)
	}
	if _, err := Decode(noise, 64, 48); !errors.Is(err, ErrNotFound) {
		t.Errorf("Decode of noise: %v, want ErrNotFound", err)
	}
	for _, c := range []struct{ n, w, h int }{{0, 0, 0}, {4, 2, 1}, {-4, -1, 1}, {16, 4097, 4097}} {
		if c.n < 0 {
			c.n = 0
		}
		if _, err := Decode(make([]byte, c.n), c.w, c.h); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("Decode(%d bytes, %d×%d): %v, want an argument error", c.n, c.w, c.h, err)
		}
	}
}

// FuzzDecode feeds arbitrary pixels to the reader: it must return text or
// an error, never panic.
func FuzzDecode(f *testing.F) {
	m, err := Encode("anom-fuzz")
	if err != nil {
		f.Fatal(err)
	}
	pix, w, _ := rgbaOf(m.Image(1, 2))
	f.Add(pix, uint8(w))
	f.Add(make([]byte, 4*30*30), uint8(30))
	f.Fuzz(func(t *testing.T, pix []byte, w uint8) {
		if w == 0 || len(pix) < 4*int(w) {
			return
		}
		h := len(pix) / 4 / int(w)
		pix = pix[:4*int(w)*h]
		text, err := Decode(pix, int(w), h)
		if err == nil && text == "" {
			t.Error("Decode returned no text and no error")
		}
	})
}

// TestDecodeCameraFrames reads 400 invites (fixed pseudo-random keys and
// ports) each drawn as the browser tests' fake camera shows one: scaled by
// whole pixels to about 440 pixels, centred in a white 640×480 frame.
// Every one must be read: a code the detector cannot size at one scale is
// read at another (decodeGrey). With a single read, about 1 in 100 of
// these perfect frames were unreadable whatever the number of tries,
// which failed CI's QR tests now and then. Under the race detector only
// the frames that needed more than one read when this was written, and a
// few others, are read (all 400 take 40 s there).
func TestDecodeCameraFrames(t *testing.T) {
	hard := map[int]bool{120: true, 235: true, 238: true, 245: true, 254: true, 301: true}
	rng := rand.New(rand.NewPCG(7, 11))
	key := func() string {
		b := make([]byte, 32)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return hex.EncodeToString(b)
	}
	const n, camW, camH = 400, 640, 480
	once := 0
	for i := range n {
		text := fmt.Sprintf("anom://127.0.0.1:%d?ca=%s&root=%s", 30000+rng.IntN(30000), key(), key())
		if raceOn && !hard[i] && i >= 10 {
			continue
		}
		m, err := Encode(text)
		if err != nil {
			t.Fatal(err)
		}
		code := m.Image(1, 4)
		side := code.Bounds().Dx()
		k := 440 / side
		frame := image.NewRGBA(image.Rect(0, 0, camW, camH))
		draw.Draw(frame, frame.Bounds(), image.White, image.Point{}, draw.Src)
		x0, y0 := (camW-side*k)/2, (camH-side*k)/2
		for y := range side * k {
			for x := range side * k {
				frame.Set(x0+x, y0+y, code.At(x/k, y/k))
			}
		}
		got, err := Decode(frame.Pix, camW, camH)
		if err != nil || got != text {
			t.Errorf("invite %d (%d modules, %d pixels a module): %q, %v", i, m.Size, k, got, err)
		}
		grey := make([]byte, camW*camH)
		for j := range grey {
			grey[j] = frame.Pix[4*j]
		}
		if _, err := decodeOnce(grey, camW, camH); err != nil {
			once++
			t.Logf("invite %d needed more than one read", i)
		}
	}
	t.Logf("%d of %d frames needed more than one read", once, n)
}
