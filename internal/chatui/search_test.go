package chatui

import (
	"crypto/rand"
	"regexp"
	"strings"
	"testing"

	"anom/identity"
)

// TestSessionSearchDelete: /search lists the current chat's messages
// holding a text in any case, with their times and numbers; /delete N
// deletes one's own message #N for every member, and refuses another's.
func TestSessionSearchDelete(t *testing.T) {
	root, err := identity.GenerateRootKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	n := newTestNet(t, root, nil)
	alice, bob := n.user("alice"), n.user("bob")
	mustContain(t, alice.do("/search x"), "error: no chat selected")
	mustContain(t, alice.do("/delete 1"), "error: no chat selected")
	alice.do("/chat bob")
	bob.wait("* you were added to chat 1 alice")
	alice.do("Lunch at noon?")
	bob.wait("] alice: Lunch at noon?")
	bob.do("yes, LUNCH it is")
	alice.wait("] bob: yes, LUNCH it is")
	alice.do("typo: dinner")
	bob.wait("] alice: typo: dinner")

	got := alice.do("/search lunch")
	mustContain(t, got, `Messages of chat 1 bob holding "lunch":`)
	lines := regexp.MustCompile(`(?m)^#(\d+) \[\d\d:\d\d:\d\d\] (alice|bob): (.*)$`).FindAllStringSubmatch(got, -1)
	if len(lines) != 2 || lines[0][3] != "Lunch at noon?" || lines[1][3] != "yes, LUNCH it is" {
		t.Fatalf("/search lunch showed:\n%s", got)
	}
	mustContain(t, alice.do("/search breakfast"), `(no message of chat 1 bob holds "breakfast")`)

	// Bob's message is not alice's to delete; an unknown number is refused.
	mustContain(t, alice.do("/delete "+lines[1][1]), "error: message #"+lines[1][1]+" is bob's: only its sender can delete it")
	mustContain(t, alice.do("/delete 9999"), "error: no message #9999 in chat 1 bob")

	typo := regexp.MustCompile(`(?m)^#(\d+) \[[0-9:]+\] alice: typo: dinner$`).FindStringSubmatch(alice.do("/search TYPO"))
	if typo == nil {
		t.Fatalf("/search TYPO found nothing:\n%s", alice.out.String())
	}
	mustContain(t, alice.do("/delete "+typo[1]), "* message #"+typo[1]+" of chat 1 bob deleted for everyone")
	bob.wait("] alice deleted a message")
	for _, u := range []*user{alice, bob} {
		h := u.do("/history")
		if strings.Contains(h, "typo: dinner") {
			t.Errorf("%s's history still shows the deleted message:\n%s", u.name, h)
		}
		mustContain(t, h, "] alice: Lunch at noon?", "] bob: yes, LUNCH it is")
	}
	mustContain(t, alice.do("/search typo"), `(no message of chat 1 bob holds "typo")`)
	mustContain(t, alice.do("/help delete"), "/delete N\n", "for everyone")
	mustContain(t, alice.do("/help search"), "/search WORDS\n")
}
