module anom

go 1.26.0

require (
	github.com/cloudflare/circl v1.6.5
	golang.org/x/crypto v0.58.0
)

require (
	github.com/bwesterb/go-ristretto v1.2.4 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
