// Package e2e holds cloakroom's end-to-end tests in a real browser
// (headless Chromium driven by chromedp). It is a separate module so that
// library users never inherit chromedp.
//
//	CLOAKROOM_TEST_CHROMIUM=/usr/bin/chromium go test ./...
package e2e
