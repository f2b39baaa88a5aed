package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// The cf-style subcommands (create-service, bind, env, …) drive a running
// broker the way Cloud Foundry's Cloud Controller does (osb.md Part B) and
// keep CC's bookkeeping in a local state file (cc_state.go), so that apps
// can be run locally with the VCAP_SERVICES Cloud Foundry would give them.

// ccCommand is what every cf-style subcommand shares: its flags, the
// parsed positional arguments and the loaded state.
type ccCommand struct {
	name   string
	fs     *flag.FlagSet
	getenv func(string) string
	stdout io.Writer

	stateFlag string
	asJSON    bool
	// The broker flags, as in newAPIClient; read only when a command
	// talks to the broker.
	url, ca, username, password string

	pos       []string
	statePath string
	st        *ccState
}

func newCCCommand(name string, getenv func(string) string, stdout, stderr io.Writer) *ccCommand {
	c := &ccCommand{name: name, getenv: getenv, stdout: stdout}
	c.fs = flag.NewFlagSet("broker "+name, flag.ContinueOnError)
	c.fs.SetOutput(stderr)
	c.fs.StringVar(&c.stateFlag, "state", "", "state file (BROKER_CF_STATE; default ~/.config/btp-security-broker/cf-state.json)")
	c.fs.BoolVar(&c.asJSON, "json", false, "print JSON")
	c.fs.StringVar(&c.url, "url", getenv("BROKER_URL"), "broker base URL (BROKER_URL; default https://localhost:8443)")
	c.fs.StringVar(&c.ca, "ca", getenv("BROKER_CA"), "CA file for a broker with a private CA, e.g. data/ca.pem (BROKER_CA)")
	c.fs.StringVar(&c.username, "username", getenv("BROKER_USERNAME"), "operator user (BROKER_USERNAME)")
	c.fs.StringVar(&c.password, "operator-password", getenv("BROKER_PASSWORD"), "operator password (BROKER_PASSWORD)")
	return c
}

// parse parses the flags (anywhere among the arguments), requires n
// positional arguments and loads the state.
func (c *ccCommand) parse(args []string, n int, usage string) error {
	pos, err := parseInterspersed(c.fs, args)
	if err != nil {
		return err
	}
	if len(pos) != n {
		return fmt.Errorf("usage: broker %s", usage)
	}
	c.pos = pos
	if c.statePath, err = ccStatePath(c.stateFlag, c.getenv); err != nil {
		return err
	}
	c.st, err = loadCCState(c.statePath)
	return err
}

// client connects to the broker named by the flags or the environment.
func (c *ccCommand) client() (*ccClient, error) {
	fromFlags := map[string]string{"BROKER_URL": c.url, "BROKER_CA": c.ca, "BROKER_USERNAME": c.username, "BROKER_PASSWORD": c.password}
	api, _, err := newAPIClient(flag.NewFlagSet(c.fs.Name(), flag.ContinueOnError), nil, func(k string) string {
		if v, ok := fromFlags[k]; ok {
			return v
		}
		return c.getenv(k)
	})
	if err != nil {
		return nil, err
	}
	return newCCClient(api, c.st.UserGUID), nil
}

func (c *ccCommand) save() error { return c.st.save(c.statePath) }

// sayf prints a progress line unless the output is JSON.
func (c *ccCommand) sayf(format string, args ...any) {
	if !c.asJSON {
		fmt.Fprintf(c.stdout, format, args...)
	}
}

