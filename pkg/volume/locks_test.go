package volume

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestKeyLocksHonourContext(t *testing.T) {
	var k KeyLocks
	unlock, err := k.Lock(context.Background(), "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := k.Lock(ctx, "c", "b"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock of a held key past the deadline = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("gave up after %s", d)
	}
	// "c" was taken and released again by the failed call
	u2, err := k.Lock(context.Background(), "c")
	if err != nil {
		t.Fatal(err)
	}
	u2()
	unlock()
	u3, err := k.Lock(context.Background(), "b", "a")
	if err != nil {
		t.Fatal(err)
	}
	u3()
	if len(k.locks) != 0 {
		t.Errorf("locks left: %v", k.locks)
	}
}

func TestKeyLocksSerialize(t *testing.T) {
	var k KeyLocks
	var mu sync.Mutex
	inside := map[string]int{}
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		keys := [][]string{{"x"}, {"y", "x"}, {"x", "y"}, {"y"}}[i%4]
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock, err := k.Lock(context.Background(), keys...)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			for _, key := range keys {
				inside[key]++
				if inside[key] > 1 {
					t.Errorf("two holders of %s", key)
				}
			}
			mu.Unlock()
			time.Sleep(time.Millisecond)
			mu.Lock()
			for _, key := range keys {
				inside[key]--
			}
			mu.Unlock()
			unlock()
		}()
	}
	wg.Wait()
	if len(k.locks) != 0 {
		t.Errorf("locks left: %v", k.locks)
	}
}
