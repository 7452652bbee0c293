// Command precompress writes FILE.gz and FILE.br beside each FILE given
// (or into -out), the forms the server sends to browsers that accept them,
// and prints the sizes. scripts/build runs it on the web app's
// WebAssembly.
package main

import (
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/andybalholm/brotli"
)

func main() {
	out := flag.String("out", "", "directory to write the compressed files to (default: beside each file)")
	level := flag.Int("brotli", 9, "brotli quality, 0 to 11 (11 is smallest and much slower)")
	keep := flag.Bool("keep", false, "also copy the uncompressed file to -out")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: precompress [-out DIR] [-brotli Q] [-keep] FILE...")
		os.Exit(2)
	}
	for _, f := range flag.Args() {
		if err := compress(f, *out, *level, *keep); err != nil {
			fmt.Fprintf(os.Stderr, "precompress: %v\n", err)
			os.Exit(1)
		}
	}
}

func compress(file, out string, level int, keep bool) error {
	raw, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	dst := file
	if out != "" {
		dst = filepath.Join(out, filepath.Base(file))
		if keep {
			if err := os.WriteFile(dst, raw, 0o644); err != nil {
				return err
			}
		}
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(raw); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("gzip %s: %w", file, err)
	}
	var br bytes.Buffer
	bw := brotli.NewWriterLevel(&br, level)
	if _, err := bw.Write(raw); err != nil {
		return err
	}
	if err := bw.Close(); err != nil {
		return fmt.Errorf("brotli %s: %w", file, err)
	}
	if err := os.WriteFile(dst+".gz", gz.Bytes(), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(dst+".br", br.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Printf("%s: %d bytes, gzip %d (%.0f%%), brotli %d (%.0f%%)\n", filepath.Base(file), len(raw),
		gz.Len(), 100*float64(gz.Len())/float64(len(raw)), br.Len(), 100*float64(br.Len())/float64(len(raw)))
	return nil
}
