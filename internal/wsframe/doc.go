// Package wsframe is anom's WebSocket framing (RFC 6455) over
// github.com/gobwas/ws's header codec and masking, for both ends: the
// server reads its clients' masked frames and writes unmasked ones; the
// load generator, a client, does the opposite. The handshake stays with
// each end (net/http on the server, ws.Dialer in the load generator);
// this package reads and writes the frames that follow it.
//
// Messages are read straight from the connection (a TLS connection
// buffers one record) into pooled buffers, which the caller holds only
// while it handles a message and gives back with PutBuffer.
package wsframe
