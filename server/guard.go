package server

import (
	"fmt"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// guard is the one policy that keeps a web page from using the service
// through a visitor's browser. It holds for every request that can change
// state, whatever its path: Execute and ExecuteEvent call check before they
// route a request, so a path added later is covered without opting in.
// Only GET, HEAD and OPTIONS pass unchecked; they run nothing and answer
// only what is public (the page, the OpenAPI document, health).
//
// A browser sends a form or a fetch to any address without asking first
// when the body is text/plain, a form encoding or multipart. Such a request
// is refused in three independent ways:
//
//   - Cross-origin: Sec-Fetch-Site says cross-site or same-site, or, from a
//     browser too old to send it, Origin names another host than Host
//     (http.CrossOriginProtection). Origin, when there is one, must also be
//     the request's own Host or one of the service's names, which catches a
//     page whose name was rebound to a proxy that rewrites Host.
//   - Host: it must be one of the service's own names (see ownHost), so a
//     page whose DNS name was rebound to a loopback or container address —
//     and which the browser then calls same-origin — is refused. This is
//     decided by the name alone, not by the address the connection came
//     from: inside a container with a published port, connections do not
//     come from loopback.
//   - Content-Type: a request that has a body or names a type must send
//     application/json (or a CloudEvents type on ExecuteEvent); a browser
//     cannot send those cross-origin without a preflight, which the service
//     never grants.
type guard struct {
	// names are the operator's own host names (PYEXEC_ALLOWED_HOSTS),
	// lowercase, without a port.
	names map[string]bool
	// frontEndHost: a front end (Cloud Run's) routes requests by Host, so
	// any Host that arrives is one of the service's own URLs, its custom
	// domains included, and is not checked.
	frontEndHost bool
	origin       *http.CrossOriginProtection
}

// newGuard returns the guard of a service whose own names are hosts, beyond
// loopback ones, and whose Host is fixed by a front end when frontEndHost.
func newGuard(hosts []string, frontEndHost bool) *guard {
	g := &guard{names: map[string]bool{}, frontEndHost: frontEndHost, origin: http.NewCrossOriginProtection()}
	for _, h := range hosts {
		g.names[normalHost(h)] = true
	}
	return g
}

// The media types a state-changing request's body may have: JSON for
// Execute's paths; JSON and structured CloudEvents on ExecuteEvent's
// (Pub/Sub push and Eventarc's binary mode send application/json).
var (
	jsonBodies  = []string{"application/json"}
	eventBodies = []string{"application/json", "application/cloudevents+json"}
)

// check returns the error that refuses r, or nil when r may go on. bodies
// are the media types r's body may have.
func (g *guard) check(r *http.Request, bodies []string) error {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return nil
	}
	if !g.frontEndHost && !g.own(r.Host) {
		return forbidden(fmt.Sprintf("Host %q is not one of this service's names (loopback ones, or those PYEXEC_ALLOWED_HOSTS lists)", clipText(r.Host)))
	}
	if err := g.origin.Check(r); err != nil {
		return forbidden("Cross-origin request refused: a page of another site cannot use this service")
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Host == "" || (!strings.EqualFold(u.Host, r.Host) && !g.own(u.Host)) {
			return forbidden(fmt.Sprintf("Cross-origin request refused: Origin %q is not this service", clipText(origin)))
		}
	}
	contentType := r.Header.Get("Content-Type")
	if contentType == "" && r.ContentLength == 0 {
		return nil // no body: nothing to be of a type
	}
	mediaType, _, err := mime.ParseMediaType(contentType)
	for _, want := range bodies {
		if err == nil && mediaType == want {
			return nil
		}
	}
	return unsupportedMediaType(fmt.Sprintf("Content-Type must be %s, got %q", strings.Join(bodies, " or "), clipText(contentType)))
}

// own tells whether host (with or without a port) is one of the service's
// names: a loopback name or address, or one the operator configured.
// *.localhost names resolve to loopback in browsers and never through DNS,
// so no page can take them over.
func (g *guard) own(host string) bool {
	h := normalHost(host)
	if h == "localhost" || strings.HasSuffix(h, ".localhost") || g.names[h] {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// normalHost is host as names compare: without a port, IPv6 brackets or a
// final dot, in lowercase.
func normalHost(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	return strings.ToLower(strings.TrimSuffix(host, "."))
}

// clipText is a header's value as a message quotes it, as clip does.
func clipText(s string) string {
	return clip([]byte(s))
}
