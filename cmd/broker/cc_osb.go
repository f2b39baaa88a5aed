package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// CC's constants (osb.md B.1, B.4).
const (
	ccAPIVersion = "2.15"
	// ccAPIInfoLocation stands in for <external_domain>/v2/info.
	ccAPIInfoLocation = "localhost/v2/info"
	ccTimeout         = 60 * time.Second
	// ccPollInterval replaces CC's 60 s default: a CLI waits in front of a
	// terminal. Retry-After still stretches it.
	ccPollInterval = 2 * time.Second
	// ccMaxPollDuration bounds polling when the plan has no
	// maximum_polling_duration (CC: 7 days, far too long for a CLI).
	ccMaxPollDuration  = 15 * time.Minute
	ccServiceKeyClient = "cc_service_key_client"
)

// ccSleep waits between last_operation polls; tests replace it.
var ccSleep = func(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ccClient speaks OSB to the broker the way Cloud Controller does.
type ccClient struct {
	base     string
	username string
	password string
	http     *http.Client
	userGUID string
	// requestID is CC's X-VCAP-Request-ID: one per command.
	requestID string
}

func newCCClient(api *apiClient, userGUID string) *ccClient {
	h := *api.http
	h.Timeout = ccTimeout
	return &ccClient{base: api.base, username: api.username, password: api.password, http: &h,
		userGUID: userGUID, requestID: ccGUID()}
}

// ccResponse is a broker answer.
type ccResponse struct {
	Status int
	Header http.Header
	Body   []byte
}

// send makes one request with CC's headers (osb.md B.1). identity false
// leaves out the originating identity, as CC does for orphan mitigation.
func (c *ccClient) send(ctx context.Context, method, path string, query url.Values, body any, identity bool) (ccResponse, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return ccResponse{}, err
		}
		rd = bytes.NewReader(raw)
	}
	u := c.base + path
	if len(query) > 0 {
		// url.Values.Encode sorts the keys, as Rails' to_query does.
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return ccResponse{}, err
	}
	req.SetBasicAuth(c.username, c.password)
	req.Header.Set("X-Broker-API-Version", ccAPIVersion)
	req.Header.Set("X-Broker-API-Request-Identity", ccGUID())
	req.Header.Set("X-VCAP-Request-ID", c.requestID)
	req.Header.Set("X-Api-Info-Location", ccAPIInfoLocation)
	req.Header.Set("Accept", "application/json")
	if method == http.MethodPut || method == http.MethodPatch {
		req.Header.Set("Content-Type", "application/json")
	}
	if identity && c.userGUID != "" {
		req.Header.Set("X-Broker-API-Originating-Identity", ccOriginatingIdentity(c.userGUID))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return ccResponse{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return ccResponse{}, err
	}
	return ccResponse{Status: resp.StatusCode, Header: resp.Header, Body: raw}, nil
}

// ccOriginatingIdentity is the X-Broker-API-Originating-Identity value:
// "cloudfoundry " + strict base64 of {"user_id":"<guid>"}.
func ccOriginatingIdentity(userGUID string) string {
	raw, _ := json.Marshal(struct {
		UserID string `json:"user_id"`
	}{userGUID})
	return "cloudfoundry " + base64.StdEncoding.EncodeToString(raw)
}

// brokerError is a failed broker call, shown with the broker's
// description as CC shows it.
type brokerError struct {
	Status      int
	Description string
}

func (e *brokerError) Error() string {
	desc := e.Description
	if desc == "" {
		desc = "(no description)"
	}
	if e.Status >= 500 || e.Status < 400 {
		return fmt.Sprintf("the service broker returned an invalid response (%d %s): %s", e.Status, http.StatusText(e.Status), desc)
	}
	return fmt.Sprintf("service broker error (%d %s): %s", e.Status, http.StatusText(e.Status), desc)
}

func newBrokerError(r ccResponse) *brokerError {
	var b struct {
		Error       string `json:"error"`
		Description string `json:"description"`
	}
	_ = json.Unmarshal(r.Body, &b)
	if b.Description == "" {
		b.Description = b.Error
	}
	if b.Description == "" && r.Status/100 != 2 {
		b.Description = strings.TrimSpace(string(r.Body))
		if len(b.Description) > 500 {
			b.Description = b.Description[:500] + "…"
		}
	}
	return &brokerError{Status: r.Status, Description: b.Description}
}

// ccCall is the kind of a mutating call; it decides how the answer is read
// (osb.md B.3).
type ccCall int

const (
	callProvision ccCall = iota
	callUpdate
	callDeprovision
	callBind
	callUnbind
)

// ccResult is a successful mutating call.
type ccResult struct {
	// Async: the broker answered 202; Operation is its operation id.
	Async     bool
	Operation string
	// Gone: a DELETE answered 410, which CC takes as success.
	Gone bool
	Body ccBody
}

