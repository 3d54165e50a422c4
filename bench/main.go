// Command bench is Tollgate's load benchmark: it runs the Caddy binary built by ./xcaddy.sh as a
// separate process with one upstream and four sites — an oauth_issuer, a plain reverse_proxy,
// oauth_protect + reverse_proxy in front of the same upstream, and a floor site that answers the
// token request with respond and a fixed token-sized body — and drives them from this process
// over loopback with keep-alive connections. It prints requests/s, Caddy's CPU time per request
// (utime + stime from /proc/<pid>/stat over the measured part of the phase, divided by the
// successful requests, and the CPUs that kept busy), p50 and p99 for token issuance (client
// credentials), the floor, the plain proxy, the protected proxy with a warm token (one token per
// connection, verified once and then cached) and with a cold one (a new token on every request,
// from a pool larger than the cache), their ratios, and Caddy's RSS as distinct tokens grow.
//
// The token cost is Caddy's CPU per client-credentials token against a floor: what Caddy spends
// answering the same request (path, body, Basic auth) with respond, plus one ES256 signature of
// an access-token claim set timed here in one goroutine:
//
//	client-credentials: X µs Caddy CPU per token; floor Y µs (respond Z µs + ES256 signature S µs); floor/token = R
//
// with Y = Z + S and R = Y / X: the closer R is to 1, the less the issuer adds to Caddy's request
// handling and the signature it cannot avoid. Issuance, floor and signature alternate in rounds
// of about 1 s, so that a slower machine hits all three alike; X, Z and S are over all rounds,
// and the median and spread of the rounds' own ratios follow.
//
// CPU per request means something only when Caddy does not share its CPUs with the load
// generator: -caddy-cpus (default "0") runs Caddy under taskset -c with GOMAXPROCS set to the
// number of CPUs listed, and pins this process (and the upstream it starts) to the other CPUs;
// "" leaves both unpinned, as does a missing taskset (the report says so). -only issuance runs
// only the token cost (about 12 s at the default duration). -profile DIR writes CPU profiles of
// Caddy (admin /debug/pprof) to DIR: issuance.pprof and floor.pprof from one more phase of each
// after the token cost, so that the profiler stays out of it, and plain.pprof and
// protected.pprof from the first plain and warm slices.
//
//	./xcaddy.sh bench [-duration 5s] [-slice 500ms] [-conns 16] [-pool 30000] [-caddy-cpus 0] [-only issuance] [-profile DIR]
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
	profile := flag.String("profile", "", "write CPU profiles of Caddy during the issuance, floor and first plain and warm phases to this directory")
	caddyCPUs := flag.String("caddy-cpus", "0", "pin Caddy to these CPUs (taskset -c list, GOMAXPROCS to match) and this process to the others; \"\" pins nothing")
	only := flag.String("only", "", "run only these phases: 'issuance' is the token cost (issuance, floor, signature); empty runs everything")
	role := flag.String("role", "", "internal: 'upstream' runs the upstream server")
	addr := flag.String("addr", "", "internal: the upstream's address")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("bench: ")
	if *role == "upstream" {
		serveUpstream(*addr)
		return
	}
	if *only != "" && *only != "issuance" {
		log.Fatalf("-only %q: the only choice is 'issuance'", *only)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	// A hard stop, whatever happens: every phase (two more with -profile) plus minting and start-up.
	ctx, cancel := context.WithTimeout(ctx, 9*(*duration+time.Second)+3*time.Minute)
	defer cancel()
	o := options{caddyBin: *caddyBin, d: *duration, slice: *slice, conns: *conns, pool: *pool,
		profile: *profile, caddyCPUs: *caddyCPUs, onlyIssuance: *only == "issuance"}
	if err := run(ctx, o); err != nil {
		log.Fatal(err)
	}
}

// options are the command line's settings.
type options struct {
	caddyBin     string
	d, slice     time.Duration
	conns, pool  int
	profile      string
	caddyCPUs    string
	onlyIssuance bool
}

// run starts the processes, runs the phases and prints the report.
func run(ctx context.Context, o options) error {
	d, slice, conns, pool, profile := o.d, o.slice, o.conns, o.pool, o.profile
	pin, err := pinCPUs(o.caddyCPUs)
	if err != nil {
		return err
	}
	env, err := startEnvironment(ctx, o.caddyBin, pin)
	if err != nil {
		return err
	}
	defer env.stop()
	fmt.Printf("Tollgate edge benchmark: %s, %d CPUs, %d connections, %s per phase\n%s\n",
		env.version, runtime.NumCPU(), conns, d, pin.note)
	if profile != "" {
		fmt.Println("profiling Caddy in some phases: their CPU per request includes the profiler's")
	}
	fmt.Println()
	rss0 := env.rss()

	issue, err := measureTokenCost(ctx, env, o)
	if err != nil || o.onlyIssuance {
		return err
	}
	tokens := issue.tokens
	if len(tokens) == 0 {
		return fmt.Errorf("no token was issued, and the other phases need them")
	}
	fmt.Println()

	var plain, warm []result
	rounds := max(1, int(d/slice))
	for i := 0; i < rounds; i++ {
		// The plain proxy gets the same Authorization header (and forwards it): the requests differ
		// only in what oauth_protect does with it.
		stopProfile := env.profile(ctx, profile, i == 0, "plain", slice)
		plain = append(plain, runPhase(ctx, slice, conns, env.cpu, func(w *worker) error { return w.get(env.plainURL, tokens[w.id%len(tokens)]) }))
		stopProfile()
		stopProfile = env.profile(ctx, profile, i == 0, "protected", slice)
		warm = append(warm, runPhase(ctx, slice, conns, env.cpu, func(w *worker) error { return w.get(env.protectedURL, tokens[w.id%len(tokens)]) }))
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
		more := runPhase(ctx, time.Second, conns, nil, func(w *worker) error { return w.mintToken(env.tokenURL) })
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
	cold := runPhase(ctx, d, conns, env.cpu, func(w *worker) error { return w.get(env.protectedURL, tokens[next.inc()%len(tokens)]) })
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
	fmt.Printf("%-46s %9.0f req/s   Caddy CPU %s   p50 %-9s p99 %-9s errors %d\n",
		name, r.rps(), cpuText(r), r.p(50), r.p(99), r.errors)
	if base != nil && base.rps() > 0 {
		fmt.Printf("    ratio to plain: %.1f %%", 100*r.rps()/base.rps())
		if r.cpuPerReq() > 0 && base.cpuPerReq() > 0 {
			fmt.Printf(", Caddy CPU %+.1f µs/req", r.cpuPerReq()-base.cpuPerReq())
		}
		fmt.Println()
	}
}

// cpuText is Caddy's CPU per request and the CPUs it kept busy, in fixed width.
func cpuText(r result) string {
	if r.cpuPerReq() <= 0 {
		return fmt.Sprintf("%-25s", "n/a")
	}
	return fmt.Sprintf("%6.1f µs/req (%.2f CPUs)", r.cpuPerReq(), r.busy())
}

func mib(kb int64) string {
	if kb <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(kb)/1024)
}
