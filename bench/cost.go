package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// benchTokenTTL is the access_token_ttl of the issuer in caddyfile.
const benchTokenTTL = 2 * time.Hour

// clockTicks is the unit of utime and stime in /proc/<pid>/stat (getconf CLK_TCK); 100, the
// usual value, when getconf does not say.
func clockTicks() int64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return 100
	}
	hz, err := strconv.ParseInt(strings.TrimSpace(string(out)), 10, 64)
	if err != nil || hz <= 0 {
		return 100
	}
	return hz
}

// cpuTime is the CPU time, user plus system over all its threads, that process pid has used so
// far, from /proc/<pid>/stat in ticks of 1/hz s; 0 when it cannot be read.
func cpuTime(pid int, hz int64) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name, in parentheses, may hold spaces and parentheses: count from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(utime+stime) * time.Second / time.Duration(hz)
}

// accessClaims is an RFC 9068 access-token claim set like the one oauth_issuer signs.
type accessClaims struct {
	jwt.RegisteredClaims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope,omitempty"`
}

// tokenSigner signs access tokens for the bench client the way oauth_issuer does: ES256 with a
// P-256 key, typ at+jwt, a kid as long as an RFC 7638 thumbprint.
type tokenSigner struct {
	key    *ecdsa.PrivateKey
	kid    string
	issuer string
}

func newTokenSigner(issuer string) (*tokenSigner, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	pub, err := key.PublicKey.Bytes()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(pub)
	return &tokenSigner{key: key, kid: base64.RawURLEncoding.EncodeToString(sum[:]), issuer: issuer}, nil
}

// sign makes one access token, with its own jti and times, as one issuance does.
func (s *tokenSigner) sign() (string, error) {
	now := time.Now()
	var jti [16]byte
	_, _ = rand.Read(jti[:])
	claims := &accessClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    s.issuer,
			Subject:   benchClient,
			Audience:  jwt.ClaimStrings{benchAudience},
			ExpiresAt: jwt.NewNumericDate(now.Add(benchTokenTTL).Truncate(time.Second)),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        base64.RawURLEncoding.EncodeToString(jti[:]),
		},
		ClientID: benchClient,
		Scope:    "read",
	}
	t := jwt.NewWithClaims(jwt.SigningMethodES256, claims)
	t.Header["kid"] = s.kid
	t.Header["typ"] = "at+jwt"
	return t.SignedString(s.key)
}

// signatureCost is the time of one ES256 access-token signature by s (claims, JSON, base64 and
// the ECDSA signature) in a single goroutine: a timed loop of n after a warm-up of n/10.
func signatureCost(s *tokenSigner, n int) (time.Duration, error) {
	for range n / 10 {
		if _, err := s.sign(); err != nil {
			return 0, err
		}
	}
	start := time.Now()
	for range n {
		if _, err := s.sign(); err != nil {
			return 0, err
		}
	}
	return time.Since(start) / time.Duration(n), nil
}

// floorResponse is the floor site's body: a token response shaped and sized like the issuer's,
// with a token signed for issuer, ending in a newline as json.Encoder writes it.
func floorResponse(issuer string) (string, error) {
	s, err := newTokenSigner(issuer)
	if err != nil {
		return "", err
	}
	tok, err := s.sign()
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
		ExpiresIn   int64  `json:"expires_in"`
		Scope       string `json:"scope"`
	}{tok, "Bearer", int64(benchTokenTTL / time.Second), "read"})
	if err != nil {
		return "", err
	}
	return string(b) + "\n", nil
}

// tokenSlice is how long issuance and floor slices last in the token cost: long enough for
// about 100 clock ticks of Caddy CPU each.
const tokenSlice = time.Second

