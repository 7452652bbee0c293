// Package web holds the web app's static files: the calculator in front
// of the messenger (index.html, the JavaScript modules, the style sheet,
// the manifest, the service worker and the icons) and, once
// scripts/build has built it, the messenger's WebAssembly in dist/
// (precompressed; dist/ is not in git but for a placeholder). The
// package internal/webapp serves them.
package web

import (
	"embed"
	"io/fs"
)

//go:embed index.html *.js *.css manifest.webmanifest icons all:dist
var files embed.FS

// Files returns the app's files, rooted at the app's directory
// (index.html, dist/anom.wasm.br, ...).
func Files() fs.FS { return files }