// readParams reads -c: a JSON object given inline or in a file, as the cf
// CLI takes it. Empty means not given.
func readParams(v string) (json.RawMessage, error) {
	if v == "" {
		return nil, nil
	}
	raw := []byte(v)
	if fi, err := os.Stat(v); err == nil && fi.Mode().IsRegular() {
		if raw, err = os.ReadFile(v); err != nil {
			return nil, err
		}
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, errors.New("invalid configuration provided for -c flag: provide a valid JSON object or the path to a file containing one")
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// nonEmpty drops a {} that CC would not send.
func nonEmpty(params json.RawMessage) json.RawMessage {
	if string(params) == "{}" {
		return nil
	}
	return params
}

// compactJSON compacts valid JSON; the state and the output indent it
// again.
func compactJSON(raw json.RawMessage) json.RawMessage {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return raw
	}
	return b.Bytes()
}

// nullToNil turns a JSON null into an absent value.
func nullToNil(raw json.RawMessage) json.RawMessage {
	if t := bytes.TrimSpace(raw); len(t) == 0 || string(t) == "null" {
		return nil
	}
	return raw
}

// Request bodies, fields in CC's order (osb.md B.2).

var ccEmptyObject = json.RawMessage("{}")

type ccContext struct {
	Platform                string          `json:"platform"`
	OrganizationGUID        string          `json:"organization_guid"`
	SpaceGUID               string          `json:"space_guid"`
	OrganizationName        string          `json:"organization_name"`
	SpaceName               string          `json:"space_name"`
	OrganizationAnnotations json.RawMessage `json:"organization_annotations"`
	SpaceAnnotations        json.RawMessage `json:"space_annotations"`
	InstanceName            string          `json:"instance_name,omitempty"`
	InstanceAnnotations     json.RawMessage `json:"instance_annotations,omitempty"`
}

type ccProvisionBody struct {
	ServiceID        string          `json:"service_id"`
	PlanID           string          `json:"plan_id"`
	OrganizationGUID string          `json:"organization_guid"`
	SpaceGUID        string          `json:"space_guid"`
	Context          ccContext       `json:"context"`
	Parameters       json.RawMessage `json:"parameters,omitempty"`
	MaintenanceInfo  json.RawMessage `json:"maintenance_info,omitempty"`
}

type ccPreviousValues struct {
	PlanID          string          `json:"plan_id"`
	ServiceID       string          `json:"service_id"`
	OrganizationID  string          `json:"organization_id"`
	SpaceID         string          `json:"space_id"`
	MaintenanceInfo json.RawMessage `json:"maintenance_info"` // null when none
}

type ccUpdateBody struct {
	ServiceID       string           `json:"service_id"`
	PlanID          string           `json:"plan_id"`
	PreviousValues  ccPreviousValues `json:"previous_values"`
	Context         ccContext        `json:"context"`
	Parameters      json.RawMessage  `json:"parameters"`
	MaintenanceInfo json.RawMessage  `json:"maintenance_info,omitempty"`
}

type ccBindBody struct {
	ServiceID    string          `json:"service_id"`
	PlanID       string          `json:"plan_id"`
	AppGUID      string          `json:"app_guid,omitempty"`
	BindResource any             `json:"bind_resource"`
	Context      ccContext       `json:"context"`
	Parameters   json.RawMessage `json:"parameters,omitempty"`
}

type ccAppBindResource struct {
	AppGUID        string          `json:"app_guid"`
	SpaceGUID      string          `json:"space_guid"`
	AppAnnotations json.RawMessage `json:"app_annotations"`
}

type ccKeyBindResource struct {
	CredentialClientID string `json:"credential_client_id"`
}

// bindContext is the context of a bind; create and update add the instance.
func (c *ccCommand) bindContext(in *ccInstance) (ccContext, error) {
	org, space, err := c.st.spaceByGUID(in.SpaceGUID)
	if err != nil {
		return ccContext{}, err
	}
	return ccContext{
		Platform: "cloudfoundry", OrganizationGUID: org.GUID, SpaceGUID: space.GUID,
		OrganizationName: org.Name, SpaceName: space.Name,
		OrganizationAnnotations: ccEmptyObject, SpaceAnnotations: ccEmptyObject,
	}, nil
}

func ccInstancePath(in *ccInstance) string {
	return "/v2/service_instances/" + url.PathEscape(in.GUID)
}

func ccBindingPath(in *ccInstance, b *ccBinding) string {
	return ccInstancePath(in) + "/service_bindings/" + url.PathEscape(b.GUID)
}

// ids is the plan_id/service_id query of DELETE, GET and last_operation.
func (in *ccInstance) ids() url.Values {
	return url.Values{"plan_id": {in.PlanID}, "service_id": {in.ServiceID}}
}

// deleteQuery is CC's DELETE query; Encode sorts it as Rails' to_query:
// accepts_incomplete=true&plan_id=…&service_id=….
func (in *ccInstance) deleteQuery() url.Values {
	q := in.ids()
	q.Set("accepts_incomplete", "true")
	return q
}

var acceptsIncomplete = url.Values{"accepts_incomplete": {"true"}}

// failedCreate reports a create whose async operation failed; CC replaces
// such a record when the user creates it again.
func failedCreate(op ccLastOperation) bool { return op.Type == "create" && op.State == "failed" }

// createServiceCmd is 'broker create-service SERVICE PLAN NAME'.
func createServiceCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newCCCommand("create-service", getenv, stdout, stderr)
	paramsFlag := c.fs.String("c", "", "parameters: a JSON object, inline or in a file (e.g. xs-security.json)")
	tagsFlag := c.fs.String("t", "", "user tags, comma-separated; not sent to the broker, they appear in VCAP_SERVICES")
	orgName := c.fs.String("org", ccDefaultOrg, "org of the instance")
	spaceName := c.fs.String("space", ccDefaultSpace, "space of the instance")
	if err := c.parse(args, 3, "create-service SERVICE PLAN NAME [-c PARAMS] [-t TAGS] [-org O] [-space S] [-json]"); err != nil {
		return err
	}
	service, planName, name := c.pos[0], c.pos[1], c.pos[2]
	params, err := readParams(*paramsFlag)
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	if old := c.st.instance(name); old != nil {
		if !failedCreate(old.LastOperation) {
			c.sayf("Service instance %s already exists\n", name)
			if c.asJSON {
				return writeJSON(c.stdout, c.instanceView(old))
			}
			return nil
		}
		// CC drops the failed instance and orphan-mitigates it.
		cl.orphanMitigate(ctx, ccInstancePath(old), old.ids())
		c.st.removeInstance(old)
	}
	cat, err := cl.catalog(ctx)
	if err != nil {
		return err
	}
	svc, plan, err := cat.find(service, planName)
	if err != nil {
		return err
	}
	org, space := c.st.space(*orgName, *spaceName)
	in := &ccInstance{
		Name: name, GUID: ccGUID(), ServiceID: svc.ID, ServiceName: svc.Name, PlanID: plan.ID, PlanName: plan.Name,
		OfferingTags: svc.Tags, Tags: splitTags(*tagsFlag), Parameters: nonEmpty(params),
		MaintenanceInfo: nullToNil(plan.MaintenanceInfo), OrgGUID: org.GUID, SpaceGUID: space.GUID,
		CreatedAt: time.Now().UTC(),
	}
	cctx, err := c.bindContext(in)
	if err != nil {
		return err
	}
	cctx.InstanceName, cctx.InstanceAnnotations = in.Name, ccEmptyObject
	body := ccProvisionBody{
		ServiceID: in.ServiceID, PlanID: in.PlanID, OrganizationGUID: org.GUID, SpaceGUID: space.GUID,
		Context: cctx, Parameters: in.Parameters, MaintenanceInfo: in.MaintenanceInfo,
	}
	c.sayf("Creating service instance %s in org %s / space %s...\n", name, org.Name, space.Name)
	res, err := cl.mutate(ctx, callProvision, http.MethodPut, ccInstancePath(in), acceptsIncomplete, body, in.ids())
	if err != nil {
		return err
	}
	in.LastOperation = ccLastOperation{Type: "create", State: "succeeded"}
	if res.Body.DashboardURL != nil {
		in.DashboardURL = *res.Body.DashboardURL
	}
	c.st.Instances = append(c.st.Instances, in)
	if res.Async {
		if err := c.pollInstance(ctx, cl, in, "create", in.PlanID, res.Operation, plan.maxPoll()); err != nil {
			return err
		}
	}
	if err := c.save(); err != nil {
		return err
	}
	if c.asJSON {
		return writeJSON(c.stdout, c.instanceView(in))
	}
	fmt.Fprintln(c.stdout, "OK")
	return nil
}

