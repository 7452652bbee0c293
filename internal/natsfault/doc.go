// Package natsfault holds the fault tests of a cluster of anom servers on
// NATS JetStream (issue 11): two in-process anom servers share a JetStream
// store kept by three nats-server processes (package natstest), devices
// send to their groups through both, a NATS node is killed with SIGKILL
// mid-run and restarted, and every message the servers acknowledged must
// be in its group's log exactly once, for every member. The package has
// only tests.
package natsfault
