package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// worker is one keep-alive connection's request loop.
type worker struct {
	id      int
	client  *http.Client
	lat     []time.Duration
	tokens  []string
	errors  int
	lastErr error
}

// result is a measured phase.
type result struct {
	n       int
	elapsed time.Duration
	lat     []time.Duration // sorted
	errors  int
	tokens  []string
	cpu     time.Duration // Caddy's CPU time over the measured requests; 0 when not measured
}

func (r result) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.n) / r.elapsed.Seconds()
}

// cpuPerReq is Caddy's CPU time per successful request in µs; 0 when unknown.
func (r result) cpuPerReq() float64 {
	ok := r.n - r.errors
	if r.cpu <= 0 || ok <= 0 {
		return 0
	}
	return float64(r.cpu.Nanoseconds()) / 1e3 / float64(ok)
}

// busy is how many CPUs Caddy kept busy on average; 0 when unknown.
func (r result) busy() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return r.cpu.Seconds() / r.elapsed.Seconds()
}

// p returns the q-th percentile latency, rounded for printing.
func (r result) p(q int) string {
	if len(r.lat) == 0 {
		return "-"
	}
	d := r.lat[min(len(r.lat)-1, len(r.lat)*q/100)]
	return d.Round(time.Microsecond).String()
}

// merge adds up rounds of the same phase.
func merge(rs []result) result {
	var m result
	for _, r := range rs {
		m.n += r.n
		m.elapsed += r.elapsed
		m.errors += r.errors
		m.cpu += r.cpu
		m.lat = append(m.lat, r.lat...)
	}
	slices.Sort(m.lat)
	return m
}

// newClient keeps one idle connection per worker, so every request reuses a connection.
func newClient(conns int) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			MaxIdleConns: conns, MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns,
			DisableCompression: true, IdleConnTimeout: time.Minute,
		},
	}
}

// runPhase runs conns workers calling do until d has passed; 10% of d is a warm-up, not measured.
// When cpu is not nil it is read when the warm-up ends and after the last request, and the
// difference is the result's cpu: the requests in flight at the start of the measure are not
// counted but their rest is, which biases the result by at most conns requests' worth.
func runPhase(ctx context.Context, d time.Duration, conns int, cpu func() time.Duration, do func(*worker) error) result {
	client := newClient(conns)
	defer client.CloseIdleConnections()
	warmEnd := time.Now().Add(d / 10)
	end := warmEnd.Add(d)
	workers := make([]*worker, conns)
	var wg sync.WaitGroup
	for i := range workers {
		w := &worker{id: i, client: client, lat: make([]time.Duration, 0, 1<<16)}
		workers[i] = w
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				start := time.Now()
				if start.After(end) {
					return
				}
				err := do(w)
				if start.Before(warmEnd) {
					continue
				}
				w.lat = append(w.lat, time.Since(start))
				if err != nil {
					w.errors++
					w.lastErr = err
				}
			}
		}()
	}
	var cpu0 time.Duration
	if cpu != nil {
		select {
		case <-time.After(time.Until(warmEnd)):
		case <-ctx.Done():
		}
		cpu0 = cpu()
	}
	wg.Wait()
	var r result
	r.elapsed = d
	if cpu0 > 0 {
		if cpu1 := cpu(); cpu1 > 0 {
			r.cpu = cpu1 - cpu0
		}
	}
	for _, w := range workers {
		r.n += len(w.lat)
		r.lat = append(r.lat, w.lat...)
		r.errors += w.errors
		r.tokens = append(r.tokens, w.tokens...)
		if w.lastErr != nil && r.errors == w.errors {
			fmt.Println("    first error:", w.lastErr)
		}
	}
	slices.Sort(r.lat)
	return r
}

// runBatch makes exactly n calls of do with conns workers, untimed.
func runBatch(ctx context.Context, conns, n int, do func(*worker) error) {
	client := newClient(conns)
	defer client.CloseIdleConnections()
	left := int64(n)
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &worker{id: i, client: client}
			for ctx.Err() == nil && atomic.AddInt64(&left, -1) >= 0 {
				_ = do(w)
			}
		}()
	}
	wg.Wait()
}

// get sends one GET, with a bearer token when given, and reads the whole answer.
func (w *worker) get(url, token string) error {
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := w.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s (%s)", url, resp.Status, resp.Header.Get("WWW-Authenticate"))
	}
	return nil
}

// tokenRequest is a client-credentials token request, as a confidential client sends it.
func tokenRequest(tokenURL string) *http.Request {
	req, _ := http.NewRequest(http.MethodPost, tokenURL, strings.NewReader("grant_type=client_credentials&scope=read"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(benchClient, benchSecret)
	return req
}

// mintToken gets one client-credentials token and keeps it.
func (w *worker) mintToken(tokenURL string) error {
	resp, err := w.client.Do(tokenRequest(tokenURL))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		return fmt.Errorf("token endpoint: %s, %v", resp.Status, err)
	}
	w.tokens = append(w.tokens, tok.AccessToken)
	return nil
}

// responseSize is the size of the body that one token request to tokenURL gets.
func responseSize(tokenURL string) (int, error) {
	client := newClient(1)
	defer client.CloseIdleConnections()
	resp, err := client.Do(tokenRequest(tokenURL))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return len(b), err
}

// counter hands out increasing indexes to concurrent workers.
type counter struct{ n atomic.Int64 }

func newCounter() *counter { return new(counter) }

func (c *counter) inc() int { return int(c.n.Add(1) - 1) }
