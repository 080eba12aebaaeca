package ttlcache

import (
	"fmt"
	"sync"
	"testing"
)

func TestGetPutExpiry(t *testing.T) {
	t.Parallel()
	c := New[int](100, 1<<20)
	c.Put("a", 1, 100, 10, 50)
	tests := []struct {
		name string
		key  string
		now  int64
		want int
		ok   bool
	}{
		{"present", "a", 99, 1, true},
		{"at expiry", "a", 100, 0, false},
		{"after expiry", "a", 101, 0, false},
		{"absent", "b", 50, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := c.Get(tt.key, tt.now)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("Get(%q, %d) = %d, %v; want %d, %v", tt.key, tt.now, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestPutExpiredOrOversizedIsDropped(t *testing.T) {
	t.Parallel()
	c := New[int](100, 16*100)
	c.Put("old", 1, 10, 1, 10)
	c.Put("huge", 1, 100, 1000, 10)
	if c.Len() != 0 {
		t.Fatalf("Len = %d, want 0", c.Len())
	}
}

func TestBoundedEntriesAndBytes(t *testing.T) {
	t.Parallel()
	c := New[int](160, 1<<30)
	for i := range 10_000 {
		c.Put(fmt.Sprint(i), i, 1000, 1, 0)
	}
	if n := c.Len(); n > 160 {
		t.Fatalf("Len = %d, want <= 160", n)
	}
	b := New[int](1<<30, 16*1000)
	for i := range 10_000 {
		b.Put(fmt.Sprint(i), i, 1000, 100, 0)
	}
	if n := b.Bytes(); n > 16*1000 {
		t.Fatalf("Bytes = %d, want <= 16000", n)
	}
}

func TestEvictionPrefersExpired(t *testing.T) {
	t.Parallel()
	c := New[int](16, 1<<20) // one entry per shard
	c.Put("k", 1, 5, 1, 0)
	// Fill every shard with live entries; "k" expires at 5.
	for i := range 200 {
		c.Put(fmt.Sprint("live", i), i, 1000, 1, 10)
	}
	if _, ok := c.Get("k", 10); ok {
		t.Fatal("expired entry still served")
	}
}

func TestReplaceAndDelete(t *testing.T) {
	t.Parallel()
	c := New[string](100, 1<<20)
	c.Put("k", "v1", 100, 10, 0)
	c.Put("k", "v2", 100, 20, 0)
	if v, _ := c.Get("k", 1); v != "v2" {
		t.Fatalf("got %q, want v2", v)
	}
	if c.Bytes() != 20 {
		t.Fatalf("Bytes = %d, want 20", c.Bytes())
	}
	c.Delete("k")
	if _, ok := c.Get("k", 1); ok || c.Bytes() != 0 {
		t.Fatal("Delete left the entry")
	}
}

func TestConcurrent(t *testing.T) {
	t.Parallel()
	c := New[int](1000, 1<<20)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				k := fmt.Sprint(g, "-", i%300)
				c.Put(k, i, 100, 8, 0)
				c.Get(k, 1)
			}
		}()
	}
	wg.Wait()
}

func TestGetDoesNotAllocate(t *testing.T) {
	c := New[*int](100, 1<<20)
	v := 1
	key := string(make([]byte, 1000))
	c.Put(key, &v, 100, 1, 0)
	allocs := testing.AllocsPerRun(1000, func() {
		if _, ok := c.Get(key, 1); !ok {
			t.Fatal("miss")
		}
	})
	if allocs != 0 {
		t.Fatalf("Get allocates %v times", allocs)
	}
}

// TestExpiredEntriesAreSwept: expired entries leave the cache within the
// sweep interval under steady traffic, long before the cache is full (the
// soak saw memory climb towards the bounds with entries of expired tokens).
func TestExpiredEntriesAreSwept(t *testing.T) {
	t.Parallel()
	c := New[int](1_000_000, 1<<30)
	for i := range 1000 {
		c.Put(fmt.Sprint("old", i), i, 100, 10, 90) // expire at 100
	}
	if c.Len() != 1000 {
		t.Fatalf("Len = %d", c.Len())
	}
	// Traffic goes on after they expired: within one sweep interval every
	// shard has swept them.
	for i := range 1000 {
		c.Put(fmt.Sprint("new", i), i, 1000, 10, 100+sweepEvery+int64(i%sweepEvery))
	}
	if n, b := c.Len(), c.Bytes(); n != 1000 || b != 1000*10 {
		t.Fatalf("Len = %d, Bytes = %d; want only the 1000 live entries", n, b)
	}
}

// BenchmarkGetMany: lookups rotating over many entries (a gateway's
// sessions), keyed like session keys (43 bytes) and like access tokens
// (1.3 kB), the caller holding the same string the entry was put with.
func BenchmarkGetMany(b *testing.B) {
	for _, tc := range []struct {
		name    string
		keyLen  int
		entries int
	}{
		{"key=43B/entries=1", 43, 1},
		{"key=43B/entries=10000", 43, 10_000},
		{"key=1.3kB/entries=1", 1300, 1},
		{"key=1.3kB/entries=10000", 1300, 10_000},
	} {
		b.Run(tc.name, func(b *testing.B) {
			c := New[*int](1<<20, 1<<30)
			keys := make([]string, tc.entries)
			v := 1
			for i := range keys {
				k := make([]byte, tc.keyLen)
				for j := range k {
					k[j] = byte('a' + (i*7+j*13)%26)
				}
				copy(k, fmt.Sprint(i))
				keys[i] = string(k)
				c.Put(keys[i], &v, 100, 1, 0)
			}
			b.ResetTimer()
			for i := range b.N {
				if _, ok := c.Get(keys[i%len(keys)], 1); !ok {
					b.Fatal("miss")
				}
			}
		})
	}
}

// TestSharedHash: an entry answers only for the key it was put with, even
// when another key has the same hash (forced here: 64-bit collisions do
// not happen by chance).
func TestSharedHash(t *testing.T) {
	t.Parallel()
	c := New[int](100, 1<<20)
	h, s := c.locate("k")
	s.m[h] = entry[int]{key: "other", val: 1, exp: 100, size: 10}
	s.bytes += 10
	if v, ok := c.Get("k", 1); ok {
		t.Fatalf("Get(k) = %d from another key's entry", v)
	}
	c.Delete("k")
	if e, ok := s.m[h]; !ok || e.key != "other" {
		t.Fatal("Delete(k) removed another key's entry")
	}
	c.Put("k", 2, 100, 20, 1)
	if v, ok := c.Get("k", 1); !ok || v != 2 {
		t.Fatalf("Get(k) = %d, %v after Put; want 2", v, ok)
	}
	if c.Len() != 1 || c.Bytes() != 20 {
		t.Fatalf("Len = %d, Bytes = %d; want 1, 20", c.Len(), c.Bytes())
	}
}

// TestUpdate: Update changes only the entry of its own key, keeps its
// expiry and size, and keeps nothing when fn declines.
func TestUpdate(t *testing.T) {
	t.Parallel()
	c := New[int](100, 1<<20)
	c.Put("k", 1, 100, 10, 0)
	set := func(v int, keep bool) func(*int) bool {
		return func(p *int) bool { *p = v; return keep }
	}
	c.Update("k", set(2, true))
	c.Update("k", set(3, false))
	c.Update("missing", func(*int) bool { t.Error("fn called for a key without an entry"); return true })
	if v, ok := c.Get("k", 99); !ok || v != 2 {
		t.Fatalf("Get(k) = %d, %v; want 2 (Update kept a declined change, or lost a kept one)", v, ok)
	}
	if _, ok := c.Get("k", 100); ok {
		t.Error("Update changed the entry's expiry")
	}
	if c.Bytes() != 10 {
		t.Errorf("Bytes = %d after Update, want 10", c.Bytes())
	}
	// Another key's entry under the same hash is not k's.
	h, s := c.locate("j")
	s.m[h] = entry[int]{key: "other", val: 7, exp: 100, size: 10}
	c.Update("j", func(*int) bool { t.Error("fn called with another key's entry"); return true })
	if e := s.m[h]; e.val != 7 {
		t.Errorf("Update(j) changed another key's entry to %d", e.val)
	}
}