// pollInstance follows an instance operation the broker answered with 202.
// The state is saved first, so that an interrupted command leaves a record
// 'delete-service' can clean up.
func (c *ccCommand) pollInstance(ctx context.Context, cl *ccClient, in *ccInstance, opType, planID, operation string, max time.Duration) error {
	in.LastOperation = ccLastOperation{Type: opType, State: "in progress"}
	in.Operation = operation
	if err := c.save(); err != nil {
		return err
	}
	c.sayf("%s in progress...\n", opType)
	state, desc, err := cl.poll(ctx, ccPoll{
		Path: ccInstancePath(in) + "/last_operation", PlanID: planID, ServiceID: in.ServiceID,
		Operation: operation, Deleting: opType == "delete", Max: max,
	})
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		// Polling timed out: CC marks the operation failed and
		// orphan-mitigates a create.
		state, desc = "failed", err.Error()
		if opType == "create" {
			cl.orphanMitigate(ctx, ccInstancePath(in), in.ids())
		}
	}
	in.Operation = ""
	in.LastOperation = ccLastOperation{Type: opType, State: state, Description: desc}
	if state != "succeeded" {
		if err := c.save(); err != nil {
			return err
		}
		return fmt.Errorf("%s of service instance %s failed: %s", opType, in.Name, desc)
	}
	return nil
}

