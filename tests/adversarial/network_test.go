//go:build integration

package adversarial

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pyexec/pyexec/internal/testsupport"
)

// Network: listeners this test opens on the host's loopback, IPv4 and IPv6,
// TCP and UDP, must receive nothing from a jail. The jail has its own
// network namespace (only a down lo) and the filter denies every socket
// family but AF_UNIX.
func TestAdversarialNetwork(t *testing.T) {
	ts := testsupport.StartService(t, nil)

	type target struct {
		name, network, addr string
	}
	var targets []target
	var accepted []*atomic.Int64
	var packetConns []net.PacketConn
	for _, host := range []string{"127.0.0.1", "::1"} {
		family := "4"
		if host == "::1" {
			family = "6"
		}
		addr, n, err := testsupport.Listen(t, "tcp"+family, net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatalf("listening on %s: %v", host, err)
		}
		accepted = append(accepted, n)
		targets = append(targets, target{"tcp" + family, "tcp", addr.String()})
		pc, err := net.ListenPacket("udp"+family, net.JoinHostPort(host, "0"))
		if err != nil {
			t.Fatalf("listening on udp %s: %v", host, err)
		}
		t.Cleanup(func() { pc.Close() })
		packetConns = append(packetConns, pc)
		targets = append(targets, target{"udp" + family, "udp", pc.LocalAddr().String()})
	}
	datagrams := countDatagrams(packetConns...)

	// Python literals of the targets: (family, type, (host, port)).
	var py string
	for _, tg := range targets {
		host, port, _ := net.SplitHostPort(tg.addr)
		fam, typ := "socket.AF_INET", "socket.SOCK_STREAM"
		if host == "::1" {
			fam = "socket.AF_INET6"
		}
		if tg.network == "udp" {
			typ = "socket.SOCK_DGRAM"
		}
		py += fmt.Sprintf("    %q: (%s, %s, (%q, %s)),\n", tg.name, fam, typ, host, port)
	}
	var got map[string]attemptResult
	runProbe(t, ts, `
import socket, subprocess
TARGETS = {
`+py+`}
def reach(fam, typ, addr):
    s = socket.socket(fam, typ)
    s.settimeout(3)
    if typ == socket.SOCK_DGRAM:
        s.sendto(b"datagram from the jail", addr)
    else:
        s.connect(addr)
        s.sendall(b"hello from the jail")
def main():
    out = {name: attempt(lambda t=t: reach(*t)) for name, t in TARGETS.items()}
    out["netlink"] = attempt(lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
    out["packet"] = attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
    out["raw_icmp"] = attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
    out["getaddrinfo"] = attempt(lambda: socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM))
    return out
`, &got)
	for _, tg := range targets {
		if o := got[tg.name]; !o.failedWith(eperm) {
			t.Errorf("reaching the host's %s listener %s from the jail %s, want PermissionError (socket denied)", tg.name, tg.addr, o)
		}
	}
	for _, name := range []string{"netlink", "packet", "raw_icmp"} {
		if o := got[name]; !o.failedWith(eperm) {
			t.Errorf("a %s socket %s, want PermissionError", name, o)
		}
	}
	// Give a datagram or connection that did leave the jail time to land.
	time.Sleep(200 * time.Millisecond)
	var connections int64
	for _, n := range accepted {
		connections += n.Load()
	}
	if n := connections; n != 0 {
		t.Errorf("the host's loopback TCP listeners accepted %d connections from the jail", n)
	}
	if n := datagrams(); n != 0 {
		t.Errorf("the host's loopback UDP sockets received %d datagrams from the jail", n)
	}
}

// countDatagrams reads every socket until it is closed and returns a
// function that tells how many datagrams came in.
func countDatagrams(pcs ...net.PacketConn) func() int64 {
	var n atomic.Int64
	for _, pc := range pcs {
		go func() {
			b := make([]byte, 2048)
			for {
				if _, _, err := pc.ReadFrom(b); err != nil {
					return
				}
				n.Add(1)
			}
		}()
	}
	return n.Load
}
