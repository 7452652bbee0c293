package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// readmeSection returns the text of the README section headed title, up to
// the next heading of its level.
func readmeSection(t *testing.T, readme, title string) string {
	t.Helper()
	i := strings.Index(readme, "\n## "+title+"\n")
	if i < 0 {
		t.Fatalf("README has no section %q", title)
	}
	rest := readme[i+len(title)+5:]
	if j := strings.Index(rest, "\n## "); j >= 0 {
		rest = rest[:j]
	}
	return rest
}

// TestReadmeCommands: the README's shell blocks run the binary the same
// way, ./anom (built once in the set-up), and the set-up and the quick
// start together start one server.
func TestReadmeCommands(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	blocks := regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(readme, -1)
	if len(blocks) == 0 {
		t.Fatal("no shell blocks")
	}
	bare := regexp.MustCompile(`(^|[\s$(])anom `)
	for _, bl := range blocks {
		for _, line := range strings.Split(bl[1], "\n") {
			cmd, _, _ := strings.Cut(line, "#")
			cmd = strings.ReplaceAll(cmd, "go build -o anom ", "go build ")
			if strings.Contains(cmd, "go run ./cmd/anom") || bare.MatchString(strings.ReplaceAll(cmd, "./anom ", "")) {
				t.Errorf("README runs anom other than as ./anom: %q", line)
			}
		}
	}
	// The set-up's block and the quick start's blocks (the set-up's later
	// blocks restart a server stopped for maintenance).
	servers := 0
	setup := regexp.MustCompile("(?s)```sh\n(.*?)```").FindStringSubmatch(readmeSection(t, readme, "Set-up"))
	if setup == nil {
		t.Fatal("no set-up block")
	}
	servers += strings.Count(setup[1], "anom server")
	for _, bl := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(readmeSection(t, readme, "Quick start: a network on one machine"), -1) {
		servers += strings.Count(bl[1], "anom server")
	}
	if servers != 1 {
		t.Errorf("the set-up and the quick start start %d servers, want 1", servers)
	}
	if !strings.Contains(readmeSection(t, readme, "Set-up"), "go build -o anom ./cmd/anom") {
		t.Error("the set-up does not build ./anom")
	}
}
