package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/pyexec/pyexec/api"
)

// maxAnswerBytes bounds how much of an answer is read. The service's own
// answers stay well below it (1 MiB of stdout, 4 MiB of result, 8 MiB of
// files as base64); anything larger is not pyexec talking.
const maxAnswerBytes = 64 << 20

// defaultUserAgent names the client in the service's request logs.
const defaultUserAgent = "pyexec-go-client"

// Client calls one pyexec service. It is safe for concurrent use.
type Client struct {
	base      string // the service URL without a trailing slash
	endpoint  string // base + "/execute"
	http      *http.Client
	userAgent string
	retry     retryPolicy
}

// Option configures a Client; pass them to New.
type Option func(*options)

type options struct {
	httpClient     *http.Client
	idToken        *idTokenSettings
	tokenSourceOpt oauth2.TokenSource
	retry          retryPolicy
	userAgent      string
}

// WithHTTPClient sends requests with hc instead of a client of its own, for
// a proxy, custom TLS or tracing. Its Timeout, if any, bounds each attempt;
// bound the whole call, retries included, with Execute's context.
func WithHTTPClient(hc *http.Client) Option {
	return func(o *options) { o.httpClient = hc }
}

// WithUserAgent sets the User-Agent header of every request.
func WithUserAgent(ua string) Option {
	return func(o *options) { o.userAgent = ua }
}