// updateServiceCmd is 'broker update-service NAME [-p PLAN] [-c PARAMS]'.
func updateServiceCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newCCCommand("update-service", getenv, stdout, stderr)
	planFlag := c.fs.String("p", "", "change to this plan")
	paramsFlag := c.fs.String("c", "", "parameters: a JSON object, inline or in a file")
	tagsFlag := c.fs.String("t", "", "replace the user tags (comma-separated; kept locally)")
	if err := c.parse(args, 1, "update-service NAME [-p PLAN] [-c PARAMS] [-t TAGS] [-json]"); err != nil {
		return err
	}
	in, err := c.st.mustInstance(c.pos[0])
	if err != nil {
		return err
	}
	params, err := readParams(*paramsFlag)
	if err != nil {
		return err
	}
	tagsGiven := false
	c.fs.Visit(func(f *flag.Flag) { tagsGiven = tagsGiven || f.Name == "t" })
	if tagsGiven {
		// Tags never reach the broker; CC changes them on its own.
		in.Tags = splitTags(*tagsFlag)
	}
	if *planFlag == "" && *paramsFlag == "" {
		if tagsGiven {
			if err := c.save(); err != nil {
				return err
			}
			c.sayf("OK\n")
		} else {
			c.sayf("No changes were made.\n")
		}
		if c.asJSON {
			return writeJSON(c.stdout, c.instanceView(in))
		}
		return nil
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	cat, err := cl.catalog(ctx)
	if err != nil {
		return err
	}
	svc, err := cat.serviceByID(in.ServiceID)
	if err != nil {
		return err
	}
	oldPlan := svc.planByID(in.PlanID)
	newPlan := oldPlan
	if *planFlag != "" && *planFlag != in.PlanName {
		if newPlan, err = svc.plan(*planFlag); err != nil {
			return err
		}
		if oldPlan == nil || !svc.updateable(oldPlan) {
			return errors.New("the service does not support changing plans")
		}
	}
	if newPlan == nil {
		return fmt.Errorf("the broker's catalog no longer has the plan %s", in.PlanName)
	}
	if newPlan.ID == in.PlanID && *paramsFlag == "" {
		c.sayf("No changes were made.\n")
		return nil
	}
	cctx, err := c.bindContext(in)
	if err != nil {
		return err
	}
	cctx.InstanceName = in.Name
	if params == nil {
		params = ccEmptyObject // CC always sends parameters
	}
	body := ccUpdateBody{
		ServiceID: in.ServiceID, PlanID: newPlan.ID,
		PreviousValues: ccPreviousValues{PlanID: in.PlanID, ServiceID: in.ServiceID, OrganizationID: in.OrgGUID,
			SpaceID: in.SpaceGUID, MaintenanceInfo: in.MaintenanceInfo},
		Context: cctx, Parameters: params,
	}
	newMI := nullToNil(newPlan.MaintenanceInfo)
	if newPlan.ID != in.PlanID && newMI != nil {
		var mi struct {
			Version string `json:"version"`
		}
		if err := json.Unmarshal(newMI, &mi); err == nil && mi.Version != "" {
			body.MaintenanceInfo, _ = json.Marshal(mi) // the version only
		}
	}
	c.sayf("Updating service instance %s...\n", in.Name)
	res, err := cl.mutate(ctx, callUpdate, http.MethodPatch, ccInstancePath(in), acceptsIncomplete, body, nil)
	if err != nil {
		return err
	}
	if res.Body.DashboardURL != nil {
		in.DashboardURL = *res.Body.DashboardURL
	}
	if res.Async {
		// During an update CC polls with the old plan.
		if err := c.pollInstance(ctx, cl, in, "update", in.PlanID, res.Operation, newPlan.maxPoll()); err != nil {
			return err
		}
	}
	in.LastOperation = ccLastOperation{Type: "update", State: "succeeded"}
	if newPlan.ID != in.PlanID {
		in.PlanID, in.PlanName, in.MaintenanceInfo = newPlan.ID, newPlan.Name, newMI
	}
	if p := nonEmpty(params); p != nil {
		in.Parameters = p
	}
	in.OfferingTags = svc.Tags
	if err := c.save(); err != nil {
		return err
	}
	if c.asJSON {
		return writeJSON(c.stdout, c.instanceView(in))
	}
	fmt.Fprintln(c.stdout, "OK")
	return nil
}

