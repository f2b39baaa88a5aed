// Command tokenload measures the token endpoint: client_credentials tokens
// per second and latency percentiles at a given concurrency, in rounds,
// alternating with Go's raw RSA-2048 signing rate measured in the same
// process, so both figures come from the same machine state. It prints
// medians over the rounds. Used by scripts/load-token.sh.
package main

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ossbroker/btp-security-broker/tools/internal/stats"
)

func main() {
	tokenURL := flag.String("url", "https://localhost:8443/oauth/token", "token endpoint")
	caFile := flag.String("ca", "data/ca.pem", "CA of the broker")
	clientID := flag.String("client-id", "", "client id")
	secret := flag.String("client-secret", "", "client secret")
	conc := flag.Int("c", 8, "concurrent clients")
	dur := flag.Duration("d", 5*time.Second, "duration of one round")
	rounds := flag.Int("rounds", 3, "rounds")
	rsaDur := flag.Duration("rsa", 2*time.Second, "duration of one RSA measurement (0 skips it)")
	flag.Parse()

	pem, err := os.ReadFile(*caFile)
	if err != nil {
		fail(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, MaxIdleConnsPerHost: *conc, MaxConnsPerHost: *conc}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {*clientID}, "client_secret": {*secret}}.Encode()

	var rates, p50s, p99s, rsaRates []float64
	var errs int64
	for i := 0; i < *rounds; i++ {
		if *rsaDur > 0 {
			rsaRates = append(rsaRates, rsaRate(*rsaDur))
		}
		rate, lat, e := round(client, *tokenURL, form, *conc, *dur)
		errs += e
		rates = append(rates, rate)
		p50s = append(p50s, stats.Percentile(lat, 0.50))
		p99s = append(p99s, stats.Percentile(lat, 0.99))
		fmt.Printf("round %d: c=%d %.0f tokens/s p50 %.2f ms p99 %.2f ms errors %d\n", i+1, *conc, rate, p50s[i], p99s[i], e)
	}
	fmt.Printf("median: c=%d tokens/s %.0f  p50 %.2f ms  p99 %.2f ms  errors %d\n", *conc, stats.Median(rates), stats.Median(p50s), stats.Median(p99s), errs)
	if len(rsaRates) > 0 {
		fmt.Printf("median: Go crypto/rsa 2048 signatures/s (one core, same run) %.0f\n", stats.Median(rsaRates))
		fmt.Printf("ratio tokens/s ÷ RSA signs/s: %.2f\n", stats.Median(rates)/stats.Median(rsaRates))
	}
	if errs > 0 {
		os.Exit(1)
	}
}

// round runs conc workers requesting tokens for d and returns the rate,
// the per-request latencies in ms and the number of failed requests.
func round(client *http.Client, u, form string, conc int, d time.Duration) (float64, []float64, int64) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var ok, bad int64
	var mu sync.Mutex
	var lat []float64
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []float64
			for ctx.Err() == nil {
				t0 := time.Now()
				req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(form))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := client.Do(req)
				if err != nil {
					atomic.AddInt64(&bad, 1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					atomic.AddInt64(&bad, 1)
					continue
				}
				atomic.AddInt64(&ok, 1)
				local = append(local, float64(time.Since(t0).Microseconds())/1000)
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return float64(ok) / time.Since(start).Seconds(), lat, bad
}

// rsaRate is Go's single-goroutine RSA-2048 PKCS#1 v1.5 SHA-256 sign rate.
func rsaRate(d time.Duration) float64 {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		fail(err)
	}
	digest := sha256.Sum256([]byte("tokenload"))
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		if _, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, digest[:]); err != nil {
			fail(err)
		}
		n++
	}
	return float64(n) / time.Since(start).Seconds()
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "tokenload:", err)
	os.Exit(1)
}