// New returns a Client for the service at serviceURL, e.g.
// "http://localhost:8080" or "https://pyexec-abc123-uc.a.run.app". A path
// in the URL is kept: requests go to serviceURL + "/execute".
func New(serviceURL string, opts ...Option) (*Client, error) {
	u, err := url.Parse(serviceURL)
	if err != nil {
		return nil, fmt.Errorf("pyexec: service URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("pyexec: service URL %q: want http:// or https:// and a host", serviceURL)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("pyexec: service URL %q: must not have a query or fragment", serviceURL)
	}
	o := options{retry: defaultRetry, userAgent: defaultUserAgent}
	for _, opt := range opts {
		opt(&o)
	}
	hc := o.httpClient
	if hc == nil {
		hc = &http.Client{}
	}
	src, err := o.bearerSource(u)
	if err != nil {
		return nil, err
	}
	if src != nil {
		authed := *hc
		base := hc.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		authed.Transport = &bearerTransport{base: base, src: src, service: u}
		hc = &authed
	}
	base := strings.TrimSuffix(u.String(), "/")
	return &Client{
		base:      base,
		endpoint:  base + "/execute",
		http:      hc,
		userAgent: o.userAgent,
		retry:     o.retry,
	}, nil
}

// Execute runs req's script and returns what its main returned.
//
// A script that failed, and any other answer that is not a success, is an
// *Error. Answers of busy and sandbox_unavailable (and a 429 or 503 from the
// platform in front of the service) mean the script was not run; Execute
// sends the request again after a backoff that honours the Retry-After
// header, within the bounds set by WithRetry, and returns the last *Error
// when they are spent. ctx bounds the whole call, waits included: a wait
// that would outlast ctx's deadline is not begun.
func (c *Client) Execute(ctx context.Context, req Request) (*Result, error) {
	start := time.Now()
	body, err := req.wire()
	if err != nil {
		return nil, err
	}
	res, err := call(ctx, c, c.http, (*Error).retryable, http.MethodPost, c.endpoint, body, readAnswer)
	if err != nil {
		return nil, err
	}
	res.Duration = time.Since(start)
	return res, nil
}

// call sends a request with hc until an answer that retry does not send
// again (see retrying), and turns the last answer into a T with read.
func call[T any](ctx context.Context, c *Client, hc *http.Client, retry func(*Error) bool,
	method, url string, body []byte, read func(*http.Response, []byte) (T, error)) (T, error) {
	var res T
	err := c.retrying(ctx, retry, func() error {
		resp, raw, err := c.send(ctx, hc, method, url, body)
		if err != nil {
			return err
		}
		res, err = read(resp, raw)
		return err
	})
	return res, err
}

// retrying calls attempt until it succeeds, fails with an error that is
// not an *Error for which retry holds, or the retry policy and ctx allow no
// further attempt; it returns attempt's last error.
func (c *Client) retrying(ctx context.Context, retry func(*Error) bool, attempt func() error) error {
	var waited time.Duration
	for n := 1; ; n++ {
		err := attempt()
		if err == nil {
			return nil
		}
		var e *Error
		if !errors.As(err, &e) || !retry(e) {
			return err
		}
		wait, ok := c.retry.next(n, waited, e.retryAfter)
		if deadline, has := ctx.Deadline(); has && time.Until(deadline) < wait {
			ok = false
		}
		if !ok {
			return err
		}
		if err := c.retry.sleep(ctx, wait); err != nil {
			return fmt.Errorf("pyexec: waiting to retry after %s: %w: %w", e.Type, err, e)
		}
		waited += wait
	}
}

// send sends one request with hc (nil body: none) and reads its answer,
// up to maxAnswerBytes+1 bytes of it.
func (c *Client) send(ctx context.Context, hc *http.Client, method, url string, body []byte) (*http.Response, []byte, error) {
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
	}
	hreq, err := http.NewRequestWithContext(ctx, method, url, reader)
	if err != nil {
		return nil, nil, fmt.Errorf("pyexec: building request: %w", err)
	}
	if body != nil {
		hreq.Header.Set("Content-Type", "application/json")
	}
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", c.userAgent)
	resp, err := hc.Do(hreq)
	if err != nil {
		return nil, nil, fmt.Errorf("pyexec: sending request: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes+1))
	if err != nil {
		return nil, nil, fmt.Errorf("pyexec: reading answer (HTTP %d): %w", resp.StatusCode, err)
	}
	return resp, raw, nil
}

// readAnswer turns an answer of /execute into a Result or an *Error.
func readAnswer(resp *http.Response, raw []byte) (*Result, error) {
	if e := failed(resp, raw); e != nil {
		return nil, e
	}
	var s api.Success
	if json.Unmarshal(raw, &s) != nil || s.Result == nil {
		return nil, notPyexec(resp, raw)
	}
	files, shown, err := readOutputs(resp, raw, s.Files, s.Display)
	if err != nil {
		return nil, err
	}
	return &Result{Value: s.Result, Stdout: s.Stdout, Files: files, Display: shown,
		ExecutionID: resp.Header.Get(api.HeaderExecutionID), Body: raw}, nil
}

// readOutputs decodes the files and the rich outputs of a successful
// answer; an error is the *Error of an answer the client could not read.
func readOutputs(resp *http.Response, raw []byte, files []api.OutputFile, display []api.DisplayItem) ([]OutputFile, []Display, error) {
	decoded, err := outputFiles(files)
	if err != nil {
		return nil, nil, unreadable(resp, raw, err.Error())
	}
	shown, err := displayItems(display)
	if err != nil {
		return nil, nil, unreadable(resp, raw, err.Error())
	}
	return decoded, shown, nil
}

// failed is the *Error of an answer that is no success (not a 2xx status,
// or too large to be pyexec's), or nil for one whose body is left to read.
func failed(resp *http.Response, raw []byte) *Error {
	if len(raw) > maxAnswerBytes {
		return unreadable(resp, raw, fmt.Sprintf("answer larger than %d MiB", maxAnswerBytes>>20))
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	var f api.Failure
	if json.Unmarshal(raw, &f) != nil || f.ErrorType == "" {
		return notPyexec(resp, raw)
	}
	return &Error{Type: f.ErrorType, Message: f.Error, Traceback: f.Traceback, Stdout: f.Stdout,
		SessionEnded: f.SessionEnded, ExecutionID: resp.Header.Get(api.HeaderExecutionID),
		StatusCode: resp.StatusCode, Body: raw, retryAfter: retryAfter(resp.Header)}
}

// unreadable is the *Error of an answer the client could not make sense
// of, saying why.
func unreadable(resp *http.Response, raw []byte, why string) *Error {
	return &Error{StatusCode: resp.StatusCode, ExecutionID: resp.Header.Get(api.HeaderExecutionID), Body: raw,
		retryAfter: retryAfter(resp.Header), Message: why}
}

// notPyexec is the *Error of an answer whose body is not pyexec's.
func notPyexec(resp *http.Response, raw []byte) *Error {
	return unreadable(resp, raw, fmt.Sprintf("not an answer of pyexec (Content-Type %q): %s", mediaType(resp.Header), snippet(raw)))
}

func mediaType(h http.Header) string {
	t, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return h.Get("Content-Type")
	}
	return t
}
