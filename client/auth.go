package client

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"

	"golang.org/x/oauth2"
	"google.golang.org/api/idtoken"
)

// WithIDToken authenticates every request with a Google ID token whose
// audience is the service's URL (its scheme and host), as a private Cloud
// Run service requires of callers that hold roles/run.invoker.
//
// Tokens come from Application Default Credentials (a service account key
// named by GOOGLE_APPLICATION_CREDENTIALS, or the metadata server on Google
// Cloud), unless opts name other credentials, e.g.
// idtoken.WithAuthCredentialsFile. End-user credentials from
// "gcloud auth application-default login" cannot mint ID tokens; use a
// service account, or get a token some other way and pass it with
// WithIDTokenSource. New fails when no credentials are found; a token that
// cannot be fetched later fails Execute.
//
// ctx is used to fetch and refresh tokens for the Client's whole life, so
// it should not be one that is cancelled sooner. Of WithIDToken and
// WithIDTokenSource, the last given applies.
func WithIDToken(ctx context.Context, opts ...idtoken.ClientOption) Option {
	return func(o *options) {
		o.idToken, o.tokenSourceOpt = &idTokenSettings{ctx: ctx, opts: opts}, nil
	}
}

// WithIDTokenSource authenticates every request with the tokens src returns
// (their AccessToken is sent as a bearer token), for example one from
// idtoken.NewTokenSource with a custom audience. Tokens are reused until
// they expire.
func WithIDTokenSource(src oauth2.TokenSource) Option {
	return func(o *options) { o.idToken, o.tokenSourceOpt = nil, src }
}

type idTokenSettings struct {
	ctx  context.Context
	opts []idtoken.ClientOption
}

// bearerSource is the source of the ID tokens o asks for, or nil.
func (o *options) bearerSource(service *url.URL) (oauth2.TokenSource, error) {
	src := o.tokenSourceOpt
	if o.idToken != nil {
		audience := service.Scheme + "://" + service.Host
		var err error
		if src, err = idtoken.NewTokenSource(o.idToken.ctx, audience, o.idToken.opts...); err != nil {
			return nil, fmt.Errorf("pyexec: getting ID tokens for %s: %w", audience, err)
		}
	}
	if src == nil {
		return nil, nil
	}
	// A bearer token sent in clear text can be replayed by anyone on the
	// way; loopback is allowed for local proxies and tests.
	if service.Scheme != "https" && !isLoopback(service.Hostname()) {
		return nil, fmt.Errorf("pyexec: refusing to send ID tokens over %s to %s: use https", service.Scheme, service.Host)
	}
	return oauth2.ReuseTokenSource(nil, src), nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// bearerTransport adds a token to requests for the service, and only to
// those: a redirect elsewhere must not carry the caller's identity along.
type bearerTransport struct {
	base    http.RoundTripper
	src     oauth2.TokenSource
	service *url.URL
}

func (t *bearerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != t.service.Scheme || req.URL.Host != t.service.Host {
		return t.base.RoundTrip(req)
	}
	tok, err := t.src.Token()
	if err != nil {
		if req.Body != nil {
			req.Body.Close() // RoundTrip must close the body, even on error.
		}
		return nil, fmt.Errorf("getting ID token: %w", err)
	}
	authed := req.Clone(req.Context())
	tok.SetAuthHeader(authed)
	return t.base.RoundTrip(authed)
}
