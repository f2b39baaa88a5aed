package descriptor

import "testing"

func TestParseRef(t *testing.T) {
	tests := []struct {
		in   string
		want Ref
	}{
		{"uaa.user", Ref{Kind: Literal, Suffix: "uaa.user"}},
		{"other!t5.Read", Ref{Kind: Literal, Suffix: "other!t5.Read"}},
		{"$XSAPPNAME", Ref{Kind: Self}},
		{"$XSAPPNAME.Display", Ref{Kind: Self, Suffix: "Display"}},
		{"$XSAPPNAME.cds.Subscriber", Ref{Kind: Self, Suffix: "cds.Subscriber"}},
		{"$XSAPPNAME(application,bookshop-ui)", Ref{Kind: App, Plan: "application", App: "bookshop-ui"}},
		{"$XSAPPNAME(application, catalog).Read", Ref{Kind: App, Plan: "application", App: "catalog", Suffix: "Read"}},
		{"$XSAPPNAME(application,sap-provisioning,tenant-onboarding)", Ref{Kind: App, Plan: "application", App: "sap-provisioning", Extra: "tenant-onboarding"}},
		{"$XSAPPNAME(broker,reuse).Viewer", Ref{Kind: App, Plan: "broker", App: "reuse", Suffix: "Viewer"}},
		{"$XSSERVICENAME(my-jobscheduler)", Ref{Kind: Service, Service: "my-jobscheduler"}},
		{"$XSSERVICENAME(my-jobscheduler).Callback", Ref{Kind: Service, Service: "my-jobscheduler", Suffix: "Callback"}},
		{"$ACCEPT_GRANTED_AUTHORITIES", Ref{Kind: AcceptGrantedAuthorities}},
		{"$ACCEPT_GRANTED_SCOPES", Ref{Kind: AcceptGrantedScopes}},
	}
	for _, tt := range tests {
		got, err := ParseRef(tt.in)
		if err != nil {
			t.Errorf("ParseRef(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseRef(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseRefMalformed(t *testing.T) {
	for _, in := range []string{
		"$XSAPPNAME.",
		"$XSAPPNAMEfoo",
		"$XSAPPNAME(application,b",
		"$XSAPPNAME(application,b)x",
		"$XSAPPNAME(application,b).",
		"$XSAPPNAME(application)",
		"$XSAPPNAME(a,b,c,d)",
		"$XSAPPNAME(application,)",
		"$XSAPPNAME(,b)",
		"$XSAPPNAME(a,(b)).x",
		"$XSAPPNAME()",
		"$XSSERVICENAME()",
		"$XSSERVICENAME( )",
		"$XSSERVICENAME(a,b)",
		"$XSSERVICENAME(a",
		"$XSSERVICENAME",
		"$XSSERVICENAME.x",
		"$ACCEPT_GRANTED_AUTHORITIES.x",
		"$ACCEPT_GRANTED_SCOPES.x",
		"$FOO",
		"$",
	} {
		if r, err := ParseRef(in); err == nil {
			t.Errorf("ParseRef(%q) = %+v, want an error", in, r)
		}
	}
}

func TestRefExpand(t *testing.T) {
	tests := []struct {
		in, app, want string
	}{
		{"$XSAPPNAME.Display", "bookshop!t1", "bookshop!t1.Display"},
		{"$XSAPPNAME", "bookshop!t1", "bookshop!t1"},
		{"$XSAPPNAME(application,b).Read", "b!t2", "b!t2.Read"},
		{"$XSSERVICENAME(s)", "s!t3", "s!t3"},
		{"uaa.user", "ignored", "uaa.user"},
		{"$ACCEPT_GRANTED_SCOPES", "ignored", "$ACCEPT_GRANTED_SCOPES"},
	}
	for _, tt := range tests {
		r, err := ParseRef(tt.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Expand(tt.app); got != tt.want {
			t.Errorf("Expand(%q, %q) = %q, want %q", tt.in, tt.app, got, tt.want)
		}
	}
}

func TestRefIsCrossInstance(t *testing.T) {
	for in, want := range map[string]bool{
		"$XSAPPNAME(application,b)": true,
		"$XSSERVICENAME(s).x":       true,
		"$XSAPPNAME.x":              false,
		"uaa.user":                  false,
		"$ACCEPT_GRANTED_SCOPES":    false,
	} {
		r, err := ParseRef(in)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.IsCrossInstance(); got != want {
			t.Errorf("IsCrossInstance(%q) = %v", in, got)
		}
	}
}
