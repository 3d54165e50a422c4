// Command bench is Tollgate's load benchmark: it runs the Caddy binary built by ./xcaddy.sh as a
// separate process with one upstream and three sites — an oauth_issuer, a plain reverse_proxy and
// oauth_protect + reverse_proxy in front of the same upstream — and drives them from this process
// over loopback with keep-alive connections. It prints requests/s, p50 and p99 for token issuance
// (client credentials), the plain proxy, the protected proxy with a warm token (one token per
// connection, verified once and then cached) and with a cold one (a new token on every request,
// from a pool larger than the cache), their ratios, and Caddy's RSS as distinct tokens grow.
//
//	./xcaddy.sh bench [-duration 5s] [-slice 500ms] [-conns 16] [-pool 30000] [-profile DIR]
//	go run ./bench -caddy ./caddy
//
// Every phase is bounded in time and the whole run stops by itself; traffic goes only to
// 127.0.0.1.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"time"
)

func main() {
	caddyBin := flag.String("caddy", "./caddy", "the Caddy binary with Tollgate (./xcaddy.sh build)")
	duration := flag.Duration("duration", 5*time.Second, "length of each measured phase")
	conns := flag.Int("conns", 16, "concurrent keep-alive connections (one worker each)")
	slice := flag.Duration("slice", 500*time.Millisecond, "plain and warm phases alternate in slices this long, so that load from other processes hits both alike")
	pool := flag.Int("pool", 30000, "distinct tokens to mint for the cold and RSS phases (> the 10000-entry cache)")
	profile := flag.String("profile", "", "write CPU profiles of Caddy during the first plain and warm phases to this directory")
	role := flag.String("role", "", "internal: 'upstream' runs the upstream server")
	addr := flag.String("addr", "", "internal: the upstream's address")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("bench: ")
	if *role == "upstream" {
		serveUpstream(*addr)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	// A hard stop, whatever happens: every phase plus minting and start-up.
	ctx, cancel := context.WithTimeout(ctx, 6*(*duration+time.Second)+3*time.Minute)
	defer cancel()
	if err := run(ctx, *caddyBin, *duration, *slice, *conns, *pool, *profile); err != nil {
		log.Fatal(err)
	}
}

// run starts the processes, runs the phases and prints the report.
func run(ctx context.Context, caddyBin string, d, slice time.Duration, conns, pool int, profile string) error {
	env, err := startEnvironment(ctx, caddyBin)
	if err != nil {
		return err
	}
	defer env.stop()
	fmt.Printf("Tollgate edge benchmark: %s, %d CPUs, %d connections, %s per phase\n\n",
		env.version, runtime.NumCPU(), conns, d)
	rss0 := env.rss()

	issue := runPhase(ctx, d, conns, func(w *worker) error { return w.mintToken(env.tokenURL) })
	tokens := issue.tokens
	report("token issuance (client credentials)", issue, nil)

	var plain, warm []result
	rounds := max(1, int(d/slice))
	for i := 0; i < rounds; i++ {
		// The plain proxy gets the same Authorization header (and forwards it): the requests differ
		// only in what oauth_protect does with it.
		stopProfile := env.profile(ctx, profile, i == 0, "plain", slice)
		plain = append(plain, runPhase(ctx, slice, conns, func(w *worker) error { return w.get(env.plainURL, tokens[w.id%len(tokens)]) }))
		stopProfile()
		stopProfile = env.profile(ctx, profile, i == 0, "protected", slice)
		warm = append(warm, runPhase(ctx, slice, conns, func(w *worker) error { return w.get(env.protectedURL, tokens[w.id%len(tokens)]) }))
		stopProfile()
	}
	p, wm := merge(plain), merge(warm)
	report("plain reverse_proxy", p, nil)
	report("oauth_protect, warm token", wm, &p)
	ratios := make([]float64, rounds)
	for i := range ratios {
		ratios[i] = warm[i].rps() / plain[i].rps()
	}
	slices.Sort(ratios)
	fmt.Printf("    median of %d alternating %s slices: %.1f %% (spread %.1f–%.1f %%)\n",
		rounds, slice, 100*ratios[rounds/2], 100*ratios[0], 100*ratios[rounds-1])
	rssWarm := env.rss()

	for len(tokens) < pool && ctx.Err() == nil { // more tokens, untimed, so that the cold phase misses
		more := runPhase(ctx, time.Second, conns, func(w *worker) error { return w.mintToken(env.tokenURL) })
		tokens = append(tokens, more.tokens...)
	}
	fmt.Printf("\nCaddy RSS: %s at start, %s after the warm phases\n", mib(rss0), mib(rssWarm))
	fmt.Println("Caddy RSS as distinct tokens grow (each sent once; the cache holds 10000 entries):")
	sent := 0
	for _, step := range []int{0, 2500, 5000, 10000, 15000, 20000, 30000, 40000} {
		if step > len(tokens) {
			break
		}
		batch := tokens[sent:step]
		var i counter
		runBatch(ctx, conns, len(batch), func(w *worker) error { return w.get(env.protectedURL, batch[i.inc()]) })
		sent = step
		fmt.Printf("  %6d distinct tokens: %s\n", step, mib(env.rss()))
	}

	hits0, miss0 := env.cacheCounters()
	next := newCounter()
	cold := runPhase(ctx, d, conns, func(w *worker) error { return w.get(env.protectedURL, tokens[next.inc()%len(tokens)]) })
	hits1, miss1 := env.cacheCounters()
	fmt.Println()
	report("oauth_protect, cold token (new each request)", cold, &p)
	if miss1 > miss0 {
		fmt.Printf("    cache during the cold phase: %d hits, %d misses (pool of %d distinct tokens)\n", hits1-hits0, miss1-miss0, len(tokens))
	}

	return nil
}

// report prints one phase, with its ratio to base when given.
func report(name string, r result, base *result) {
	fmt.Printf("%-46s %9.0f req/s   p50 %-9s p99 %-9s errors %d\n", name, r.rps(), r.p(50), r.p(99), r.errors)
	if base != nil && base.rps() > 0 {
		fmt.Printf("    ratio to plain: %.1f %%\n", 100*r.rps()/base.rps())
	}
}

func mib(kb int64) string {
	if kb <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(kb)/1024)
}
