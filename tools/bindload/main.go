// Command bindload measures the latency of OSB bind requests: it starts n
// binds of one instance at a fixed rate, open-loop (one every 1/rate,
// whether or not the earlier ones have finished, as independent platform
// requests would arrive), and prints p50, p99 and max latency, with the
// key pool depths from /metrics before and after. Used by
// scripts/load-bind.sh.
package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	base := flag.String("url", "https://localhost:8443", "broker base URL")
	caFile := flag.String("ca", "data/ca.pem", "CA of the broker")
	user := flag.String("user", "", "OSB basic-auth user")
	password := flag.String("password", "", "OSB basic-auth password")
	instance := flag.String("instance", "", "service instance id")
	serviceID := flag.String("service-id", "", "service offering id")
	planID := flag.String("plan-id", "", "plan id")
	params := flag.String("params", "{}", "bind parameters (JSON object)")
	n := flag.Int("n", 20, "binds to start")
	rate := flag.Float64("rate", 10, "binds started per second")
	timeout := flag.Duration("timeout", 5*time.Minute, "limit of one bind request")
	label := flag.String("label", "binds", "name of this phase in the output")
	prefix := flag.String("prefix", "bind", "prefix of the binding ids (must be unique per run)")
	flag.Parse()
	if !json.Valid([]byte(*params)) {
		fail(fmt.Errorf("-params is not JSON: %s", *params))
	}

	pem, err := os.ReadFile(*caFile)
	if err != nil {
		fail(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		fail(fmt.Errorf("%s holds no certificate", *caFile))
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, MaxIdleConnsPerHost: *n}
	client := &http.Client{Transport: tr, Timeout: *timeout}
	// Open the connections the burst can need beforehand, so that TLS
	// handshakes are not counted as bind latency.
	warm(client, *base, *n)

	before := poolDepths(client, *base)
	body, _ := json.Marshal(map[string]any{
		"service_id": *serviceID, "plan_id": *planID, "parameters": json.RawMessage(*params),
	})
	type result struct {
		latency time.Duration
		err     error
	}
	results := make([]result, *n)
	var wg sync.WaitGroup
	interval := time.Duration(float64(time.Second) / *rate)
	start := time.Now()
	for i := range *n {
		// Open loop: start i at start+i*interval, however late the others are.
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := fmt.Sprintf("%s/v2/service_instances/%s/service_bindings/%s-%d", *base, *instance, *prefix, i)
			req, err := http.NewRequest(http.MethodPut, url, bytes.NewReader(body))
			if err != nil {
				results[i].err = err
				return
			}
			req.SetBasicAuth(*user, *password)
			req.Header.Set("X-Broker-API-Version", "2.15")
			req.Header.Set("Content-Type", "application/json")
			t0 := time.Now()
			resp, err := client.Do(req)
			if err == nil {
				var msg []byte
				msg, err = io.ReadAll(resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusCreated {
					err = fmt.Errorf("status %d: %s", resp.StatusCode, strings.TrimSpace(string(msg)))
				}
			}
			results[i] = result{time.Since(t0), err}
		}()
	}
	wg.Wait()
	wall := time.Since(start)
	after := poolDepths(client, *base)

	var lat []time.Duration
	var errs []error
	for _, r := range results {
		if r.err != nil {
			errs = append(errs, fmt.Errorf("after %s: %w", ms(r.latency), r.err))
			continue
		}
		lat = append(lat, r.latency)
	}
	slices.Sort(lat)
	fmt.Printf("== %s: %d started at %.1f/s, %d ok, %d failed, all done after %.2f s ==\n", *label, *n, *rate, len(lat), len(errs), wall.Seconds())
	if len(lat) > 0 {
		fmt.Printf("   latency p50 %s  p99 %s  max %s  (min %s)\n", ms(pct(lat, 0.50)), ms(pct(lat, 0.99)), ms(lat[len(lat)-1]), ms(lat[0]))
	}
	fmt.Printf("   key pool before: %s\n   key pool after:  %s\n", before, after)
	for i, err := range errs {
		if i == 3 {
			fmt.Printf("   ... and %d more errors\n", len(errs)-3)
			break
		}
		fmt.Printf("   error: %v\n", err)
	}
	if len(errs) > 0 {
		os.Exit(1)
	}
}

// warm opens up to n connections to the broker and leaves them idle.
func warm(client *http.Client, base string, n int) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(base + "/healthz")
			if err != nil {
				fail(fmt.Errorf("warming up: %w", err))
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	wg.Wait()
}

// poolDepths returns the broker_key_pool_depth_* gauges of /metrics as
// "2048=32 4096=4 8192=1".
func poolDepths(client *http.Client, base string) string {
	resp, err := client.Get(base + "/metrics")
	if err != nil {
		return "(metrics: " + err.Error() + ")"
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("(metrics: status %d)", resp.StatusCode)
	}
	const metric = "broker_key_pool_depth_"
	var out []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), metric); ok {
			out = append(out, strings.Replace(rest, " ", "=", 1))
		}
	}
	if len(out) == 0 {
		return "(no " + metric + "* metrics)"
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// pct is the nearest-rank percentile of sorted xs.
func pct(xs []time.Duration, p float64) time.Duration {
	i := int(math.Ceil(p*float64(len(xs)))) - 1
	return xs[max(i, 0)]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func fail(err error) {
	fmt.Fprintln(os.Stderr, "bindload:", err)
	os.Exit(1)
}
