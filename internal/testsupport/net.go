package testsupport

import (
	"io"
	"net"
	"sync/atomic"
	"testing"
)

// Listen opens a listener on addr (network tcp4, tcp6 or unix) that counts
// the connections it accepts, for scripts that must not reach it, and
// returns the address it listens on.
func Listen(t testing.TB, network, addr string) (net.Addr, *atomic.Int64, error) {
	t.Helper()
	ln, err := net.Listen(network, addr)
	if err != nil {
		return nil, nil, err
	}
	t.Cleanup(func() { ln.Close() })
	accepted := &atomic.Int64{}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			c.Close()
		}
	}()
	return ln.Addr(), accepted, nil
}

// CountingReader counts the bytes read through it: how much of a request
// body the service took.
type CountingReader struct {
	R io.Reader
	n atomic.Int64
}

// Read reads from R.
func (c *CountingReader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// N is the count of bytes read so far.
func (c *CountingReader) N() int64 { return c.n.Load() }

// Endless is an endless reader of one byte.
type Endless byte

// Read fills p.
func (b Endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}
