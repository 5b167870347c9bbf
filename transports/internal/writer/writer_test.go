package writer

import (
	"sync"
	"testing"
)

func TestAcksOnlyRise(t *testing.T) {
	a := NewAcks()
	if a.Seq() != 0 {
		t.Fatalf("new Acks at %d, want 0", a.Seq())
	}
	a.Note(5)
	a.Note(3) // an older ack, arriving late
	if a.Seq() != 5 {
		t.Fatalf("Seq = %d after 5 then 3, want 5", a.Seq())
	}
	select {
	case <-a.Wake():
	default:
		t.Fatal("Note did not signal Wake")
	}
	select {
	case <-a.Wake():
		t.Fatal("two Notes signalled Wake twice: the writer should see them as one")
	default:
	}
}

func TestAcksConcurrent(t *testing.T) {
	a := NewAcks()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			for s := range uint64(1000) {
				a.Note(s*8 + uint64(i))
			}
		})
	}
	wg.Wait()
	if got, want := a.Seq(), uint64(999*8+7); got != want {
		t.Fatalf("Seq = %d, want %d", got, want)
	}
}