// deleteServiceCmd is 'broker delete-service NAME [-f]': like CC it first
// deletes every app binding and service key of the instance.
func deleteServiceCmd(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	c := newCCCommand("delete-service", getenv, stdout, stderr)
	force := c.fs.Bool("f", false, "delete without asking")
	if err := c.parse(args, 1, "delete-service NAME [-f]"); err != nil {
		return err
	}
	name := c.pos[0]
	in := c.st.instance(name)
	if in == nil {
		c.sayf("Service instance %s did not exist.\nOK\n", name)
		return nil
	}
	if !*force {
		fmt.Fprintf(stdout, "Really delete the service instance %s? [yN]: ", name)
		line, _ := bufio.NewReader(stdin).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			fmt.Fprintln(stdout, "Delete cancelled")
			return nil
		}
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	c.sayf("Deleting service instance %s...\n", name)
	for _, b := range append(append([]*ccBinding{}, in.Bindings...), in.Keys...) {
		if err := c.deleteBinding(ctx, cl, in, b); err != nil {
			return err
		}
	}
	res, err := cl.mutate(ctx, callDeprovision, http.MethodDelete, ccInstancePath(in), in.deleteQuery(), nil, nil)
	if err != nil {
		return err
	}
	if res.Async {
		if err := c.pollInstance(ctx, cl, in, "delete", in.PlanID, res.Operation, ccMaxPollDuration); err != nil {
			return err
		}
	}
	c.st.removeInstance(in)
	if err := c.save(); err != nil {
		return err
	}
	c.sayf("OK\n")
	return nil
}

// deleteBinding unbinds an app binding or deletes a service key at the
// broker, then forgets it.
func (c *ccCommand) deleteBinding(ctx context.Context, cl *ccClient, in *ccInstance, b *ccBinding) error {
	path := ccBindingPath(in, b)
	res, err := cl.mutate(ctx, callUnbind, http.MethodDelete, path, in.deleteQuery(), nil, nil)
	if err != nil {
		return err
	}
	if res.Async {
		b.LastOperation = ccLastOperation{Type: "delete", State: "in progress"}
		b.Operation = res.Operation
		if err := c.save(); err != nil {
			return err
		}
		state, desc, err := cl.poll(ctx, ccPoll{Path: path + "/last_operation", PlanID: in.PlanID, ServiceID: in.ServiceID,
			Operation: res.Operation, Deleting: true})
		if err != nil {
			if ctx.Err() == nil {
				b.LastOperation = ccLastOperation{Type: "delete", State: "failed", Description: err.Error()}
				_ = c.save()
			}
			return err
		}
		if state != "succeeded" {
			b.Operation = ""
			b.LastOperation = ccLastOperation{Type: "delete", State: state, Description: desc}
			if err := c.save(); err != nil {
				return err
			}
			return fmt.Errorf("delete of binding %s failed: %s", b.GUID, desc)
		}
	}
	in.removeBinding(b)
	return c.save()
}

// createBinding binds (app binding or service key) and keeps the
// credentials; an async bind is polled and the credentials fetched with
// GET binding, as CC does.
func (c *ccCommand) createBinding(ctx context.Context, cl *ccClient, in *ccInstance, b *ccBinding, body ccBindBody) error {
	cat, err := cl.catalog(ctx)
	if err != nil {
		return err
	}
	svc, err := cat.serviceByID(in.ServiceID)
	if err != nil {
		return err
	}
	plan := svc.planByID(in.PlanID)
	if !svc.bindable(plan) {
		return fmt.Errorf("service instance %s is not bindable", in.Name)
	}
	path := ccBindingPath(in, b)
	res, err := cl.mutate(ctx, callBind, http.MethodPut, path, acceptsIncomplete, body, in.ids())
	if err != nil {
		return err
	}
	b.CreatedAt = time.Now().UTC()
	if !res.Async {
		b.setFrom(res.Body)
		b.LastOperation = ccLastOperation{Type: "create", State: "succeeded"}
		if b.AppGUID != "" {
			in.Bindings = append(in.Bindings, b)
		} else {
			in.Keys = append(in.Keys, b)
		}
		return c.save()
	}
	if !svc.BindingsRetrievable {
		cl.orphanMitigate(ctx, path, in.ids())
		return errors.New("the service broker answered 202 to a bind but does not support fetching binding data (bindings_retrievable)")
	}
	b.LastOperation = ccLastOperation{Type: "create", State: "in progress"}
	b.Operation = res.Operation
	if b.AppGUID != "" {
		in.Bindings = append(in.Bindings, b)
	} else {
		in.Keys = append(in.Keys, b)
	}
	if err := c.save(); err != nil {
		return err
	}
	c.sayf("create in progress...\n")
	state, desc, err := cl.poll(ctx, ccPoll{Path: path + "/last_operation", PlanID: in.PlanID, ServiceID: in.ServiceID,
		Operation: res.Operation, Max: plan.maxPoll()})
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		state, desc = "failed", err.Error()
		cl.orphanMitigate(ctx, path, in.ids())
	}
	if state == "succeeded" {
		if err := c.fetchBinding(ctx, cl, in, b); err != nil {
			state, desc = "failed", err.Error()
		}
	}
	b.Operation = ""
	b.LastOperation = ccLastOperation{Type: "create", State: state, Description: desc}
	if err := c.save(); err != nil {
		return err
	}
	if state != "succeeded" {
		return fmt.Errorf("bind to service instance %s failed: %s", in.Name, desc)
	}
	return nil
}

