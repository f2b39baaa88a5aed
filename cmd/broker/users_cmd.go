package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
)

// parseInterspersed parses flags that may come before, between or after
// positional arguments ("broker users create alice -password x").
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

type userView struct {
	ID              string              `json:"id"`
	Username        string              `json:"username"`
	Email           string              `json:"email,omitempty"`
	GivenName       string              `json:"given_name,omitempty"`
	FamilyName      string              `json:"family_name,omitempty"`
	Origin          string              `json:"origin,omitempty"`
	RoleCollections []string            `json:"role_collections"`
	Attributes      map[string][]string `json:"attributes,omitempty"`
}

// usersCmd is 'broker users create|list|delete|set-password'.
func usersCmd(args []string, getenv func(string) string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: broker users create|list|delete|set-password …")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("broker users "+sub, flag.ContinueOnError)
	password := fs.String("password", "", "password")
	passwordStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input")
	email := fs.String("email", "", "e-mail address")
	given := fs.String("given-name", "", "given name")
	family := fs.String("family-name", "", "family name")
	origin := fs.String("origin", "", "identity provider key (default sap.default)")
	asJSON := fs.Bool("json", false, "print JSON")
	var rcs, attrs listFlag
	fs.Var(&rcs, "role-collection", "assign a role collection (repeatable)")
	fs.Var(&attrs, "attribute", "attribute NAME=V1,V2 (repeatable; a repeated NAME adds values)")
	c, pos, err := newAPIClientInterspersed(fs, args, getenv)
	if err != nil {
		return err
	}
	readPassword := func() (string, error) {
		if *passwordStdin && *password != "" {
			return "", fmt.Errorf("-password and -password-stdin: give one of them")
		}
		if *passwordStdin {
			line, err := bufio.NewReader(stdin).ReadString('\n')
			if err != nil && err != io.EOF {
				return "", err
			}
			return strings.TrimRight(line, "\r\n"), nil
		}
		return *password, nil
	}
	need := func(n int, usage string) error {
		if len(pos) != n {
			return fmt.Errorf("usage: broker users %s", usage)
		}
		return nil
	}
	switch sub {
	case "create":
		if err := need(1, "create USERNAME -password P [-email E] [-given-name G] [-family-name F] [-role-collection RC]… [-attribute NAME=V1,V2]…"); err != nil {
			return err
		}
		pw, err := readPassword()
		if err != nil {
			return err
		}
		body := map[string]any{"username": pos[0], "password": pw, "email": *email, "given_name": *given,
			"family_name": *family, "origin": *origin, "role_collections": []string(rcs)}
		if len(attrs) > 0 {
			m := map[string][]string{}
			for _, a := range attrs {
				k, v, ok := strings.Cut(a, "=")
				if !ok || k == "" {
					return fmt.Errorf("-attribute %q: expected NAME=V1,V2", a)
				}
				// A repeated name adds values rather than replacing them.
				m[k] = append(m[k], strings.Split(v, ",")...)
			}
			body["attributes"] = m
		}
		var u userView
		if err := c.doJSON(http.MethodPost, "/admin/users", body, &u); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, u)
		}
		fmt.Fprintf(stdout, "created user %s (id %s)\n", u.Username, u.ID)
		return nil
	case "list":
		var res struct {
			Users []userView `json:"users"`
		}
		if err := c.doJSON(http.MethodGet, "/admin/users", nil, &res); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, res)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "USERNAME\tEMAIL\tORIGIN\tROLE COLLECTIONS")
		for _, u := range res.Users {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Username, u.Email, u.Origin, strings.Join(u.RoleCollections, ", "))
		}
		return tw.Flush()
	case "delete":
		if err := need(1, "delete USERNAME"); err != nil {
			return err
		}
		if err := c.doJSON(http.MethodDelete, "/admin/users/"+url.PathEscape(pos[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted user %s\n", pos[0])
		return nil
	case "set-password":
		if err := need(1, "set-password USERNAME (-password P | -password-stdin)"); err != nil {
			return err
		}
		pw, err := readPassword()
		if err != nil {
			return err
		}
		if err := c.doJSON(http.MethodPut, "/admin/users/"+url.PathEscape(pos[0])+"/password", map[string]string{"password": pw}, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "password of %s changed\n", pos[0])
		return nil
	default:
		return fmt.Errorf("unknown subcommand 'users %s' (create, list, delete, set-password)", sub)
	}
}

// roleCollectionsCmd is 'broker role-collections create|list|delete|assign|unassign'.
func roleCollectionsCmd(args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("usage: broker role-collections create|list|delete|assign|unassign …")
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("broker role-collections "+sub, flag.ContinueOnError)
	desc := fs.String("description", "", "description")
	asJSON := fs.Bool("json", false, "print JSON")
	var templates listFlag
	fs.Var(&templates, "role-template", "role template as <xsappname>.<template>, e.g. bookshop!t1.Viewer (repeatable)")
	c, pos, err := newAPIClientInterspersed(fs, args, getenv)
	if err != nil {
		return err
	}
	switch sub {
	case "create":
		if len(pos) != 1 {
			return fmt.Errorf("usage: broker role-collections create NAME -role-template XSAPPNAME.TEMPLATE… [-description D]")
		}
		body := map[string]any{"name": pos[0], "description": *desc, "role_templates": []string(templates)}
		if err := c.doJSON(http.MethodPost, "/admin/role-collections", body, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created role collection %s\n", pos[0])
		return nil
	case "list":
		var res struct {
			RoleCollections []struct {
				Name          string   `json:"name"`
				Description   string   `json:"description"`
				RoleTemplates []string `json:"role_templates"`
				DeclaredBy    string   `json:"declared_by"`
				Users         []string `json:"users"`
			} `json:"role_collections"`
		}
		if err := c.doJSON(http.MethodGet, "/admin/role-collections", nil, &res); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(stdout, res)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE TEMPLATES\tDECLARED BY\tUSERS")
		for _, rc := range res.RoleCollections {
			by := rc.DeclaredBy
			if by == "" {
				by = "(admin)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", rc.Name, strings.Join(rc.RoleTemplates, ", "), by, strings.Join(rc.Users, ", "))
		}
		return tw.Flush()
	case "delete":
		if len(pos) != 1 {
			return fmt.Errorf("usage: broker role-collections delete NAME")
		}
		if err := c.doJSON(http.MethodDelete, "/admin/role-collections/"+url.PathEscape(pos[0]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted role collection %s\n", pos[0])
		return nil
	case "assign", "unassign":
		if len(pos) != 2 {
			return fmt.Errorf("usage: broker role-collections %s NAME USERNAME", sub)
		}
		method := http.MethodPut
		if sub == "unassign" {
			method = http.MethodDelete
		}
		if err := c.doJSON(method, "/admin/role-collections/"+url.PathEscape(pos[0])+"/users/"+url.PathEscape(pos[1]), nil, nil); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%sed role collection %s %s %s\n", sub, pos[0], map[bool]string{true: "to", false: "from"}[sub == "assign"], pos[1])
		return nil
	default:
		return fmt.Errorf("unknown subcommand 'role-collections %s' (create, list, delete, assign, unassign)", sub)
	}
}
