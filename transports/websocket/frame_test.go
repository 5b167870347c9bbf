package websocket

import (
	"bytes"
	"errors"
	"strconv"
	"testing"
)

// clientFrame is a masked client frame, as a browser sends.
func clientFrame(fin bool, op byte, key [4]byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	var b []byte
	switch n := len(payload); {
	case n < 126:
		b = []byte{b0, 0x80 | byte(n)}
	case n <= 0xFFFF:
		b = []byte{b0, 0x80 | 126, byte(n >> 8), byte(n)}
	default:
		b = []byte{b0, 0x80 | 127, 0, 0, 0, 0, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	b = append(b, key[:]...)
	p := append([]byte(nil), payload...)
	for i := range p {
		p[i] ^= key[i%4]
	}
	return append(b, p...)
}

func TestParseHeader(t *testing.T) {
	key := [4]byte{1, 2, 3, 4}
	for _, n := range []int{0, 1, 125, 126, 1000, 0xFFFF, 0x10000, 200000} {
		f := clientFrame(true, opText, key, bytes.Repeat([]byte{'x'}, n))
		for cut := 0; cut < len(f)-n; cut++ { // every incomplete header
			if _, ok, err := parseHeader(f[:cut], 1<<20); ok || err != nil {
				t.Fatalf("len %d, %d bytes: ok=%v err=%v", n, cut, ok, err)
			}
		}
		h, ok, err := parseHeader(f, 1<<20)
		if !ok || err != nil || h.length != n || h.size != len(f)-n || !h.fin || h.op != opText || h.key != key {
			t.Fatalf("len %d: %+v %v %v", n, h, ok, err)
		}
		p := f[h.size:]
		unmask(p, h.key)
		if !bytes.Equal(p, bytes.Repeat([]byte{'x'}, n)) {
			t.Fatalf("len %d: unmasked wrongly", n)
		}
	}
}

func TestParseHeaderRefuses(t *testing.T) {
	key := [4]byte{9, 9, 9, 9}
	unmasked := clientFrame(true, opText, key, []byte("hi"))
	unmasked[1] &^= 0x80
	reserved := clientFrame(true, opText, key, []byte("hi"))
	reserved[0] |= 0x40
	for name, tc := range map[string]struct {
		frame []byte
		want  error
	}{
		"unmasked":          {unmasked, errUnmasked},
		"reserved bits":     {reserved, errReserved},
		"unknown opcode":    {clientFrame(true, 0x3, key, nil), errOpcode},
		"fragmented ping":   {clientFrame(false, opPing, key, nil), errControl},
		"long close":        {clientFrame(true, opClose, key, make([]byte, 126)), errControl},
		"past hard limit":   {clientFrame(true, opText, key, make([]byte, 1001)), errTooBig},
		"just at the limit": {clientFrame(true, opText, key, make([]byte, 1000)), nil},
	} {
		_, _, err := parseHeader(tc.frame, 1000)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", name, err, tc.want)
		}
	}
}

func TestUnmaskOddOffsets(t *testing.T) {
	key := [4]byte{0xA1, 0xB2, 0xC3, 0xD4}
	for n := range 40 {
		want := bytes.Repeat([]byte("abcdefg"), 6)[:n]
		f := clientFrame(true, opText, key, want)
		h, _, _ := parseHeader(f, 1<<10)
		p := f[h.size:]
		unmask(p, h.key)
		if !bytes.Equal(p, want) {
			t.Fatalf("n=%d: %q", n, p)
		}
	}
}

func TestCloseCode(t *testing.T) {
	for _, tc := range []struct {
		p    []byte
		code int
		ok   bool
	}{
		{nil, closeNoStatus, true},
		{[]byte{3, 0xE8}, 1000, true},
		{[]byte{3, 0xE8, 'b', 'y', 'e'}, 1000, true},
		{[]byte{0x0F, 0xA1}, 4001, true},
		{[]byte{3}, 0, false},
		{[]byte{3, 0xED}, 0, false}, // 1005 may not be sent
		{[]byte{0, 5}, 0, false},
	} {
		code, err := closeCode(tc.p)
		if (err == nil) != tc.ok || (tc.ok && code != tc.code) {
			t.Errorf("%v: got %d, %v", tc.p, code, err)
		}
	}
	if p := closePayload(1000, string(bytes.Repeat([]byte{'x'}, 200))); len(p) != maxControlPayload {
		t.Errorf("close payload is %d bytes", len(p))
	}
}

// BenchmarkFrame parses and unmasks one client frame of a candidate's size
// and one of an offer's, as the reader does for each frame it gets.
func BenchmarkFrame(b *testing.B) {
	for _, size := range []int{200, 1500} {
		payload := bytes.Repeat([]byte{'x'}, size)
		f := clientFrame(true, opText, [4]byte{1, 2, 3, 4}, payload)
		buf := make([]byte, len(f))
		b.Run(strconv.Itoa(size), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(size))
			for b.Loop() {
				copy(buf, f)
				h, ok, err := parseHeader(buf, 1<<20)
				if !ok || err != nil {
					b.Fatal(ok, err)
				}
				unmask(buf[h.size:h.size+h.length], h.key)
			}
		})
	}
}