// measureTokenCost measures the token cost in rounds of about tokenSlice: each round times 1000
// ES256 signatures here (while Caddy idles) and runs an issuance slice and a floor slice, so that
// load from other processes and a slower machine (a busy VM host) hit all three alike. It prints
// the merged issuance and floor phases, the token cost and the median of the rounds' ratios,
// then, with -profile, profiles one more issuance and floor phase of full length, outside the
// measure. It returns the issuance phase, whose tokens the other phases use.
func measureTokenCost(ctx context.Context, env *environment, o options) (result, error) {
	signer, err := newTokenSigner(env.issuerURL)
	if err != nil {
		return result{}, err
	}
	rounds := max(1, int(o.d/tokenSlice))
	slice := o.d / time.Duration(rounds)
	const sigN = 1000
	var issues, floors []result
	var sigs []time.Duration
	var tokens []string
	for range rounds {
		sig, err := signatureCost(signer, sigN)
		if err != nil {
			return result{}, err
		}
		sigs = append(sigs, sig)
		issue := runPhase(ctx, slice, o.conns, env.cpu, func(w *worker) error { return w.mintToken(env.tokenURL) })
		issues, tokens = append(issues, issue), append(tokens, issue.tokens...)
		floors = append(floors, runPhase(ctx, slice, o.conns, env.cpu, func(w *worker) error { return w.mintToken(env.floorURL) }))
	}
	issue, floor := merge(issues), merge(floors)
	issue.tokens = tokens
	report("token issuance (client credentials)", issue, nil)
	report("floor: respond, same request, token-sized body", floor, nil)
	if size, err := responseSize(env.tokenURL); err == nil {
		fmt.Printf("    floor body %d bytes, token response %d bytes\n", env.floorSize, size)
	}
	ratios := make([]float64, rounds)
	for i := range ratios {
		if x := issues[i].cpuPerReq(); x > 0 {
			ratios[i] = (floors[i].cpuPerReq() + micros(sigs[i])) / x
		}
	}
	// The mean, like Caddy's CPU per request over the slices.
	var sig time.Duration
	for _, t := range sigs {
		sig += t / time.Duration(rounds)
	}
	fmt.Printf("ES256 signature of an access token, %d × %d in one goroutine here: mean %.1f µs (spread %.1f–%.1f µs)\n",
		rounds, sigN, micros(sig), micros(slices.Min(sigs)), micros(slices.Max(sigs)))
	fmt.Println()
	reportTokenCost(issue, floor, sig)
	slices.Sort(ratios)
	fmt.Printf("    median of %d alternating %s rounds: floor/token = %.2f (spread %.2f–%.2f)\n",
		rounds, slice, ratios[rounds/2], ratios[0], ratios[rounds-1])
	if o.profile != "" {
		fmt.Println()
		profilePhase(ctx, env, o, "issuance", env.tokenURL)
		profilePhase(ctx, env, o, "floor", env.floorURL)
	}
	return issue, nil
}

// profilePhase runs one token-request phase of full length against url while Caddy writes a CPU
// profile of it to the -profile directory as name.pprof.
func profilePhase(ctx context.Context, env *environment, o options, name, url string) {
	stop := env.profile(ctx, o.profile, true, name, o.d)
	r := runPhase(ctx, o.d, o.conns, env.cpu, func(w *worker) error { return w.mintToken(url) })
	stop()
	report(name+", profiled ("+name+".pprof)", r, nil)
}

// micros is d in µs.
func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }

// reportTokenCost prints Caddy's CPU per client-credentials token against the floor: the same
// request answered by respond, plus one signature made in this process.
func reportTokenCost(issue, floor result, sig time.Duration) {
	x, z, s := issue.cpuPerReq(), floor.cpuPerReq(), micros(sig)
	if x <= 0 || z <= 0 {
		fmt.Println("client-credentials: Caddy CPU per token unknown (no successful requests, or /proc/<pid>/stat unreadable)")
		return
	}
	fmt.Printf("client-credentials: %.1f µs Caddy CPU per token; floor %.1f µs (respond %.1f µs + ES256 signature %.1f µs); floor/token = %.2f\n",
		x, z+s, z, s, (z+s)/x)
}