// fetchBinding is GET binding: the credentials after an async bind.
func (c *ccCommand) fetchBinding(ctx context.Context, cl *ccClient, in *ccInstance, b *ccBinding) error {
	path := ccBindingPath(in, b)
	r, err := cl.send(ctx, http.MethodGet, path, in.ids(), nil, true)
	if err != nil {
		return err
	}
	if r.Status != http.StatusOK {
		return newBrokerError(r)
	}
	var body ccBody
	if err := json.Unmarshal(r.Body, &body); err != nil || !isJSONObject(body.Credentials) {
		return errors.New("the broker's GET binding answer has no credentials object")
	}
	b.setFrom(body)
	return nil
}

func (b *ccBinding) setFrom(body ccBody) {
	b.Credentials = compactJSON(body.Credentials)
	if b.AppGUID == "" {
		return // CC keeps only the credentials of a service key
	}
	b.SyslogDrainURL = body.SyslogDrainURL
	b.VolumeMounts = compactJSON(nullToNil(body.VolumeMounts))
}

// bindCmd is 'broker bind NAME APP [-c PARAMS] [--binding-name B]'.
func bindCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newCCCommand("bind", getenv, stdout, stderr)
	paramsFlag := c.fs.String("c", "", "parameters: a JSON object, inline or in a file")
	bindingName := c.fs.String("binding-name", "", "name of the binding (VCAP_SERVICES name)")
	if err := c.parse(args, 2, "bind NAME APP [-c PARAMS] [--binding-name B] [-json]"); err != nil {
		return err
	}
	in, err := c.st.mustInstance(c.pos[0])
	if err != nil {
		return err
	}
	params, err := readParams(*paramsFlag)
	if err != nil {
		return err
	}
	app, err := c.st.appInSpace(c.pos[1], in.SpaceGUID)
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	if old := in.appBinding(app.GUID); old != nil {
		if !failedCreate(old.LastOperation) {
			// CC allows one binding per app and instance.
			return fmt.Errorf("the app %s is already bound to the service instance %s", app.Name, in.Name)
		}
		cl.orphanMitigate(ctx, ccBindingPath(in, old), in.ids())
		in.removeBinding(old)
	}
	if *bindingName != "" {
		for _, other := range c.st.Instances {
			if b := other.appBinding(app.GUID); b != nil && b.Name == *bindingName {
				return fmt.Errorf("the binding name is invalid: app binding names must be unique (%s is the binding to %s)", *bindingName, other.Name)
			}
		}
	}
	cctx, err := c.bindContext(in)
	if err != nil {
		return err
	}
	b := &ccBinding{GUID: ccGUID(), Name: *bindingName, AppGUID: app.GUID, AppName: app.Name}
	body := ccBindBody{
		ServiceID: in.ServiceID, PlanID: in.PlanID, AppGUID: app.GUID,
		BindResource: ccAppBindResource{AppGUID: app.GUID, SpaceGUID: in.SpaceGUID, AppAnnotations: ccEmptyObject},
		Context:      cctx, Parameters: nonEmpty(params),
	}
	c.sayf("Binding service instance %s to app %s...\n", in.Name, app.Name)
	if err := c.createBinding(ctx, cl, in, b, body); err != nil {
		return err
	}
	if c.asJSON {
		return writeJSON(c.stdout, bindingView(b))
	}
	fmt.Fprintln(c.stdout, "OK")
	return nil
}

