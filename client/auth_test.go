package client

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/api/idtoken"
)

func TestIDTokenSourceAuthenticatesEveryAttempt(t *testing.T) {
	svc := newFakeService(t, busy, ok)
	c := newClient(t, svc.URL, WithIDTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "id-token-1"})))
	recordWaits(c)

	if _, err := c.Execute(context.Background(), Request{Script: "s"}); err != nil {
		t.Fatalf("Execute: %v", err)
	}
	for i, r := range svc.requests() {
		if got := r.Header.Get("Authorization"); got != "Bearer id-token-1" {
			t.Errorf("request %d: Authorization = %q, want Bearer id-token-1", i, got)
		}
	}
}

func TestIDTokenIsNotSentToAnotherHost(t *testing.T) {
	var mu sync.Mutex
	var elsewhereAuth []string
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		elsewhereAuth = append(elsewhereAuth, r.Header.Get("Authorization"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"result": 1, "stdout": ""}`)
	}))
	defer elsewhere.Close()
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/execute", http.StatusTemporaryRedirect)
	}))
	defer redirecting.Close()
	c := newClient(t, redirecting.URL, WithIDTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "secret"})))

	if _, err := c.Execute(context.Background(), Request{Script: "s"}); err != nil {
		t.Fatalf("Execute: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(elsewhereAuth) != 1 || elsewhereAuth[0] != "" {
		t.Errorf("the other host saw Authorization %q, want one request without it", elsewhereAuth)
	}
}

func TestIDTokenErrorIsReturned(t *testing.T) {
	svc := newFakeService(t, ok)
	c := newClient(t, svc.URL, WithIDTokenSource(failingTokenSource{}))
	_, err := c.Execute(context.Background(), Request{Script: "s"})
	if err == nil || !strings.Contains(err.Error(), "getting ID token: no credentials here") {
		t.Errorf("Execute = %v, want the token source's error", err)
	}
	if n := len(svc.requests()); n != 0 {
		t.Errorf("%d requests reached the service without a token, want none", n)
	}
}

type failingTokenSource struct{}

func (failingTokenSource) Token() (*oauth2.Token, error) {
	return nil, fmt.Errorf("no credentials here")
}

func TestIDTokensAreNotSentInClearTextBeyondLoopback(t *testing.T) {
	src := WithIDTokenSource(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "t"}))
	if _, err := New("http://pyexec.example.com", src); err == nil || !strings.Contains(err.Error(), "use https") {
		t.Errorf("New(http://pyexec.example.com, WithIDTokenSource) = %v, want a refusal", err)
	}
	for _, u := range []string{"https://pyexec.example.com", "http://localhost:8080", "http://127.0.0.1:8080", "http://[::1]:8080"} {
		if _, err := New(u, src); err != nil {
			t.Errorf("New(%s, WithIDTokenSource) = %v, want it accepted", u, err)
		}
	}
}

// WithIDToken, wired to a service-account key whose token endpoint is a
// local server: the token is minted for the service's URL as audience and
// sent to the service. Nothing contacts Google.
func TestWithIDTokenMintsATokenForTheServiceURL(t *testing.T) {
	svc := newFakeService(t, ok)
	idToken := unsignedJWT(t, map[string]any{"aud": "x", "exp": time.Now().Add(time.Hour).Unix()})
	var mu sync.Mutex
	var audiences []string
	tokenEndpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("token request: %v", err)
		}
		var claims struct {
			TargetAudience string `json:"target_audience"`
		}
		jwtClaims(t, r.PostForm.Get("assertion"), &claims)
		mu.Lock()
		audiences = append(audiences, claims.TargetAudience)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"id_token": idToken})
	}))
	defer tokenEndpoint.Close()

	key := serviceAccountKey(t, tokenEndpoint.URL)
	c := newClient(t, svc.URL+"/some/prefix",
		WithIDToken(context.Background(), idtoken.WithAuthCredentialsJSON(idtoken.ServiceAccount, key)))
	if _, err := c.Execute(context.Background(), Request{Script: "s"}); err != nil {
		t.Fatalf("Execute: %v", err)
	}

	if got := svc.requests()[0].Header.Get("Authorization"); got != "Bearer "+idToken {
		t.Errorf("Authorization = %q, want the minted ID token", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(audiences) != 1 || audiences[0] != svc.URL {
		t.Errorf("tokens minted for audiences %q, want one for %s (the service's scheme and host)", audiences, svc.URL)
	}
}

// serviceAccountKey is a service-account key file whose token endpoint is
// tokenURL.
func serviceAccountKey(t *testing.T, tokenURL string) []byte {
	t.Helper()
	pk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(pk)
	if err != nil {
		t.Fatal(err)
	}
	key, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "test-project",
		"private_key_id": "key-1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "caller@test-project.iam.gserviceaccount.com",
		"client_id":      "1",
		"token_uri":      tokenURL,
	})
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func unsignedJWT(t *testing.T, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256","typ":"JWT"}`)) + "." + enc(payload) + "." + enc([]byte("sig"))
}

// jwtClaims decodes a JWT's claims (without checking its signature) into v.
func jwtClaims(t *testing.T, jwt string, v any) {
	t.Helper()
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		t.Fatalf("assertion %q is not a JWT", jwt)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	if err := json.Unmarshal(payload, v); err != nil {
		t.Fatalf("JWT claims: %v", err)
	}
}