// ccBody holds the response fields CC keeps.
type ccBody struct {
	Operation      string          `json:"operation"`
	DashboardURL   *string         `json:"dashboard_url"`
	Credentials    json.RawMessage `json:"credentials"`
	SyslogDrainURL *string         `json:"syslog_drain_url"`
	VolumeMounts   json.RawMessage `json:"volume_mounts"`
}

// mutate sends a PUT, PATCH or DELETE and reads the answer as CC does.
// After a timeout or a response CC treats as a bad response to a provision
// or bind, it sends one orphan-mitigation DELETE before returning the
// error.
func (c *ccClient) mutate(ctx context.Context, kind ccCall, method, path string, query url.Values, body any, omQuery url.Values) (ccResult, error) {
	r, err := c.send(ctx, method, path, query, body, true)
	if err != nil {
		var ne net.Error
		if (kind == callProvision || kind == callBind) && errors.As(err, &ne) && ne.Timeout() {
			c.orphanMitigate(ctx, path, omQuery)
		}
		return ccResult{}, err
	}
	res, err := readMutation(kind, r)
	if err != nil {
		if needsOrphanMitigation(kind, r) {
			c.orphanMitigate(ctx, path, omQuery)
		}
		return ccResult{}, err
	}
	return res, nil
}

// readMutation interprets a broker answer per osb.md B.3.
func readMutation(kind ccCall, r ccResponse) (ccResult, error) {
	var ok, async, gone bool
	switch kind {
	case callProvision, callBind:
		ok = r.Status == http.StatusOK || r.Status == http.StatusCreated
	case callUpdate:
		ok = r.Status == http.StatusOK
	case callDeprovision, callUnbind:
		ok = r.Status == http.StatusOK
		gone = r.Status == http.StatusGone
	}
	async = r.Status == http.StatusAccepted
	if !ok && !async && !gone {
		return ccResult{}, newBrokerError(r)
	}
	res := ccResult{Async: async, Gone: gone}
	if gone {
		return res, nil
	}
	if err := json.Unmarshal(r.Body, &res.Body); err != nil {
		return ccResult{}, &brokerError{Status: r.Status, Description: "malformed response body: " + err.Error()}
	}
	res.Operation = res.Body.Operation
	if kind == callBind && !async && !isJSONObject(res.Body.Credentials) {
		return ccResult{}, &brokerError{Status: r.Status, Description: "the binding response has no credentials object"}
	}
	return res, nil
}

// needsOrphanMitigation reports the failed answers after which CC deletes
// what a provision or bind may have left behind (osb.md B.5).
func needsOrphanMitigation(kind ccCall, r ccResponse) bool {
	if kind != callProvision && kind != callBind {
		return false
	}
	switch {
	case r.Status >= 500, r.Status == http.StatusGone:
		return true
	case r.Status == http.StatusUnprocessableEntity:
		var b struct {
			Error string `json:"error"`
		}
		_ = json.Unmarshal(r.Body, &b)
		switch b.Error {
		case "AsyncRequired", "ConcurrencyError", "MaintenanceInfoConflict", "RequiresApp":
			return false
		}
		return true
	case r.Status == http.StatusCreated, r.Status == http.StatusAccepted:
		return true // a 201/202 that readMutation found malformed
	case r.Status/100 == 2 || r.Status/100 == 3:
		return r.Status != http.StatusOK
	}
	return false
}

// orphanMitigate sends CC's orphan-mitigation DELETE once: no originating
// identity, the result ignored.
func (c *ccClient) orphanMitigate(ctx context.Context, path string, query url.Values) {
	q := url.Values{"accepts_incomplete": {"true"}}
	for k, v := range query {
		q[k] = v
	}
	_, _ = c.send(ctx, http.MethodDelete, path, q, nil, false)
}

func isJSONObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && raw[0] == '{'
}

// ccPoll is one last_operation polling.
type ccPoll struct {
	Path      string // …/last_operation
	PlanID    string
	ServiceID string
	Operation string
	Deleting  bool
	Max       time.Duration
}

// poll asks last_operation until the operation is done, as CC's job does:
// at once, then after max(Retry-After, interval). It returns the final
// state ("succeeded" or "failed") and the broker's description. 404, 5xx,
// network errors and malformed answers keep it polling; 400 is a failure;
// 410 is success while deleting.
func (c *ccClient) poll(ctx context.Context, p ccPoll) (state, description string, err error) {
	q := url.Values{"plan_id": {p.PlanID}, "service_id": {p.ServiceID}}
	if p.Operation != "" {
		q.Set("operation", p.Operation)
	}
	maxWait := p.Max
	if maxWait <= 0 {
		maxWait = ccMaxPollDuration
	}
	var waited time.Duration
	for {
		r, err := c.send(ctx, http.MethodGet, p.Path, q, nil, true)
		retryAfter := ""
		if err == nil {
			retryAfter = r.Header.Get("Retry-After")
			var b struct {
				State       string `json:"state"`
				Description string `json:"description"`
			}
			switch {
			case r.Status == http.StatusOK && json.Unmarshal(r.Body, &b) == nil:
				if b.State == "succeeded" || b.State == "failed" {
					return b.State, b.Description, nil
				}
			case r.Status == http.StatusBadRequest:
				_ = json.Unmarshal(r.Body, &b)
				return "failed", b.Description, nil
			case r.Status == http.StatusGone && p.Deleting:
				return "succeeded", "", nil
			}
		} else if ctx.Err() != nil {
			return "", "", ctx.Err()
		}
		d := pollDelay(retryAfter, ccPollInterval)
		if waited+d > maxWait {
			return "", "", fmt.Errorf("the service broker did not finish the operation within %s", maxWait)
		}
		if err := ccSleep(ctx, d); err != nil {
			return "", "", err
		}
		waited += d
	}
}