// unbindCmd is 'broker unbind NAME APP'.
func unbindCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newCCCommand("unbind", getenv, stdout, stderr)
	if err := c.parse(args, 2, "unbind NAME APP"); err != nil {
		return err
	}
	in, err := c.st.mustInstance(c.pos[0])
	if err != nil {
		return err
	}
	var b *ccBinding
	if app := c.st.app(c.pos[1]); app != nil {
		b = in.appBinding(app.GUID)
	}
	if b == nil {
		c.sayf("Binding between %s and %s did not exist\nOK\n", in.Name, c.pos[1])
		return nil
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	c.sayf("Unbinding app %s from service instance %s...\n", c.pos[1], in.Name)
	if err := c.deleteBinding(ctx, cl, in, b); err != nil {
		return err
	}
	c.sayf("OK\n")
	return nil
}

// createServiceKeyCmd is 'broker create-service-key NAME KEY [-c PARAMS]'.
func createServiceKeyCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newCCCommand("create-service-key", getenv, stdout, stderr)
	paramsFlag := c.fs.String("c", "", "parameters: a JSON object, inline or in a file")
	if err := c.parse(args, 2, "create-service-key NAME KEY [-c PARAMS] [-json]"); err != nil {
		return err
	}
	in, err := c.st.mustInstance(c.pos[0])
	if err != nil {
		return err
	}
	keyName := c.pos[1]
	params, err := readParams(*paramsFlag)
	if err != nil {
		return err
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	if old := in.key(keyName); old != nil {
		if !failedCreate(old.LastOperation) {
			c.sayf("Service key %s already exists\n", keyName)
			return nil
		}
		cl.orphanMitigate(ctx, ccBindingPath(in, old), in.ids())
		in.removeBinding(old)
	}
	cctx, err := c.bindContext(in)
	if err != nil {
		return err
	}
	b := &ccBinding{GUID: ccGUID(), Name: keyName}
	body := ccBindBody{
		ServiceID: in.ServiceID, PlanID: in.PlanID,
		BindResource: ccKeyBindResource{CredentialClientID: ccServiceKeyClient},
		Context:      cctx, Parameters: nonEmpty(params),
	}
	c.sayf("Creating service key %s for service instance %s...\n", keyName, in.Name)
	if err := c.createBinding(ctx, cl, in, b, body); err != nil {
		return err
	}
	if c.asJSON {
		return writeJSON(c.stdout, bindingView(b))
	}
	fmt.Fprintln(c.stdout, "OK")
	return nil
}

// serviceKeyCmd is 'broker service-key NAME KEY': the key's credentials,
// from the state or else from the broker.
func serviceKeyCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newCCCommand("service-key", getenv, stdout, stderr)
	if err := c.parse(args, 2, "service-key NAME KEY"); err != nil {
		return err
	}
	in, err := c.st.mustInstance(c.pos[0])
	if err != nil {
		return err
	}
	k := in.key(c.pos[1])
	if k == nil {
		return fmt.Errorf("no service key %s found for service instance %s", c.pos[1], in.Name)
	}
	if len(k.Credentials) == 0 {
		cl, err := c.client()
		if err != nil {
			return err
		}
		if err := c.fetchBinding(ctx, cl, in, k); err != nil {
			return err
		}
		if err := c.save(); err != nil {
			return err
		}
	}
	var creds json.RawMessage = k.Credentials
	return writeJSON(c.stdout, creds)
}

// deleteServiceKeyCmd is 'broker delete-service-key NAME KEY'.
func deleteServiceKeyCmd(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newCCCommand("delete-service-key", getenv, stdout, stderr)
	c.fs.Bool("f", false, "no effect: the command never asks")
	if err := c.parse(args, 2, "delete-service-key NAME KEY"); err != nil {
		return err
	}
	in, err := c.st.mustInstance(c.pos[0])
	if err != nil {
		return err
	}
	k := in.key(c.pos[1])
	if k == nil {
		c.sayf("Service key %s does not exist for service instance %s.\nOK\n", c.pos[1], in.Name)
		return nil
	}
	cl, err := c.client()
	if err != nil {
		return err
	}
	c.sayf("Deleting key %s for service instance %s...\n", k.Name, in.Name)
	if err := c.deleteBinding(ctx, cl, in, k); err != nil {
		return err
	}
	c.sayf("OK\n")
	return nil
}

// ccInstanceView is an instance as 'services' shows it: no credentials.
type ccInstanceView struct {
	Name          string          `json:"name"`
	GUID          string          `json:"guid"`
	Service       string          `json:"service"`
	Plan          string          `json:"plan"`
	Tags          []string        `json:"tags"`
	Org           string          `json:"org"`
	Space         string          `json:"space"`
	DashboardURL  string          `json:"dashboard_url,omitempty"`
	LastOperation ccLastOperation `json:"last_operation"`
	Bindings      []ccBindingView `json:"bindings"`
	ServiceKeys   []ccBindingView `json:"service_keys"`
}

