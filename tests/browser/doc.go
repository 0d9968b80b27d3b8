// Package browser tests the playground in a real browser: it builds and
// starts the pyexec binary, drives Debian's chromium headless with chromedp
// and checks what a user sees. The tests are behind the integration build
// tag; they need the runtime (make runtime) and chromium
// (scripts/install-chromium.sh):
//
//	go test -count=1 -tags integration ./tests/browser/
//
// With -update-screenshots they also write the desktop and phone screenshots
// README shows into testdata/screenshots/.
package browser