// pollDelay is CC's wait before the next poll: Retry-After read as Ruby's
// to_i (leading digits; an HTTP date is 0) and never below the interval.
func pollDelay(retryAfter string, interval time.Duration) time.Duration {
	s := strings.TrimSpace(retryAfter)
	n := 0
	for n < len(s) && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	secs, _ := strconv.ParseInt(s[:n], 10, 64)
	const maxSecs = 86400 // CC's cap
	if secs > maxSecs {
		secs = maxSecs
	}
	if d := time.Duration(secs) * time.Second; d > interval {
		return d
	}
	return interval
}

// ccCatalog is the part of GET /v2/catalog the subcommands need.
type ccCatalog struct {
	Services []ccService `json:"services"`
}

type ccService struct {
	ID                   string   `json:"id"`
	Name                 string   `json:"name"`
	Tags                 []string `json:"tags"`
	Bindable             bool     `json:"bindable"`
	PlanUpdateable       bool     `json:"plan_updateable"`
	InstancesRetrievable bool     `json:"instances_retrievable"`
	BindingsRetrievable  bool     `json:"bindings_retrievable"`
	Plans                []ccPlan `json:"plans"`
}

type ccPlan struct {
	ID                     string          `json:"id"`
	Name                   string          `json:"name"`
	Bindable               *bool           `json:"bindable"`
	PlanUpdateable         *bool           `json:"plan_updateable"`
	MaintenanceInfo        json.RawMessage `json:"maintenance_info"`
	MaximumPollingDuration *int            `json:"maximum_polling_duration"`
}

func (c *ccClient) catalog(ctx context.Context) (*ccCatalog, error) {
	r, err := c.send(ctx, http.MethodGet, "/v2/catalog", nil, nil, true)
	if err != nil {
		return nil, err
	}
	if r.Status != http.StatusOK {
		return nil, newBrokerError(r)
	}
	cat := &ccCatalog{}
	if err := json.Unmarshal(r.Body, cat); err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	return cat, nil
}

// find returns the offering and plan of these names.
func (cat *ccCatalog) find(service, plan string) (*ccService, *ccPlan, error) {
	for i := range cat.Services {
		s := &cat.Services[i]
		if s.Name != service {
			continue
		}
		p, err := s.plan(plan)
		return s, p, err
	}
	names := make([]string, len(cat.Services))
	for i, s := range cat.Services {
		names[i] = s.Name
	}
	return nil, nil, fmt.Errorf("service offering %q not found (the broker offers %s)", service, strings.Join(names, ", "))
}

// serviceByID returns the offering of this id.
func (cat *ccCatalog) serviceByID(id string) (*ccService, error) {
	for i := range cat.Services {
		if cat.Services[i].ID == id {
			return &cat.Services[i], nil
		}
	}
	return nil, fmt.Errorf("the broker's catalog no longer has the offering %s", id)
}

func (s *ccService) plan(name string) (*ccPlan, error) {
	names := make([]string, len(s.Plans))
	for i := range s.Plans {
		if s.Plans[i].Name == name {
			return &s.Plans[i], nil
		}
		names[i] = s.Plans[i].Name
	}
	return nil, fmt.Errorf("the plan %s could not be found for service offering %s (plans: %s)", name, s.Name, strings.Join(names, ", "))
}

func (s *ccService) planByID(id string) *ccPlan {
	for i := range s.Plans {
		if s.Plans[i].ID == id {
			return &s.Plans[i]
		}
	}
	return nil
}

// updateable is the plan's plan_updateable, else the offering's.
func (s *ccService) updateable(p *ccPlan) bool {
	if p.PlanUpdateable != nil {
		return *p.PlanUpdateable
	}
	return s.PlanUpdateable
}

// bindable is the plan's bindable, else the offering's.
func (s *ccService) bindable(p *ccPlan) bool {
	if p != nil && p.Bindable != nil {
		return *p.Bindable
	}
	return s.Bindable
}

// maxPoll is the plan's maximum_polling_duration, capped by ours.
func (p *ccPlan) maxPoll() time.Duration {
	if p != nil && p.MaximumPollingDuration != nil && *p.MaximumPollingDuration > 0 {
		if d := time.Duration(*p.MaximumPollingDuration) * time.Second; d < ccMaxPollDuration {
			return d
		}
	}
	return ccMaxPollDuration
}
