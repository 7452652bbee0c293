package clocktest

import (
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	var c Clock
	if d := time.Since(c.Now()); d < 0 || d > time.Minute {
		t.Fatalf("zero clock is %v off the real one", d)
	}
	c.Advance(time.Hour)
	c.Advance(time.Hour)
	if d := time.Until(c.Now()); d < 2*time.Hour-time.Minute || d > 2*time.Hour {
		t.Fatalf("after two hours' advance the clock is %v ahead", d)
	}
	c.Set(-time.Hour)
	if d := time.Since(c.Now()); d < time.Hour || d > time.Hour+time.Minute {
		t.Fatalf("set an hour back, the clock is %v behind", d)
	}
}
