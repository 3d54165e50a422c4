package issuer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"
)

// TestDocumentLookAlikeHostRefused: a client_id whose host is percent-encoded Unicode
// (g%D0%BE%D0%BEgle.com, Cyrillic о) would be fetched from its punycode host but shown on the
// consent page as "gооgle.com": it is refused before any connection, as is a raw Unicode host.
func TestDocumentLookAlikeHostRefused(t *testing.T) {
	h := newDocHost(t)
	d := newDocuments(t, documentConfig(h))
	for _, id := range []string{
		"https://g%D0%BE%D0%BEgle.com/clients/app.json",
		"https://gооgle.com/clients/app.json",
		"https://example%2Ecom/clients/app.json",
	} {
		if c, err := d.client(context.Background(), id, ""); c != nil || err != nil {
			t.Errorf("%s: %v, %v; want an unknown client", id, c, err)
		}
	}
	if n := h.conns.Load(); n != 0 {
		t.Fatalf("%d connections for look-alike hosts", n)
	}
}

// TestDocumentFetchBounds: one slow host holds at most maxFetchesPerHost fetches, so another
// host's new client is still fetched; a host that timed out is not fetched again for CacheMin,
// whatever path is asked for; and one address makes at most DocumentFetchesPerAddress fetches
// a minute through the token endpoint.
func TestDocumentFetchBounds(t *testing.T) {
	slow, other := newDocHost(t), newDocHost(t) // two hosts: the same address, other ports
	release := make(chan struct{})
	for i := range maxDocumentFetches {
		slow.handle(fmt.Sprintf("/slow/%d", i), func(w http.ResponseWriter, r *http.Request) {
			select { // never answers within the timeout
			case <-release:
			case <-r.Context().Done():
			}
		})
	}
	defer close(release)
	legit := other.url("/clients/legit.json")
	other.serveJSON("/clients/legit.json", cliDocument(legit))
	cfg := documentConfig(slow)
	cfg.Timeout = Duration(time.Second)
	d := newDocuments(t, cfg)

	var wg sync.WaitGroup
	var busy sync.Map
	for i := range maxDocumentFetches {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := d.client(context.Background(), slow.url(fmt.Sprintf("/slow/%d", i)), ""); errors.Is(err, errDocumentsBusy) {
				busy.Store(i, true)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	if c, err := d.client(context.Background(), legit, ""); c == nil || err != nil {
		t.Fatalf("another host's client while one host is slow: %v, %v", c, err)
	}
	wg.Wait()
	if n := slow.total(); n > maxFetchesPerHost {
		t.Fatalf("the slow host got %d fetches at once, want at most %d", n, maxFetchesPerHost)
	}
	before := slow.total()
	if c, err := d.client(context.Background(), slow.url("/slow/new-path"), ""); c != nil || err != nil {
		t.Fatalf("a new path on the host that timed out: %v, %v", c, err)
	}
	if slow.total() != before {
		t.Fatal("the host that timed out was fetched again")
	}

	// Per address, through the token endpoint: each request names a document never seen.
	h := newDocHost(t)
	f := documentFlowServer(t, h)
	unavailable := 0
	for i := range DocumentFetchesPerAddress + 5 {
		status, _ := f.postToken(t, url.Values{"grant_type": {"authorization_code"}, "code": {"x"},
			"client_id": {h.url(fmt.Sprintf("/flood/%d.json", i))}})
		if status == http.StatusServiceUnavailable {
			unavailable++
		}
	}
	if n := h.total(); n != DocumentFetchesPerAddress || unavailable != 5 {
		t.Fatalf("%d fetches and %d refusals from one address, want %d and 5", n, unavailable, DocumentFetchesPerAddress)
	}
}