type ccBindingView struct {
	GUID          string          `json:"guid"`
	App           string          `json:"app,omitempty"`
	Name          string          `json:"name,omitempty"`
	LastOperation ccLastOperation `json:"last_operation"`
}

func bindingView(b *ccBinding) ccBindingView {
	return ccBindingView{GUID: b.GUID, App: b.AppName, Name: b.Name, LastOperation: b.LastOperation}
}

func (c *ccCommand) instanceView(in *ccInstance) ccInstanceView {
	v := ccInstanceView{Name: in.Name, GUID: in.GUID, Service: in.ServiceName, Plan: in.PlanName,
		Tags: mergeTags(in.OfferingTags, in.Tags), DashboardURL: in.DashboardURL, LastOperation: in.LastOperation,
		Bindings: []ccBindingView{}, ServiceKeys: []ccBindingView{}}
	if org, space, err := c.st.spaceByGUID(in.SpaceGUID); err == nil {
		v.Org, v.Space = org.Name, space.Name
	}
	for _, b := range in.Bindings {
		v.Bindings = append(v.Bindings, bindingView(b))
	}
	for _, k := range in.Keys {
		v.ServiceKeys = append(v.ServiceKeys, bindingView(k))
	}
	return v
}

// servicesCmd is 'broker services': the local instances.
func servicesCmd(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newCCCommand("services", getenv, stdout, stderr)
	if err := c.parse(args, 0, "services [-json]"); err != nil {
		return err
	}
	views := []ccInstanceView{}
	for _, in := range c.st.Instances {
		views = append(views, c.instanceView(in))
	}
	if c.asJSON {
		return writeJSON(stdout, views)
	}
	if len(views) == 0 {
		fmt.Fprintln(stdout, "No service instances found.")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tOFFERING\tPLAN\tBOUND APPS\tSERVICE KEYS\tLAST OPERATION")
	for _, v := range views {
		var apps, keys []string
		for _, b := range v.Bindings {
			apps = append(apps, b.App)
		}
		for _, k := range v.ServiceKeys {
			keys = append(keys, k.Name)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s %s\n", v.Name, v.Service, v.Plan,
			strings.Join(apps, ", "), strings.Join(keys, ", "), v.LastOperation.Type, v.LastOperation.State)
	}
	return tw.Flush()
}

// appEnvOf builds the environment of an app the state knows.
func (c *ccCommand) appEnvOf(name string) (appEnv, error) {
	app := c.st.app(name)
	if app == nil {
		return appEnv{}, fmt.Errorf("app %s not found (apps appear with their first 'broker bind')", name)
	}
	return buildAppEnv(c.st, app)
}

// envCmd is 'broker env APP': VCAP_SERVICES and VCAP_APPLICATION as JSON.
func envCmd(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newCCCommand("env", getenv, stdout, stderr)
	if err := c.parse(args, 1, "env APP"); err != nil {
		return err
	}
	env, err := c.appEnvOf(c.pos[0])
	if err != nil {
		return err
	}
	return writeJSON(stdout, env)
}

// defaultEnvCmd is 'broker default-env APP [-o FILE]': the environment as
// the default-env.json that approuter, @sap/xsenv's loadEnv and CAP read.
// Other members of an existing file (destinations, …) are kept.
func defaultEnvCmd(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c := newCCCommand("default-env", getenv, stdout, stderr)
	out := c.fs.String("o", "default-env.json", "file to write")
	if err := c.parse(args, 1, "default-env APP [-o FILE]"); err != nil {
		return err
	}
	env, err := c.appEnvOf(c.pos[0])
	if err != nil {
		return err
	}
	existing, err := os.ReadFile(*out)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	raw, err := mergeDefaultEnv(existing, env)
	if err != nil {
		return fmt.Errorf("%s: %w", *out, err)
	}
	if err := writeFileAtomic(*out, raw, 0o600); err != nil {
		return err
	}
	if c.asJSON {
		return writeJSON(stdout, map[string]string{"file": *out})
	}
	var labels []string
	for _, f := range env.VCAPServices {
		labels = append(labels, f.Key)
	}
	fmt.Fprintf(stdout, "wrote %s (VCAP_SERVICES: %s)\n", *out, strings.Join(labels, ", "))
	return nil
}
