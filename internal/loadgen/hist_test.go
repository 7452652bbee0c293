package loadgen

import (
	"testing"
	"time"
)

func TestHistQuantiles(t *testing.T) {
	tests := []struct {
		name    string
		values  []time.Duration
		q       float64
		want    time.Duration
		slackPc float64
	}{
		{"empty", nil, 0.5, 0, 0},
		{"one", []time.Duration{5 * time.Millisecond}, 0.99, 5 * time.Millisecond, 0},
		{"small exact", []time.Duration{3 * time.Microsecond, 7 * time.Microsecond, 20 * time.Microsecond}, 0.5, 8 * time.Microsecond, 0},
		{"uniform p50", ramp(10000), 0.5, 5000 * time.Microsecond, 4},
		{"uniform p99", ramp(10000), 0.99, 9900 * time.Microsecond, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &Hist{}
			for _, v := range tt.values {
				h.Add(v)
			}
			got := h.Quantile(tt.q)
			lo := time.Duration(float64(tt.want) * (1 - tt.slackPc/100))
			hi := time.Duration(float64(tt.want) * (1 + tt.slackPc/100))
			if got < lo || got > hi {
				t.Errorf("Quantile(%v) = %v, want %v (±%v%%)", tt.q, got, tt.want, tt.slackPc)
			}
		})
	}
}

func ramp(n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = time.Duration(i+1) * time.Microsecond
	}
	return out
}

func TestBuckets(t *testing.T) {
	for us := uint64(0); us < 1<<20; us += 1 + us/50 {
		b := bucketOf(us)
		if lo, hi := lower(b), lower(b+1); us < lo || us >= hi {
			t.Fatalf("%dµs in bucket %d = [%d, %d)", us, b, lo, hi)
		}
	}
}

func TestStamp(t *testing.T) {
	tmpl := MessageTemplate(GroupID("x", 1), 3, 1024)
	at := time.Unix(1700000000, 123456789)
	m := Stamp(nil, tmpl, 1024, 42, at)
	if len(m) != len(tmpl) {
		t.Fatalf("stamped length %d, template %d", len(m), len(tmpl))
	}
	id, got, err := ReadStamp(m, 1024)
	if err != nil || id != 42 || !got.Equal(at) {
		t.Fatalf("ReadStamp = %d, %v, %v", id, got, err)
	}
	if _, _, err := ReadStamp(m[:10], 1024); err == nil {
		t.Fatal("ReadStamp of a short message succeeded")
	}
}
